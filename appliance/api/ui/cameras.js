// The cameras page (list with health; add, edit, disable, enable, delete) and the
// camera form it shares with the first-run wizard: recorded footage inside the media
// directory, a discovered V4L2 device or an IP camera over RTSP, with a still preview
// of the source.

import { api, h, can, showFieldError } from './api.js';
import { denied, merged } from './views.js';

const FORMATS = ['auto', 'mjpeg', 'yuyv', 'nv12', 'nv16', 'nv24', 'rgb24', 'bgr24', 'nv12m', 'nv16m'];

/** A camera source in a few words. */
export function sourceText(src) {
  if (!src) return '';
  if (src.kind === 'replay') return `recorded: ${src.path}`;
  if (src.kind === 'rtsp') return `${src.url}${src.username ? ` (as ${src.username})` : ''}`;
  const size = src.width && src.height ? ` ${src.width}x${src.height}` : '';
  return `${src.device}${size}${src.fps ? ` @${src.fps}` : ''}${src.format ? ` ${src.format}` : ''}`;
}

/** The discovered devices' modes as `[label, {width, height, fps, format}]` (discrete sizes only). */
function modes(device) {
  const out = [];
  for (const f of device.formats || []) {
    if (!f.format) continue;
    for (const s of f.sizes || []) {
      if (s.kind !== 'discrete') continue;
      const fps = Math.max(0, ...(s.rates || []).map((r) => (r.kind === 'discrete' ? r.fps : r.max_fps)));
      out.push([`${s.width}x${s.height} ${f.format}${fps ? ` @${fps}` : ''}`, { width: s.width, height: s.height, fps: fps || '', format: f.format }]);
    }
  }
  return out;
}

/**
 * The camera form. `camera` ({id, doc, version}) to edit one, else a new camera.
 * `onSaved(id, doc, preview)` after the API took it (`preview`: the last preview's
 * JPEG Blob or null). With `previewFirst`, Save waits for a preview of the source as
 * it stands in the form (the wizard: see before saving).
 */
