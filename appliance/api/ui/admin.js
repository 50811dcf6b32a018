// Admin pages: outputs (state and manual test), users, API keys, and the system page
// (with the integrations' delivery status, their test message and, for admins, the
// integration settings form).

import { api, h, can, showFieldError, when, download } from './api.js';
import { denied } from './views.js';

function cell(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A table of objects; `actions(row)` returns the last cell's content. */
function table(id, rows, cols, actions) {
  return h('table', { class: 'list', id },
    h('tr', {}, cols.map((c) => h('th', {}, c.replaceAll('_', ' '))), actions ? h('th', {}, '') : null),
    rows.map((r) => h('tr', {}, cols.map((c) => h('td', {}, c.endsWith('_at') && typeof r[c] === 'number' ? when(r[c]) : cell(r[c]))),
      actions ? h('td', {}, actions(r)) : null)));
}

function rerender(root, view) {
  return () => {
    root.replaceChildren();
    view(root);
  };
}

/** Output lines, their state, and the manual test (admin only). */
export async function outputsView(root, cleanup) {
  const body = h('div');
  const draw = async () => {
    const s = await api('GET', '/api/v1/outputs');
    body.replaceChildren(
      h('p', {}, `Backend: ${s.backend}; write errors: ${s.write_errors ?? 0}`),
      table('outputs-table', s.outputs || [], ['id', 'role', 'safe_state', 'on', 'desired', 'confirmed'],
        can('admin') ? (o) => {
          const f = h('form', { class: 'inline-form' },
            h('input', { name: 'duration_ms', type: 'number', min: '100', max: '30000', value: '1000' }),
            h('button', { type: 'submit' }, 'Test'));
          f.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            try {
              await api('POST', `/api/v1/outputs/${encodeURIComponent(o.id)}/test`, { duration_ms: Number(f.elements.duration_ms.value) });
            } catch (e) { showFieldError(f, e); }
          });
          return f;
        } : null),
      s.driver ? h('p', { class: 'muted' }, `Driver: ${cell(s.driver)}`) : null,
      s.inputs ? h('p', { class: 'muted' }, `Inputs: ${cell(s.inputs)}`) : null);
  };
  await draw();
  const t = setInterval(() => draw().catch(() => {}), 2000);
  cleanup.push(() => clearInterval(t));
  root.append(h('h2', {}, 'Outputs'), body);
}

const ROLES = ['viewer', 'operator', 'admin'];
const roleSelect = (name, value) => h('select', { name }, ROLES.map((r) => h('option', { value: r, selected: r === value ? true : null }, r)));

