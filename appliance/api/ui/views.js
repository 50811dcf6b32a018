// Login/setup, the live wall, the single-camera view, rules and events.

import { api, h, login, setup, can, showFieldError, when } from './api.js';
import { LiveFeed, drawOverlay } from './live.js';

/** Loads cameras (ids and names) and zones. */
export async function loadConfig() {
  const [cams, zones] = await Promise.all([api('GET', '/api/v1/cameras'), api('GET', '/api/v1/zones')]);
  return { cameras: merged(cams), zones: merged(zones), health: cams.health || [] };
}

/** The running documents overlaid with the edited ones (the edited version wins). */
export function merged(list) {
  const out = new Map();
  for (const r of list.running || []) out.set(r.id, { id: r.id, doc: r.doc, version: null });
  for (const e of list.edited || []) out.set(e.id, { id: e.id, doc: e.doc, version: e.version });
  return [...out.values()].sort((a, b) => a.id.localeCompare(b.id));
}

export function loginView(root, done) {
  const status = h('p', { class: 'muted' });
  const mk = (id, title, submit, extra) => {
    const form = h('form', { id, class: 'card narrow' },
      h('h2', {}, title),
      h('label', {}, 'Username', h('input', { name: 'username', autocomplete: 'username', required: true })),
      h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: id === 'setup-form' ? 'new-password' : 'current-password', required: true })),
      extra,
      h('button', { type: 'submit', class: 'primary' }, title));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      try {
        await submit(f);
        done();
      } catch (e) {
        showFieldError(form, e);
      }
    });
    return form;
  };
  const loginForm = mk('login-form', 'Log in', (f) => login(f.get('username'), f.get('password')));
  const setupForm = mk('setup-form', 'Create the first admin',
    (f) => setup(f.get('username'), f.get('password'), f.get('setup_token')),
    h('label', {}, 'Setup token (if not on the setup network)', h('input', { name: 'setup_token', autocomplete: 'off' })));
  setupForm.hidden = true;
  const toggle = h('button', { type: 'button', class: 'link', id: 'show-setup', onclick: () => {
    setupForm.hidden = !setupForm.hidden;
    loginForm.hidden = !setupForm.hidden;
    toggle.textContent = setupForm.hidden ? 'First boot? Create the first admin' : 'Back to login';
  } }, 'First boot? Create the first admin');
  root.append(h('section', { class: 'login' }, h('h1', {}, 'SAFE-YOLO'), loginForm, setupForm, toggle, status));
}

function zoneDrawer(zones, camera) {
  const mine = zones.filter((z) => z.doc.camera === camera);
  return (ctx, meta) => drawOverlay(ctx, meta, mine);
}

/** The wall: every camera live, overlays drawn client-side. */
export async function wallView(root, cleanup) {
  const { cameras, zones, health } = await loadConfig();
  const grid = h('div', { class: 'wall', id: 'wall' });
  root.append(h('h2', {}, 'Live wall'), grid);
  for (const cam of cameras) {
    const canvas = h('canvas', { width: 640, height: 360, dataset: { camera: cam.id, frames: '0' } });
    const hs = health.find((x) => x.id === cam.id);
    const tile = h('a', { class: 'tile', href: `#/camera/${encodeURIComponent(cam.id)}` },
      canvas,
      h('div', { class: 'caption' }, h('strong', {}, cam.doc.name || cam.id), ' ',
        h('span', { class: `state ${hs ? hs.state : ''}` }, hs ? hs.state : '')));
    grid.append(tile);
    const feed = new LiveFeed(cam.id, canvas, zoneDrawer(zones, cam.id));
    cleanup.push(() => feed.stop());
  }
  if (!cameras.length) grid.append(h('p', { class: 'muted' }, 'No cameras configured.'));
}