export function cameraForm({ camera = null, previewFirst = false, onSaved }) {
  const d = camera ? camera.doc : { name: '', enabled: true, source: { kind: 'replay', path: 'vtest.mjpeg', fps: 10 } };
  const src = d.source || {};
  const num = (name, value, attrs = {}) => h('input', { name, type: 'number', min: '1', step: 'any', value: value ?? '', ...attrs });
  const kind = h('select', { name: 'source.kind' },
    h('option', { value: 'replay', selected: src.kind === 'replay' ? true : null }, 'Recorded footage (media directory)'),
    h('option', { value: 'v4l2', selected: src.kind === 'v4l2' ? true : null }, 'Camera device (V4L2)'),
    h('option', { value: 'rtsp', selected: src.kind === 'rtsp' ? true : null }, 'IP camera (RTSP)'));
  // The password is write-only: the box keeps it in a file of its own and never
  // sends it back; an empty field keeps the stored one.
  const rtsp = h('fieldset', { id: 'source-rtsp' }, h('legend', {}, 'IP camera (RTSP)'),
    h('label', {}, 'Stream URL (the sub-stream is enough for detection)', h('input', { name: 'source.url', value: src.url || '', placeholder: 'rtsp://10.0.0.21:554/Streaming/Channels/102' })),
    h('div', { class: 'row' },
      h('label', {}, 'User name', h('input', { name: 'source.username', value: src.username || '', autocomplete: 'off' })),
      h('label', {}, src.password_file ? 'Password (stored; type to replace)' : 'Password', h('input', { name: 'source.password', type: 'password', value: '', autocomplete: 'new-password' })),
      h('label', {}, 'Transport', h('select', { name: 'source.transport' }, ['tcp', 'udp'].map((t) => h('option', { value: t, selected: t === (src.transport || 'tcp') ? true : null }, t))))));
  const devices = h('datalist', { id: 'camera-devices' });
  const modeSel = h('select', { name: 'mode' }, h('option', { value: '' }, '(type the size below)'));
  const found = h('p', { class: 'hint', id: 'discovery-status' }, 'Looking for capture devices\u2026');
  const replay = h('fieldset', { id: 'source-replay' }, h('legend', {}, 'Recorded footage'),
    h('label', {}, 'File or folder inside the media directory', h('input', { name: 'source.path', value: src.path || '', placeholder: 'vtest.mjpeg' })),
    h('label', {}, 'Frames per second', num('source.fps', src.kind === 'replay' ? src.fps : 10, { min: '0.5', max: '120' })));
  const v4l2 = h('fieldset', { id: 'source-v4l2' }, h('legend', {}, 'Camera device'), found,
    h('label', {}, 'Device', h('input', { name: 'source.device', list: 'camera-devices', value: src.device || '', placeholder: '/dev/v4l/by-id/\u2026' })), devices,
    h('label', {}, 'Mode (from the device)', modeSel),
    h('div', { class: 'row' },
      h('label', {}, 'Width', num('source.width', src.width)),
      h('label', {}, 'Height', num('source.height', src.height)),
      h('label', {}, 'Frames per second', num('source.v4l2_fps', src.kind === 'v4l2' ? src.fps : '', { min: '0.5', max: '120' })),
      h('label', {}, 'Pixel format', h('select', { name: 'source.format' }, FORMATS.map((f) => h('option', { value: f, selected: f === (src.format || 'auto') ? true : null }, f))))));
  const img = h('img', { id: 'camera-preview', class: 'preview', alt: 'still preview of the camera source', hidden: true });
  const previewStatus = h('span', { class: 'muted', id: 'preview-status' });
  const previewButton = h('button', { type: 'button', id: 'preview-camera' }, 'Preview');
  const saveButton = h('button', { type: 'submit', class: 'primary', id: 'save-camera' }, previewFirst ? 'Save camera and continue' : 'Save camera');
  const form = h('form', { class: 'card', id: 'camera-form' },
    h('h3', {}, camera ? `Edit camera ${camera.id}` : 'New camera'),
    h('div', { class: 'grid2' },
      h('label', {}, 'Id', h('input', { name: 'id', value: camera ? camera.id : '', readonly: camera ? true : null, required: true, pattern: '[a-z0-9][a-z0-9-]*', placeholder: 'dock' })),
      h('label', {}, 'Name', h('input', { name: 'name', value: d.name || '', placeholder: 'Loading dock' })),
      h('label', {}, 'Source', kind),
      h('label', {}, 'Detect every Nth frame', num('detect_every', d.detect_every, { max: '100', step: '1' })),
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'enabled', checked: d.enabled !== false }), 'Enabled')),
    replay, v4l2, rtsp,
    h('div', { class: 'row' }, previewButton, saveButton, previewStatus),
    img);

  let preview = null;
  let previewed = null;
  const showKind = () => {
    replay.hidden = kind.value !== 'replay';
    v4l2.hidden = kind.value !== 'v4l2';
    rtsp.hidden = kind.value !== 'rtsp';
  };
  const source = () => {
    const f = new FormData(form);
    const k = f.get('source.kind');
    // Keys the form does not show (a replay's start frame...) are kept.
    const s = src.kind === k ? { ...src } : { kind: k };
    const set = (key, v, asNumber) => {
      if (v === null || v === '' || v === 'auto') delete s[key];
      else s[key] = asNumber ? Number(v) : v;
    };
    if (k === 'replay') {
      set('path', f.get('source.path').trim());
      set('fps', f.get('source.fps'), true);
    } else if (k === 'rtsp') {
      set('url', f.get('source.url').trim());
      set('username', f.get('source.username').trim());
      set('password', f.get('source.password'));
      set('transport', f.get('source.transport') === 'tcp' ? '' : f.get('source.transport'));
    } else {
      set('device', f.get('source.device').trim());
      set('width', f.get('source.width'), true);
      set('height', f.get('source.height'), true);
      set('fps', f.get('source.v4l2_fps'), true);
      set('format', f.get('source.format'));
    }
    return s;
  };
  const stale = () => previewFirst && JSON.stringify(source()) !== previewed;
  const update = () => {
    showKind();
    saveButton.disabled = stale();
  };
  // An error of the preview names a key of the source document (`path`), of a save
  // one of the camera document (`doc.source.path`): both are shown at the input.
  const fieldOf = (e, prefix) => ({ field: e.field ? `${prefix}${e.field}`.replace('source.fps', kind.value === 'v4l2' ? 'source.v4l2_fps' : 'source.fps') : null, message: e.message });
  previewButton.addEventListener('click', async () => {
    const s = source();
    previewButton.disabled = true;
    previewStatus.textContent = 'Taking a frame\u2026';
    for (const old of form.querySelectorAll('.field-error')) old.remove();
    for (const old of form.querySelectorAll('.invalid')) old.classList.remove('invalid');
    try {
      const r = await api('POST', '/api/v1/cameras/preview', s, { asResponse: true });
      preview = await r.blob();
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(preview);
      img.hidden = false;
      previewed = JSON.stringify(s);
      previewStatus.textContent = 'The source as the camera will see it.';
    } catch (e) {
      previewStatus.textContent = '';
      showFieldError(form, fieldOf(e, 'source.'));
    } finally {
      previewButton.disabled = false;
      update();
    }
  });
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  modeSel.addEventListener('change', () => {
    if (!modeSel.value) return;
    const m = JSON.parse(modeSel.value);
    form.elements['source.width'].value = m.width;
    form.elements['source.height'].value = m.height;
    form.elements['source.v4l2_fps'].value = m.fps;
    form.elements['source.format'].value = m.format;
    update();
  });
  let discovered = [];
  const fillModes = () => {
    const dev = discovered.find((x) => x.path === form.elements['source.device'].value.trim());
    modeSel.replaceChildren(h('option', { value: '' }, '(type the size below)'),
      ...(dev ? modes(dev) : []).map(([t, m]) => h('option', { value: JSON.stringify(m) }, t)));
  };
  form.elements['source.device'].addEventListener('input', fillModes);
  api('GET', '/api/v1/cameras/discovery').then((r) => {
    discovered = r.devices || [];
    devices.replaceChildren(...discovered.map((x) => h('option', { value: x.path },
      `${x.card || x.node} (${x.driver})${x.in_use_by ? `, used by camera ${x.in_use_by}` : ''}`)));
    found.textContent = discovered.length
      ? `${discovered.length} capture device${discovered.length === 1 ? '' : 's'} found: pick one under Device.`
      : 'No capture device found on this box: use recorded footage, or plug a camera in and reopen this form.';
    fillModes();
    if (!camera && !discovered.length) kind.value = 'replay';
    else if (!camera) kind.value = 'v4l2';
    update();
  }).catch((e) => { found.textContent = `Cannot list the capture devices: ${e.message}`; });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (stale()) return;
    const f = new FormData(form);
    const id = f.get('id');
    const doc = { ...d, name: f.get('name') || id, enabled: f.get('enabled') !== null, source: source() };
    if (f.get('detect_every') !== '') doc.detect_every = Number(f.get('detect_every'));
    else delete doc.detect_every;
    const body = { doc };
    if (camera && camera.version !== null) body.expected_version = camera.version;
    try {
      await api('PUT', `/api/v1/cameras/${encodeURIComponent(id)}`, body);
      onSaved(id, doc, preview);
    } catch (e) {
      showFieldError(form, fieldOf(e, ''));
    }
  });
  update();
  return form;
}