/** Users (admin). */
export async function usersView(root) {
  if (!can('admin')) return denied(root, 'admin');
  const users = await api('GET', '/api/v1/users');
  const again = rerender(root, usersView);
  const form = h('form', { class: 'card row', id: 'new-user' },
    h('label', {}, 'Username', h('input', { name: 'username', required: true })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true })),
    h('label', {}, 'Role', roleSelect('role', 'viewer')),
    h('button', { type: 'submit', class: 'primary' }, 'Create user'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      await api('POST', '/api/v1/users', { username: f.get('username'), password: f.get('password'), role: f.get('role') });
      again();
    } catch (e) { showFieldError(form, e); }
  });
  const act = (u) => {
    const sel = roleSelect('role', u.role);
    const err = h('span', { class: 'error' });
    const run = (fn) => async () => {
      try { await fn(); again(); } catch (e) { err.textContent = e.message; }
    };
    sel.addEventListener('change', run(() => api('PATCH', `/api/v1/users/${encodeURIComponent(u.username)}`, { role: sel.value })));
    return h('span', { class: 'row' }, sel,
      h('button', { type: 'button', onclick: run(() => api('PATCH', `/api/v1/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled })) }, u.disabled ? 'Enable' : 'Disable'),
      h('button', { type: 'button', class: 'danger', onclick: run(() => api('DELETE', `/api/v1/users/${encodeURIComponent(u.username)}`)) }, 'Delete'), err);
  };
  root.append(h('h2', {}, 'Users'), form, table('users-table', users, ['username', 'role', 'created_at', 'disabled'], act));
  await keysSection(root);
}

async function keysSection(root) {
  const keys = await api('GET', '/api/v1/keys');
  const shown = h('div');
  const form = h('form', { class: 'card row', id: 'new-key' },
    h('label', {}, 'Label', h('input', { name: 'label', required: true })),
    h('label', {}, 'Role', roleSelect('role', 'viewer')),
    h('label', {}, 'Expires in (days)', h('input', { name: 'expires_in_days', type: 'number', min: '1', max: '3650', value: '365' })),
    h('button', { type: 'submit', class: 'primary' }, 'Create API key'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      const k = await api('POST', '/api/v1/keys', { label: f.get('label'), role: f.get('role'), expires_in_days: Number(f.get('expires_in_days')) });
      shown.replaceChildren(h('p', { class: 'card secret' }, 'Copy this key now, it is shown once: ', h('code', {}, k.token || '')));
    } catch (e) { showFieldError(form, e); }
  });
  const list = table('keys-table', keys, ['id', 'label', 'role', 'created_at', 'expires_at', 'revoked'],
    (k) => (k.revoked ? '' : h('button', { type: 'button', class: 'danger', onclick: async () => {
      await api('DELETE', `/api/v1/keys/${encodeURIComponent(k.id)}`);
      root.replaceChildren();
      usersView(root);
    } }, 'Revoke')));
  root.append(h('h2', {}, 'API keys'), form, shown, list);
}

const yesNo = (v) => (v === null || v === undefined ? 'unknown' : v ? 'yes' : 'no');

/** The A/B update state (`update` of GET /api/v1/system, read from RAUC). */
function updateCard(u, kv) {
  const card = h('section', { class: 'card', id: 'update-status' }, h('h3', {}, 'Update status'));
  if (!u) {
    card.append(h('p', { class: 'muted' }, 'The update state could not be read.'));
    return card;
  }
  const ab = u.slot_source !== 'unknown';
  card.dataset.slotSource = u.slot_source;
  card.append(kv([
    ['System version', u.version || 'unknown'],
    ['Booted slot', u.booted_slot ? `${u.booted_slot} (from ${u.slot_source === 'rauc' ? 'RAUC' : 'kernel command line'})` : 'not an A/B system'],
    ['Boot marked good', yesNo(u.boot_good)],
    ['Next boot from', u.boot_primary || (ab ? 'unknown' : '-')],
    ['Compatible', u.compatible || '-'],
  ]));
  if (u.primary_differs) {
    card.append(h('p', { class: 'error', role: 'status' },
      'Another slot is primary: an installed update waits for a reboot, or this boot fell back after a failed one.'));
  }
  if (u.rauc_error) card.append(h('p', { class: 'muted' }, `RAUC: ${u.rauc_error}`));
  if ((u.slots || []).length) {
    card.append(table('update-slots', u.slots, ['name', 'bootname', 'state', 'boot_status', 'bundle_version', 'installed_timestamp']));
  }
  return card;
}

/** The backup download (admin): a tar of the database, snapshots and config. */
function backupCard() {
  const status = h('span', { class: 'muted', id: 'backup-status' });
  const snaps = h('input', { type: 'checkbox', name: 'snapshots', checked: true });
  const button = h('button', { type: 'button', id: 'download-backup', class: 'primary', onclick: async () => {
    button.disabled = true;
    status.textContent = 'Preparing the backup\u2026';
    try {
      const name = await download(`/api/v1/system/backup?snapshots=${snaps.checked}`, 'safe-yolo-backup.tar');
      status.textContent = `Downloaded ${name}`;
    } catch (e) {
      status.textContent = e.message;
      status.className = 'error';
    } finally {
      button.disabled = false;
    }
  } }, 'Download backup');
  return h('section', { class: 'card', id: 'backup' }, h('h3', {}, 'Backup'),
    h('p', { class: 'muted' }, 'A consistent copy of the database, the configuration and (optionally) the snapshots, with a SHA-256 manifest.'),
    h('div', { class: 'downloads' }, h('label', { class: 'inline' }, snaps, 'Include snapshots'), button), status);
}

const list = (v) => String(v || '').split(',').map((x) => x.trim()).filter((x) => x);
const optional = (obj, key, v) => {
  if (v === '' || v === null || v === undefined) delete obj[key];
  else obj[key] = v;
};

/**
 * Rows of a list in the settings form (webhooks, interlocks): each row keeps the
 * object it was made from (fields the form does not show are sent back as read), and
 * its inputs are named `<key>[<i>].<field>` as the API names its problems.
 */
function rowList(key, make) {
  const host = h('div', { class: 'rows', id: `${key}-rows` });
  const renumber = () => [...host.children].forEach((row, i) => {
    for (const el of row.querySelectorAll('[name]')) el.name = el.name.replace(/^\w+\[\d+\]/, `${key}[${i}]`);
    row.querySelector('legend').textContent = `${key === 'webhooks' ? 'Webhook' : 'Interlock'} ${i + 1}`;
  });
  const add = (obj) => {
    const row = make(obj, `${key}[${host.children.length}]`);
    row.original = obj;
    row.append(h('button', { type: 'button', class: 'danger', onclick: () => { row.remove(); renumber(); } }, 'Remove'));
    host.append(row);
    renumber();
  };
  return { host, add, rows: () => [...host.children] };
}

/** The integration settings (admin): MQTT, webhooks, Modbus, interlocks. A secret left blank is kept. */
function integrationSettingsForm(v) {
  const d = v.doc || {};
  const m = d.mqtt || {};
  const mb = d.modbus || {};
  const sec = v.secrets || {};
  const input = (name, value, attrs = {}) => h('input', { name, value: value ?? '', ...attrs });
  const secret = (name, isSet) => h('input', { name, type: 'password', autocomplete: 'new-password', value: '',
    placeholder: isSet ? 'set (blank keeps it)' : 'not set' });
  const hooks = rowList('webhooks', (w, n) => h('fieldset', { class: 'grid2 webhook' }, h('legend', {}, ''),
    h('label', {}, 'Id', input(`${n}.id`, w.id, { required: true })),
    h('label', {}, 'URL (HTTPS only: host, port, path)', input(`${n}.url`, w.url, { required: true })),
    h('label', {}, 'Signing secret (16+ characters)', secret(`${n}.secret`, (sec.webhook_secret_set || []).includes(w.id))),
    h('label', {}, 'Severities (comma-separated; empty: all)', input(`${n}.severities`, (w.severities || []).join(', ')))));
  const locks = rowList('interlocks', (l, n) => h('fieldset', { class: 'grid2 interlock' }, h('legend', {}, ''),
    h('label', {}, 'Id', input(`${n}.id`, l.id, { required: true })),
    h('label', {}, 'Name', input(`${n}.name`, l.name)),
    h('label', {}, 'Source', h('select', { name: `${n}.source` }, ['modbus', 'mqtt', 'gpio'].map((x) => h('option', { value: x, selected: x === l.source ? true : null }, x)))),
    h('label', {}, 'Coil (modbus)', input(`${n}.coil`, l.coil, { type: 'number', min: '1', max: '999' })),
    h('label', {}, 'Topic (mqtt)', input(`${n}.topic`, l.topic)),
    h('label', {}, 'Armed value (mqtt)', input(`${n}.armed_value`, l.armed_value)),
    h('label', {}, 'Stale after (s; empty: never)', input(`${n}.stale_after_s`, l.stale_after_s, { type: 'number', step: 'any', min: '0.5' }))));
  (d.webhooks || []).forEach(hooks.add);
  (d.interlocks || []).forEach(locks.add);
  const status = h('span', { class: 'muted', id: 'integration-settings-status' });
  const form = h('form', { class: 'settings', id: 'integration-settings' },
    h('fieldset', { class: 'grid2' }, h('legend', {}, 'MQTT (empty URL: off)'),
      h('label', {}, 'Broker URL (mqtt:// or mqtts://)', input('mqtt.url', m.url)),
      h('label', {}, 'Topic prefix', input('mqtt.topic_prefix', m.topic_prefix)),
      h('label', {}, 'Username', input('mqtt.username', m.username, { autocomplete: 'off' })),
      h('label', {}, 'Password', secret('mqtt.password', sec.mqtt_password_set)),
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'mqtt.home_assistant', checked: !!m.home_assistant }), 'Home Assistant discovery')),
    h('h4', {}, 'Webhooks'), hooks.host,
    h('button', { type: 'button', id: 'add-webhook', onclick: () => hooks.add({}) }, 'Add webhook'),
    h('fieldset', { class: 'grid2' }, h('legend', {}, 'Modbus TCP server (empty bind: off)'),
      h('label', {}, 'Bind (address:port)', input('modbus.bind', mb.bind)),
      h('label', {}, 'Allowed PLCs (comma-separated networks)', input('modbus.allow', (mb.allow || []).join(', '))),
      h('label', {}, 'Unit id', input('modbus.unit_id', mb.unit_id, { type: 'number', min: '1', max: '247' }))),
    h('h4', {}, 'Interlocks'), locks.host,
    h('button', { type: 'button', id: 'add-interlock', onclick: () => locks.add({ source: 'modbus' }) }, 'Add interlock'),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save integration settings'), status));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const doc = { ...d };
    if (f.get('mqtt.url')) {
      const mq = { ...m, url: f.get('mqtt.url'), home_assistant: f.get('mqtt.home_assistant') !== null };
      for (const k of ['topic_prefix', 'username', 'password']) optional(mq, k, f.get(`mqtt.${k}`));
      doc.mqtt = mq;
    } else delete doc.mqtt;
    doc.webhooks = hooks.rows().map((row, i) => {
      const n = `webhooks[${i}]`;
      const w = { ...row.original, id: f.get(`${n}.id`), url: f.get(`${n}.url`) };
      optional(w, 'secret', f.get(`${n}.secret`));
      const sev = list(f.get(`${n}.severities`));
      optional(w, 'severities', sev.length ? sev : null);
      return w;
    });
    if (f.get('modbus.bind')) {
      const mo = { ...mb, bind: f.get('modbus.bind'), allow: list(f.get('modbus.allow')) };
      optional(mo, 'unit_id', f.get('modbus.unit_id') === '' ? null : Number(f.get('modbus.unit_id')));
      doc.modbus = mo;
    } else delete doc.modbus;
    doc.interlocks = locks.rows().map((row, i) => {
      const n = `interlocks[${i}]`;
      const l = { ...row.original, id: f.get(`${n}.id`), source: f.get(`${n}.source`) };
      for (const k of ['name', 'topic', 'armed_value']) optional(l, k, f.get(`${n}.${k}`));
      for (const k of ['coil', 'stale_after_s']) optional(l, k, f.get(`${n}.${k}`) === '' ? null : Number(f.get(`${n}.${k}`)));
      return l;
    });
    const body = { doc };
    if (v.version !== null && v.version !== undefined) body.expected_version = v.version;
    status.textContent = '';
    try {
      const saved = await api('PUT', '/api/v1/system/integrations/settings', body);
      v.version = saved.version;
      for (const el of form.querySelectorAll('input[type=password]')) {
        el.value = '';
      }
      status.textContent = `Saved (version ${saved.version}): the integrations restart with these settings.`;
    } catch (e) { showFieldError(form, e); }
  });
  return form;
}

/** The integrations' delivery per sink (GET /api/v1/system/integrations); admins can send a test message and edit the settings. */
async function integrationsCard(kv) {
  const card = h('section', { class: 'card', id: 'integrations' }, h('h3', {}, 'Integrations'));
  let o;
  try {
    o = await api('GET', '/api/v1/system/integrations');
  } catch (e) {
    card.append(h('p', { class: 'muted' }, e.message));
    return card;
  }
  card.append(kv([['Outbox entries', o.entries], ['Dropped (full or aged out)', o.dropped]]));
  if (o.modbus_error) card.append(h('p', { class: 'error', id: 'modbus-error' }, `Modbus server not running: ${o.modbus_error}`));
  if (!(o.sinks || []).length) card.append(h('p', { class: 'muted' }, 'No MQTT broker or webhook is configured.'));
  else card.append(table('integration-sinks', o.sinks, ['name', 'backlog', 'delivered', 'last_event_id', 'last_delivered_at', 'last_error', 'last_error_at']));
  try {
    const locks = await api('GET', '/api/v1/system/interlocks');
    if (locks.length) {
      card.append(h('h4', {}, 'Interlocks (machine states that arm rules; unknown arms)'),
        table('interlocks', locks.map((l) => ({ ...l, rules: l.rules.join(', ') })), ['id', 'source', 'address', 'level', 'rules']));
    }
  } catch (e) {
    card.append(h('p', { class: 'muted' }, e.message));
  }
  if (can('admin')) {
    const status = h('span', { class: 'muted', id: 'integration-test-status' });
    const button = h('button', { type: 'button', id: 'integration-test', onclick: async () => {
      button.disabled = true;
      try {
        const r = await api('POST', '/api/v1/system/integrations/test');
        status.textContent = r.outbox_seq === null ? 'No integration is configured: nothing sent.' : `Test message queued (outbox ${r.outbox_seq}).`;
      } catch (e) {
        status.textContent = e.message;
      } finally {
        button.disabled = false;
      }
    } }, 'Send test event');
    card.append(h('div', { class: 'downloads' }, button), status);
    try {
      const settings = await api('GET', '/api/v1/system/integrations/settings');
      card.append(h('details', { id: 'integration-settings-panel' }, h('summary', {}, 'Edit integration settings'),
        integrationSettingsForm(settings)));
    } catch (e) {
      card.append(h('p', { class: 'muted' }, e.message));
    }
  }
  return card;
}

/** Version, health, model, storage, certificate, update status; backup for admins. */
export async function systemView(root) {
  const s = await api('GET', '/api/v1/system');
  const kv = (pairs) => h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, cell(v))]));
  const st = s.storage || {};
  root.append(h('h2', {}, 'System'),
    h('div', { class: 'cards', id: 'system' },
      h('section', { class: 'card' }, h('h3', {}, 'Firmware'), kv([
        ['Version', s.version], ['Uptime', `${Math.floor((s.uptime_s || 0) / 60)} min`],
        ['TLS minimum', s.tls_min_version], ['Outputs backend', s.outputs_backend]])),
      updateCard(s.update, kv),
      h('section', { class: 'card' }, h('h3', {}, 'Model'), kv(Object.entries(s.model && typeof s.model === 'object' ? s.model : { model: s.model }))),
      h('section', { class: 'card' }, h('h3', {}, 'Storage'), kv([
        ['Disk full', st.disk_full], ['Snapshot quota exceeded', st.snapshot_quota_exceeded],
        ...Object.entries(st.stats || {})])),
      h('section', { class: 'card' }, h('h3', {}, 'Certificate'), kv(Object.entries(s.certificate || {})
        .map(([k, v]) => [k, k.startsWith('not_') && typeof v === 'number' ? new Date(v * 1000).toISOString().slice(0, 10) : v]))),
      h('section', { class: 'card' }, h('h3', {}, 'Cameras'), table('camera-health', s.cameras || [], ['id', 'state', 'reason'])),
      await integrationsCard(kv),
      can('admin') ? backupCard() : null));
}