/** One camera, large, with its detections listed. */
export async function cameraView(root, cleanup, id) {
  const { cameras, zones } = await loadConfig();
  const cam = cameras.find((c) => c.id === id);
  if (!cam) {
    root.append(h('p', { class: 'error' }, `Unknown camera ${id}`));
    return;
  }
  const canvas = h('canvas', { class: 'big', width: 640, height: 360, dataset: { camera: id, frames: '0' } });
  const list = h('ul', { class: 'detections' });
  const base = zoneDrawer(zones, id);
  const feed = new LiveFeed(id, canvas, (ctx, meta) => {
    base(ctx, meta);
    if (!meta) return;
    list.replaceChildren(...(meta.detections || []).map((d) =>
      h('li', {}, `${d.track !== undefined ? `#${d.track} ` : ''}${d.class} ${(d.score * 100).toFixed(0)}%`)));
  });
  cleanup.push(() => feed.stop());
  root.append(h('h2', {}, cam.doc.name || id),
    h('div', { class: 'split' }, h('div', { class: 'stage' }, canvas),
      h('aside', { class: 'card' }, h('h3', {}, 'Detections'), list,
        can('operator') ? h('a', { href: `#/zones/${encodeURIComponent(id)}` }, 'Edit zones') : null)));
}

const RULE_KINDS = ['intrusion', 'dwell', 'occupancy', 'line_crossing', 'missing_ppe', 'camera_offline'];
const SEVERITIES = ['info', 'warning', 'critical'];
const NUM_FIELDS = [
  ['seconds', 'Seconds (dwell)'], ['max_persons', 'Max persons (occupancy)'],
  ['min_frames', 'Min frames'], ['grace_s', 'Grace (s)'], ['cooldown_s', 'Cooldown (s)'],
  ['clear_after_s', 'Clear after (s)'], ['offline_after_s', 'Offline after (s)'],
];

/** The safety rules panel. */
export async function rulesView(root) {
  if (!can('operator')) return denied(root, 'operator');
  const [rules, { cameras, zones }, outs] = await Promise.all([
    api('GET', '/api/v1/rules'), loadConfig(), api('GET', '/api/v1/outputs'),
  ]);
  const all = merged(rules);
  const outputIds = (outs.outputs || []).map((o) => o.id ?? o.name).filter(Boolean);
  const table = h('table', { class: 'list', id: 'rules-table' },
    h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Name'), h('th', {}, 'Kind'), h('th', {}, 'Zone'), h('th', {}, 'Severity'), h('th', {}, 'Outputs'), h('th', {}, '')));
  const formHost = h('div');
  for (const r of all) {
    table.append(h('tr', { dataset: { rule: r.id } }, h('td', {}, r.id), h('td', {}, r.doc.name), h('td', {}, r.doc.kind),
      h('td', {}, r.doc.zone || r.doc.camera || ''), h('td', {}, r.doc.severity), h('td', {}, (r.doc.outputs || []).join(', ')),
      h('td', {}, h('button', { type: 'button', onclick: () => edit(r) }, 'Edit'))));
  }
  const edit = (r) => formHost.replaceChildren(ruleForm(r, cameras, zones, outputIds, () => rulesView(root.replaceChildren() || root)));
  root.append(h('h2', {}, 'Safety rules'), h('button', { type: 'button', id: 'new-rule', class: 'primary', onclick: () => edit(null) }, 'New rule'), formHost, table);
}

function ruleForm(rule, cameras, zones, outputIds, saved) {
  const d = rule ? rule.doc : { kind: 'intrusion', severity: 'warning', enabled: true };
  const sel = (name, opts, value) => h('select', { name }, opts.map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') ? true : null }, t)));
  const form = h('form', { class: 'card', id: 'rule-form' },
    h('h3', {}, rule ? `Edit rule ${rule.id}` : 'New rule'),
    h('div', { class: 'grid2' },
      h('label', {}, 'Id', h('input', { name: 'id', value: rule ? rule.id : '', readonly: rule ? true : null, required: true, pattern: '[a-z0-9][a-z0-9-]*' })),
      h('label', {}, 'Name', h('input', { name: 'name', value: d.name || '', required: true })),
      h('label', {}, 'Type', sel('kind', RULE_KINDS.map((k) => [k, k.replace('_', ' ')]), d.kind)),
      h('label', {}, 'Severity', sel('severity', SEVERITIES.map((k) => [k, k]), d.severity)),
      h('label', {}, 'Zone', sel('zone', [['', '(none)'], ...zones.map((z) => [z.id, `${z.id} (${z.doc.camera})`])], d.zone)),
      h('label', {}, 'Camera', sel('camera', [['', '(from zone)'], ...cameras.map((c) => [c.id, c.id])], d.camera)),
      ...NUM_FIELDS.map(([k, t]) => h('label', {}, t, h('input', { name: k, type: 'number', step: 'any', min: '0', value: d[k] ?? '' }))),
      h('label', {}, 'PPE required (class that must be present)', h('input', { name: 'ppe_present_class', value: d.ppe_present_class || '' })),
      h('label', {}, 'PPE missing class', h('input', { name: 'ppe_missing_class', value: d.ppe_missing_class || '' })),
      h('label', {}, 'Direction (line crossing)', sel('direction', [['', '(any)'], ['left_to_right', 'left to right'], ['right_to_left', 'right to left']], d.direction)),
      h('label', {}, 'Schedule', h('input', { name: 'schedule', value: '', placeholder: 'always', disabled: true, title: 'The API has no schedule field yet: rules are always active' })),
      h('fieldset', {}, h('legend', {}, 'Outputs to drive'),
        outputIds.map((o) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'outputs', value: o, checked: (d.outputs || []).includes(o) }), o))),
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'enabled', checked: d.enabled !== false }), 'Enabled')),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save rule'),
      rule && rule.version !== null ? h('button', { type: 'button', class: 'danger', onclick: async () => {
        try {
          await api('DELETE', `/api/v1/rules/${encodeURIComponent(rule.id)}`);
          saved();
        } catch (e) { showFieldError(form, e); }
      } }, 'Delete') : null));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const doc = { name: f.get('name'), kind: f.get('kind'), severity: f.get('severity'), enabled: f.get('enabled') !== null };
    for (const k of ['zone', 'camera', 'direction', 'ppe_present_class', 'ppe_missing_class']) if (f.get(k)) doc[k] = f.get(k);
    for (const [k] of NUM_FIELDS) if (f.get(k) !== '') doc[k] = Number(f.get(k));
    const outs = f.getAll('outputs');
    if (outs.length) doc.outputs = outs;
    const body = { doc };
    if (rule && rule.version !== null) body.expected_version = rule.version;
    try {
      await api('PUT', `/api/v1/rules/${encodeURIComponent(f.get('id'))}`, body);
      saved();
    } catch (e) {
      showFieldError(form, e);
    }
  });
  return form;
}

