// Login/setup, the live wall, the single-camera view, rules and events.

import { api, h, login, setup, can, showFieldError, when, download } from './api.js';
import { LiveFeed, drawOverlay } from './live.js';

/** Loads cameras (ids and names), zones and counting lines. */
export async function loadConfig() {
  const [cams, zones, lines] = await Promise.all([
    api('GET', '/api/v1/cameras'), api('GET', '/api/v1/zones'), api('GET', '/api/v1/lines'),
  ]);
  return { cameras: merged(cams), zones: merged(zones), lines: merged(lines), health: cams.health || [] };
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
    [h('label', {}, 'Setup token (if not on the setup network)', h('input', { name: 'setup_token', autocomplete: 'off' })),
      h('p', { class: 'hint' }, 'Step 1 of the first-run setup: the token is in the daemon\'s log. A box with no camera then opens the wizard.')]);
  setupForm.hidden = true;
  const toggle = h('button', { type: 'button', class: 'link', id: 'show-setup', onclick: () => {
    setupForm.hidden = !setupForm.hidden;
    loginForm.hidden = !setupForm.hidden;
    toggle.textContent = setupForm.hidden ? 'First boot? Create the first admin' : 'Back to login';
  } }, 'First boot? Create the first admin');
  root.append(h('section', { class: 'login' }, h('h1', {}, 'SAFE-YOLO'), loginForm, setupForm, toggle, status));
}

function zoneDrawer(zones, lines, camera) {
  const mine = zones.filter((z) => z.doc.camera === camera && Array.isArray(z.doc.polygon));
  const myLines = lines.filter((l) => l.doc.camera === camera && Array.isArray(l.doc.from));
  return (ctx, meta) => drawOverlay(ctx, meta, mine, { lines: myLines });
}

/** The wall: every camera live, overlays drawn client-side. */
export async function wallView(root, cleanup) {
  const { cameras, zones, lines, health } = await loadConfig();
  const grid = h('div', { class: 'wall', id: 'wall' });
  root.append(h('h2', {}, 'Live wall'), grid);
  for (const cam of cameras) {
    const canvas = h('canvas', { width: 640, height: 360, dataset: { camera: cam.id, frames: '0' } });
    const hs = health.find((x) => x.id === cam.id);
    const tile = h('a', { class: 'tile', href: `#/camera/${encodeURIComponent(cam.id)}` },
      canvas,
      h('div', { class: 'caption' }, h('strong', {}, cam.doc.name || cam.id), ' ',
        h('span', { class: `state ${hs ? hs.state : ''}` }, hs ? hs.state : ''),
        hs && hs.tamper && hs.tamper.length ? h('span', { class: 'state tampered' }, ` tampered: ${hs.tamper.join(', ')}`) : null));
    grid.append(tile);
    const feed = new LiveFeed(cam.id, canvas, zoneDrawer(zones, lines, cam.id));
    cleanup.push(() => feed.stop());
  }
  if (!cameras.length) grid.append(h('p', { class: 'muted' }, 'No cameras configured.'));
}

/** One camera, large, with its tracks and zone states listed. */
export async function cameraView(root, cleanup, id) {
  const { cameras, zones, lines } = await loadConfig();
  const cam = cameras.find((c) => c.id === id);
  if (!cam) {
    root.append(h('p', { class: 'error' }, `Unknown camera ${id}`));
    return;
  }
  const canvas = h('canvas', { class: 'big', width: 640, height: 360, dataset: { camera: id, frames: '0', tracks: '' } });
  const list = h('ul', { class: 'detections', id: 'track-list' });
  const zoneList = h('ul', { class: 'detections', id: 'zone-states' });
  const base = zoneDrawer(zones, lines, id);
  let lastScene = -1;
  const feed = new LiveFeed(id, canvas, (ctx, meta) => {
    base(ctx, meta);
    // The lists change only with the analysis, not with every frame.
    if (!meta || meta.scene_seq === lastScene) return;
    lastScene = meta.scene_seq;
    list.replaceChildren(...(meta.tracks || []).map((t) =>
      h('li', { dataset: { track: String(t.id) } }, `#${t.id} ${t.class}${t.lost ? ' (lost)' : ''}`)));
    zoneList.replaceChildren(...(meta.zones || []).map((z) =>
      h('li', { class: z.alarm ? 'alarm' : null, dataset: { zone: z.id } },
        `${z.id}: ${z.alarm ? 'ALARM, ' : ''}${z.inside.length} inside${z.crossings_a_to_b || z.crossings_b_to_a ? `, A\u2192B ${z.crossings_a_to_b}, B\u2192A ${z.crossings_b_to_a}` : ''}`)));
  });
  cleanup.push(() => feed.stop());
  root.append(h('h2', {}, cam.doc.name || id),
    h('div', { class: 'split' }, h('div', { class: 'stage' }, canvas),
      h('aside', { class: 'card' }, h('h3', {}, 'Tracks'), list, h('h3', {}, 'Zones and lines'), zoneList,
        can('operator') ? h('a', { href: `#/zones/${encodeURIComponent(id)}` }, 'Edit zones and lines') : null)));
}