/** The cameras page: every camera with its health; add, edit, disable/enable, relearn the tamper check's view, delete. */
export async function camerasView(root) {
  if (!can('operator')) return denied(root, 'operator');
  const list = await api('GET', '/api/v1/cameras');
  const cameras = merged(list);
  const again = () => {
    window.dispatchEvent(new Event('sy-settings-changed'));
    root.replaceChildren();
    camerasView(root);
  };
  const formHost = h('div');
  const edit = (cam) => formHost.replaceChildren(cameraForm({ camera: cam, onSaved: again }));
  const table = h('table', { class: 'list', id: 'cameras-table' },
    h('tr', {}, ['Id', 'Name', 'Source', 'Health', 'Defined in', ''].map((t) => h('th', {}, t))));
  for (const cam of cameras) {
    const hs = (list.health || []).find((x) => x.id === cam.id);
    const enabled = cam.doc.enabled !== false;
    const state = !enabled ? 'disabled' : hs ? hs.state : 'not running';
    const err = h('div', { class: 'row-error' });
    const act = (fn) => async () => {
      err.replaceChildren();
      try {
        await fn();
        again();
      } catch (e) {
        err.replaceChildren(h('p', { class: 'error', role: 'alert', dataset: { field: e.field || '' } }, e.message));
      }
    };
    const put = (doc) => {
      const body = { doc };
      if (cam.version !== null) body.expected_version = cam.version;
      return api('PUT', `/api/v1/cameras/${encodeURIComponent(cam.id)}`, body);
    };
    table.append(h('tr', { dataset: { camera: cam.id, state } },
      h('td', {}, cam.id), h('td', {}, cam.doc.name || ''), h('td', {}, sourceText(cam.doc.source)),
      h('td', {}, h('span', { class: `state ${state}` }, state), hs && hs.reason ? h('div', { class: 'muted' }, hs.reason) : null,
        hs && hs.tamper && hs.tamper.length ? h('div', { class: 'state tampered' }, `tampered: ${hs.tamper.join(', ')}`) : null),
      h('td', {}, cam.version === null ? 'configuration file' : 'web UI / API'),
      h('td', {}, h('div', { class: 'row' },
        h('button', { type: 'button', class: 'edit', onclick: () => edit(cam) }, 'Edit'),
        h('button', { type: 'button', class: 'toggle', onclick: act(() => put({ ...cam.doc, enabled: !enabled })) }, enabled ? 'Disable' : 'Enable'),
        // A running camera re-aimed on purpose: its tamper check learns the new view.
        hs ? h('button', {
          type: 'button',
          class: 'relearn',
          title: 'The camera was re-aimed on purpose: its tamper check learns the new view (moved and defocused clear)',
          onclick: act(() => api('POST', `/api/v1/cameras/${encodeURIComponent(cam.id)}/tamper/relearn`)),
        }, 'Relearn view') : null,
        h('button', { type: 'button', class: 'danger delete', onclick: act(() => api('DELETE', `/api/v1/cameras/${encodeURIComponent(cam.id)}`)) }, 'Delete')),
      err)));
  }
  if (!cameras.length) table.append(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No camera yet.')));
  root.append(h('h2', {}, 'Cameras'),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', id: 'new-camera', onclick: () => edit(null) }, 'Add camera'),
      can('admin') ? h('a', { href: '#/wizard', id: 'open-wizard' }, 'First-run wizard') : null),
    formHost, table);
}