/** Says the role does not allow a page. */
export function denied(root, min) {
  root.append(h('div', { class: 'card denied', id: 'denied' }, h('h2', {}, 'Not permitted'),
    h('p', {}, `This page needs the ${min} role.`)));
}

function eventRow(e, onAck) {
  const snap = h('td', {});
  if (e.snapshot && e.snapshot.status === 'stored') {
    snap.append(h('button', { type: 'button', onclick: async () => {
      const r = await api('GET', `/api/v1/events/${e.id}/snapshot`, undefined, { asResponse: true });
      const url = URL.createObjectURL(await r.blob());
      const img = h('img', { class: 'snapshot', src: url, alt: `snapshot of event ${e.id}` });
      img.addEventListener('load', () => URL.revokeObjectURL(url));
      snap.replaceChildren(img);
    } }, 'Snapshot'));
  }
  return h('tr', { dataset: { event: String(e.id), state: e.state, rule: e.rule }, class: `sev-${e.severity}` },
    h('td', {}, String(e.id)), h('td', {}, when(e.started_at)), h('td', {}, e.camera), h('td', {}, e.rule),
    h('td', {}, e.zone || ''), h('td', {}, e.track ?? ''), h('td', {}, e.severity), h('td', {}, e.state), h('td', {}, e.message), snap,
    h('td', {}, e.state === 'active' && can('operator') && onAck ? h('button', { type: 'button', class: 'ack', onclick: () => onAck(e) }, 'Acknowledge') : ''));
}

