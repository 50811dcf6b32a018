// Admin pages: outputs (state and manual test), users, API keys, and the system page
// (with the integrations' delivery status and their test message).

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

/** The integrations' delivery per sink (GET /api/v1/system/integrations); admins can send a test message. */
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