const RULE_KINDS = ['intrusion', 'dwell', 'occupancy', 'line_crossing', 'missing_ppe', 'camera_offline', 'camera_tamper', 'door_open', 'detector_fault'];
const TAMPER_REASONS = ['frozen', 'covered', 'blinded', 'defocused', 'moved'];
const SEVERITIES = ['info', 'warning', 'critical'];
const NUM_FIELDS = [
  ['seconds', 'Seconds (dwell)'], ['max_persons', 'Max persons (occupancy)'],
  ['min_frames', 'Min frames'], ['grace_s', 'Grace (s)'], ['cooldown_s', 'Cooldown (s)'],
  ['clear_after_s', 'Clear after (s)'], ['offline_after_s', 'Offline after (s)'],
  ['open_after_s', 'Door open longer than (s)'], ['down_after_s', 'Detector down longer than (s)'],
  ['tamper_after_s', 'Tampered longer than (s)'],
];

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const HHMM = '([01][0-9]|2[0-3]):[0-5][0-9]|24:00';

/** A short description of a rule's schedule. */
function scheduleText(sc) {
  if (!sc) return 'always';
  return `${(sc.days || DAYS).join(' ')} ${sc.from || '00:00'}-${sc.to || '24:00'}`;
}

/** The safety rules panel. */
export async function rulesView(root) {
  if (!can('operator')) return denied(root, 'operator');
  const [rules, { cameras, zones, lines }, outs, locks] = await Promise.all([
    api('GET', '/api/v1/rules'), loadConfig(), api('GET', '/api/v1/outputs'), api('GET', '/api/v1/system/interlocks'),
  ]);
  const level = Object.fromEntries(locks.map((l) => [l.id, l.level]));
  const all = merged(rules);
  const outputIds = (outs.outputs || []).map((o) => o.id ?? o.name).filter(Boolean);
  const table = h('table', { class: 'list', id: 'rules-table' },
    h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Name'), h('th', {}, 'Kind'), h('th', {}, 'Zone / line'), h('th', {}, 'Severity'),
      h('th', {}, 'Schedule'), h('th', {}, 'Armed by'), h('th', {}, 'Outputs'), h('th', {}, '')));
  const formHost = h('div');
  for (const r of all) {
    table.append(h('tr', { dataset: { rule: r.id } }, h('td', {}, r.id), h('td', {}, r.doc.name), h('td', {}, r.doc.kind),
      h('td', {}, r.doc.zone || r.doc.camera || ''), h('td', {}, r.doc.severity), h('td', {}, scheduleText(r.doc.schedule)),
      h('td', { class: level[r.doc.armed_by] === 'disarmed' ? 'disarmed' : null }, r.doc.armed_by ? `${r.doc.armed_by} (${level[r.doc.armed_by] || 'unknown'})` : 'always'),
      h('td', {}, (r.doc.outputs || []).join(', ')),
      h('td', {}, h('button', { type: 'button', onclick: () => edit(r) }, 'Edit'))));
  }
  const edit = (r) => formHost.replaceChildren(ruleForm(r, cameras, zones, lines, outputIds, locks.map((l) => l.id), () => rulesView(root.replaceChildren() || root)));
  root.append(h('h2', {}, 'Safety rules'), h('button', { type: 'button', id: 'new-rule', class: 'primary', onclick: () => edit(null) }, 'New rule'), formHost, table);
}