const EVENT_HEAD = ['Id', 'Started', 'Camera', 'Rule', 'Zone', 'Track', 'Severity', 'State', 'Message', 'Snapshot', ''];

/** Active alarms (live) and history with filters and export. */
export async function eventsView(root, cleanup) {
  const active = h('table', { class: 'list', id: 'active-events' });
  const refresh = async () => {
    const page = await api('GET', '/api/v1/events?state=open&limit=200');
    active.replaceChildren(h('tr', {}, EVENT_HEAD.map((t) => h('th', {}, t))),
      ...page.events.map((e) => eventRow(e, async (ev) => {
        try {
          await api('POST', `/api/v1/events/${ev.id}/ack`);
        } catch (err) {
          active.before(h('p', { class: 'error', role: 'alert' }, `Event ${ev.id}: ${err.message}`));
        }
        refresh();
      })));
    if (!page.events.length) active.append(h('tr', {}, h('td', { colspan: '11', class: 'muted' }, 'No active alarm.')));
  };
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 2000);
  cleanup.push(() => clearInterval(timer));

  const { cameras } = await loadConfig();
  const hist = h('table', { class: 'list', id: 'history' });
  let last = [];
  const filters = h('form', { class: 'card row', id: 'history-filters' },
    h('label', {}, 'From', h('input', { type: 'datetime-local', name: 'from' })),
    h('label', {}, 'To', h('input', { type: 'datetime-local', name: 'to' })),
    h('label', {}, 'Camera', h('select', { name: 'camera' }, h('option', { value: '' }, '(all)'), cameras.map((c) => h('option', { value: c.id }, c.id)))),
    h('label', {}, 'Rule', h('input', { name: 'rule', placeholder: 'rule id' })),
    h('label', {}, 'State', h('select', { name: 'state' }, ['', 'active', 'acknowledged', 'cleared', 'open'].map((s) => h('option', { value: s }, s || '(all)')))),
    h('button', { type: 'submit' }, 'Search'),
    h('button', { type: 'button', id: 'export-csv', onclick: () => exportCsv(last) }, 'Export CSV'));
  filters.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(filters);
    const q = new URLSearchParams({ limit: '500' });
    for (const k of ['camera', 'rule', 'state']) if (f.get(k)) q.set(k, f.get(k));
    for (const k of ['from', 'to']) if (f.get(k)) q.set(k, String(new Date(f.get(k)).getTime()));
    try {
      const page = await api('GET', `/api/v1/events?${q}`);
      last = page.events;
      hist.replaceChildren(h('tr', {}, EVENT_HEAD.map((t) => h('th', {}, t))), ...last.map((e) => eventRow(e, null)));
    } catch (e) {
      showFieldError(filters, e);
    }
  });
  root.append(h('h2', {}, 'Active alarms'), active, h('h2', {}, 'History'), filters, hist);
  filters.requestSubmit();
}

function exportCsv(events) {
  const cols = ['id', 'started_at', 'ended_at', 'camera', 'rule', 'zone', 'track', 'kind', 'severity', 'state', 'message'];
  const esc = (v) => `"${String(v ?? '').replaceAll('"', '""')}"`;
  const text = [cols.join(','), ...events.map((e) => cols.map((c) => esc(e[c])).join(','))].join('\n');
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = h('a', { href: url, download: 'safe-yolo-events.csv' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