function ruleForm(rule, cameras, zones, lines, outputIds, interlockIds, saved) {
  const d = rule ? rule.doc : { kind: 'intrusion', severity: 'warning', enabled: true };
  const sc = d.schedule || null;
  const siren = d.siren || {};
  const sel = (name, opts, value) => h('select', { name }, opts.map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') ? true : null }, t)));
  const num = (name, value, attrs = {}) => h('input', { name, type: 'number', step: 'any', min: '0', value: value ?? '', ...attrs });
  // The zone select lists lines for line-crossing rules and areas otherwise.
  const zoneSel = h('select', { name: 'zone' });
  const fillZones = (kind, value) => {
    const pool = kind === 'line_crossing'
      ? lines.map((l) => [l.id, `line ${l.id} (${l.doc.camera})`])
      : zones.map((z) => [z.id, `${z.id} (${z.doc.camera})`]);
    zoneSel.replaceChildren(...[['', '(none)'], ...pool].map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') ? true : null }, t)));
  };
  fillZones(d.kind, d.zone);
  const kindSel = sel('kind', RULE_KINDS.map((k) => [k, k.replace('_', ' ')]), d.kind);
  kindSel.addEventListener('change', () => fillZones(kindSel.value, zoneSel.value));
  const schedule = h('fieldset', { id: 'rule-schedule' }, h('legend', {}, 'Schedule'),
    h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'scheduled', checked: !!sc }), 'Armed only on these days and hours'),
    h('div', { class: 'row days' }, DAYS.map((day) => h('label', { class: 'inline' },
      h('input', { type: 'checkbox', name: 'schedule.days', value: day, checked: sc ? (sc.days || DAYS).includes(day) : day !== 'sat' && day !== 'sun' }), day))),
    h('div', { class: 'row' },
      // Text, not type=time: the end of the day is 24:00, and the box's clock is 24-hour.
      h('label', {}, 'From (HH:MM)', h('input', { name: 'schedule.from', pattern: HHMM, placeholder: '07:00', value: sc ? sc.from || '00:00' : '07:00', size: '5' })),
      h('label', {}, 'To (HH:MM, 24:00 = end of day)', h('input', { name: 'schedule.to', pattern: HHMM, placeholder: '18:00', value: sc ? sc.to || '24:00' : '18:00', size: '5' }))));
  const form = h('form', { class: 'card', id: 'rule-form' },
    h('h3', {}, rule ? `Edit rule ${rule.id}` : 'New rule'),
    h('div', { class: 'grid2' },
      h('label', {}, 'Id', h('input', { name: 'id', value: rule ? rule.id : '', readonly: rule ? true : null, required: true, pattern: '[a-z0-9][a-z0-9-]*' })),
      h('label', {}, 'Name', h('input', { name: 'name', value: d.name || '', required: true })),
      h('label', {}, 'Type', kindSel),
      h('label', {}, 'Severity', sel('severity', SEVERITIES.map((k) => [k, k]), d.severity)),
      h('label', {}, 'Zone (line for line crossing)', zoneSel),
      h('label', {}, 'Camera', sel('camera', [['', '(from zone)'], ...cameras.map((c) => [c.id, c.id])], d.camera)),
      ...NUM_FIELDS.map(([k, t]) => h('label', {}, t, num(k, d[k]))),
      h('label', {}, 'PPE required (class that must be present)', h('input', { name: 'ppe_present_class', value: d.ppe_present_class || '' })),
      h('label', {}, 'PPE missing class', h('input', { name: 'ppe_missing_class', value: d.ppe_missing_class || '' })),
      h('label', {}, 'Direction (line crossing)', sel('direction', [['', '(default)'], ['a_to_b', 'side A to side B'], ['b_to_a', 'side B to side A'], ['either', 'either way']], d.direction)),
      h('fieldset', {}, h('legend', {}, 'Tamper reasons (camera tamper; none checked: all)'),
        TAMPER_REASONS.map((r) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'reasons', value: r, checked: (d.reasons || []).includes(r) }), r))),
      h('label', {}, 'Armed by (interlock; unknown or stale arms)', sel('armed_by', [['', '(always armed)'], ...interlockIds.map((i) => [i, i])], d.armed_by)),
      h('label', {}, 'Anchor (point of the person tested)', sel('anchor', [['', '(default: feet)'], ['feet', 'feet'], ['centre', 'centre']], d.anchor)),
      h('label', {}, 'Siren pattern', sel('siren.pattern', [['', '(default: steady)'], ['steady', 'steady'], ['pulsed', 'pulsed']], siren.pattern)),
      h('label', {}, 'Siren period (ms, pulsed)', num('siren.period_ms', siren.period_ms, { step: '1', min: '100', max: '10000' })),
      h('label', {}, 'Siren duration (s; empty: until acknowledged)', num('siren.duration_s', siren.duration_s, { min: '1', max: '3600' })),
      h('label', {}, 'Relay latch (s; empty: until acknowledged)', num('relay_latch_s', d.relay_latch_s, { min: '0.1', max: '86400' })),
      h('fieldset', {}, h('legend', {}, 'Outputs to drive'),
        outputIds.map((o) => h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'outputs', value: o, checked: (d.outputs || []).includes(o) }), o))),
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'enabled', checked: d.enabled !== false }), 'Enabled')),
    schedule,
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
    for (const k of ['zone', 'camera', 'direction', 'ppe_present_class', 'ppe_missing_class', 'anchor', 'armed_by']) if (f.get(k)) doc[k] = f.get(k);
    for (const [k] of NUM_FIELDS) if (f.get(k) !== '') doc[k] = Number(f.get(k));
    if (f.get('relay_latch_s') !== '') doc.relay_latch_s = Number(f.get('relay_latch_s'));
    if (f.get('siren.pattern') || f.get('siren.period_ms') !== '' || f.get('siren.duration_s') !== '') {
      doc.siren = { pattern: f.get('siren.pattern') || (f.get('siren.period_ms') !== '' ? 'pulsed' : 'steady') };
      if (f.get('siren.period_ms') !== '') doc.siren.period_ms = Number(f.get('siren.period_ms'));
      if (f.get('siren.duration_s') !== '') doc.siren.duration_s = Number(f.get('siren.duration_s'));
    }
    if (f.get('scheduled') !== null) {
      doc.schedule = { days: f.getAll('schedule.days'), from: f.get('schedule.from'), to: f.get('schedule.to') };
    }
    const outs = f.getAll('outputs');
    if (outs.length) doc.outputs = outs;
    const reasons = f.getAll('reasons');
    if (reasons.length && doc.kind === 'camera_tamper') doc.reasons = reasons;
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
  const filters = h('form', { class: 'card row', id: 'history-filters' },
    h('label', {}, 'From', h('input', { type: 'datetime-local', name: 'from' })),
    h('label', {}, 'To', h('input', { type: 'datetime-local', name: 'to' })),
    h('label', {}, 'Camera', h('select', { name: 'camera' }, h('option', { value: '' }, '(all)'), cameras.map((c) => h('option', { value: c.id }, c.id)))),
    h('label', {}, 'Rule', h('input', { name: 'rule', placeholder: 'rule id' })),
    h('label', {}, 'State', h('select', { name: 'state' }, ['', 'active', 'acknowledged', 'cleared', 'open'].map((s) => h('option', { value: s }, s || '(all)')))),
    h('button', { type: 'submit' }, 'Search'),
    h('span', { class: 'downloads' },
      h('button', { type: 'button', id: 'export-csv', onclick: () => exportEvents('csv') }, 'Export CSV'),
      h('button', { type: 'button', id: 'export-json', onclick: () => exportEvents('json') }, 'Export JSON')));
  // The filters as query parameters, shared by the list and the export.
  const filterQuery = () => {
    const f = new FormData(filters);
    const q = new URLSearchParams();
    for (const k of ['camera', 'rule', 'state']) if (f.get(k)) q.set(k, f.get(k));
    for (const k of ['from', 'to']) if (f.get(k)) q.set(k, String(new Date(f.get(k)).getTime()));
    return q;
  };
  const exportEvents = async (format) => {
    const q = filterQuery();
    q.set('format', format);
    for (const old of filters.querySelectorAll('.field-error')) old.remove();
    try {
      filters.dataset.exported = await download(`/api/v1/events/export?${q}`, `safe-yolo-events.${format}`);
    } catch (e) {
      showFieldError(filters, e);
    }
  };
  filters.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = filterQuery();
    q.set('limit', '500');
    try {
      const page = await api('GET', `/api/v1/events?${q}`);
      const last = page.events;
      hist.replaceChildren(h('tr', {}, EVENT_HEAD.map((t) => h('th', {}, t))), ...last.map((e) => eventRow(e, null)));
    } catch (e) {
      showFieldError(filters, e);
    }
  });
  root.append(h('h2', {}, 'Active alarms'), active, h('h2', {}, 'History'), filters, hist);
  filters.requestSubmit();
}
