// The zone editor: draw, move and delete polygon vertices on a live frame. The API
// validates (same rules as the config file); its errors are drawn at the spot: the
// crossing edges or the offending vertex turn red, with the message beside them.

import { api, h, can, showFieldError } from './api.js';
import { LiveFeed } from './live.js';
import { loadConfig, denied, merged } from './views.js';

const HIT = 0.02;

/** Where a polygon error points: `{edges: [a, b]}` or `{vertex: i}` or `{}`. */
export function errorSpot(message) {
  let m = /edges (\d+) and (\d+) cross/.exec(message);
  if (m) return { edges: [Number(m[1]), Number(m[2])] };
  m = /point (\d+) /.exec(message);
  if (m) return { vertex: Number(m[1]) };
  return {};
}

export async function zonesView(root, cleanup, cameraId) {
  if (!can('operator')) return denied(root, 'operator');
  const { cameras } = await loadConfig();
  if (!cameras.length) {
    root.append(h('p', {}, 'No cameras.'));
    return;
  }
  const camera = cameras.some((c) => c.id === cameraId) ? cameraId : cameras[0].id;
  const zones = merged(await api('GET', '/api/v1/zones'))
    .filter((z) => z.doc.camera === camera && Array.isArray(z.doc.polygon));
  const state = { zone: null, points: [], drag: null, selected: null, error: null };

  const canvas = h('canvas', { class: 'big editor', width: 640, height: 360, id: 'zone-canvas', dataset: { camera, frames: '0' } });
  const msg = h('div', { class: 'hint' }, 'Click to add a vertex, drag a vertex to move it, double-click a vertex (or select it and press Delete) to remove it.');
  const form = h('form', { class: 'card', id: 'zone-form' },
    h('label', {}, 'Zone id', h('input', { name: 'id', required: true, pattern: '[a-z0-9][a-z0-9-]*' })),
    h('label', {}, 'Name', h('input', { name: 'name', required: true })),
    h('label', {}, 'Anchor', h('select', { name: 'anchor' }, h('option', { value: 'feet' }, 'feet'), h('option', { value: 'centre' }, 'centre'))),
    h('input', { type: 'hidden', name: 'polygon' }),
    h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'primary', id: 'save-zone' }, 'Save zone'),
      h('button', { type: 'button', id: 'delete-vertex', onclick: () => removeVertex(state.selected) }, 'Delete vertex'),
      h('button', { type: 'button', id: 'clear-zone', onclick: () => { state.points = []; state.selected = null; state.error = null; feed.paint(); } }, 'Clear'),
      h('button', { type: 'button', class: 'danger', id: 'delete-zone', onclick: () => deleteZone() }, 'Delete zone')));
  const list = h('ul', { class: 'zone-list' });
  const camSel = h('select', { id: 'zone-camera', onchange: (e) => { location.hash = `#/zones/${encodeURIComponent(e.target.value)}`; } },
    cameras.map((c) => h('option', { value: c.id, selected: c.id === camera ? true : null }, c.id)));

  const select = (z) => {
    state.zone = z;
    state.points = z ? z.doc.polygon.map((p) => [...p]) : [];
    state.selected = null;
    state.error = null;
    form.elements.id.value = z ? z.id : '';
    form.elements.id.readOnly = !!z;
    form.elements.name.value = z ? z.doc.name : '';
    form.elements.anchor.value = (z && z.doc.anchor) || 'feet';
    for (const old of form.querySelectorAll('.field-error')) old.remove();
    feed.paint();
  };
  list.append(h('li', {}, h('button', { type: 'button', id: 'new-zone', onclick: () => select(null) }, 'New zone')),
    ...zones.map((z) => h('li', {}, h('button', { type: 'button', dataset: { zone: z.id }, onclick: () => select(z) }, `${z.id}: ${z.doc.name}`))));

  const draw = (ctx) => {
    const w = ctx.canvas.width;
    const hgt = ctx.canvas.height;
    const s = Math.max(1, w / 640);
    for (const z of zones) {
      if (state.zone && z.id === state.zone.id) continue;
      ctx.beginPath();
      z.doc.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * hgt) : ctx.moveTo(x * w, y * hgt)));
      ctx.closePath();
      ctx.strokeStyle = 'rgba(255,160,0,0.6)';
      ctx.lineWidth = 1.5 * s;
      ctx.stroke();
    }
    const pts = state.points;
    if (!pts.length) return;
    const spot = state.error ? errorSpot(state.error) : {};
    ctx.lineWidth = 2.5 * s;
    for (let i = 0; i < pts.length; i++) {
      const a = pts[i];
      const b = pts[(i + 1) % pts.length];
      if (i === pts.length - 1 && pts.length < 3) break;
      ctx.beginPath();
      ctx.moveTo(a[0] * w, a[1] * hgt);
      ctx.lineTo(b[0] * w, b[1] * hgt);
      ctx.strokeStyle = spot.edges && spot.edges.includes(i) ? '#ff2020' : '#00e0ff';
      ctx.stroke();
    }
    pts.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x * w, y * hgt, 6 * s, 0, Math.PI * 2);
      ctx.fillStyle = i === spot.vertex ? '#ff2020' : i === state.selected ? '#ffffff' : '#00e0ff';
      ctx.fill();
    });
    if (state.error) {
      const cx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
      const cy = pts.reduce((a, p) => a + p[1], 0) / pts.length;
      ctx.font = `${13 * s}px sans-serif`;
      const t = state.error;
      const tw = ctx.measureText(t).width + 10 * s;
      const x = Math.min(Math.max(0, cx * w - tw / 2), w - tw);
      ctx.fillStyle = 'rgba(160,0,0,0.85)';
      ctx.fillRect(x, cy * hgt - 12 * s, tw, 20 * s);
      ctx.fillStyle = '#fff';
      ctx.fillText(t, x + 5 * s, cy * hgt + 3 * s);
    }
  };
  const feed = new LiveFeed(camera, canvas, draw);
  cleanup.push(() => feed.stop());

  const norm = (ev) => {
    const r = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return [clamp((ev.clientX - r.left) / r.width), clamp((ev.clientY - r.top) / r.height)];
  };
  const hit = ([x, y]) => state.points.findIndex(([px, py]) => Math.hypot(px - x, py - y) < HIT);
  const removeVertex = (i) => {
    if (i === null || i < 0 || i >= state.points.length) return;
    state.points.splice(i, 1);
    state.selected = null;
    state.error = null;
    feed.paint();
  };
  canvas.addEventListener('pointerdown', (ev) => {
    const p = norm(ev);
    const i = hit(p);
    if (i >= 0) {
      state.drag = i;
      state.selected = i;
      canvas.setPointerCapture(ev.pointerId);
    } else {
      state.points.push(p);
      state.selected = state.points.length - 1;
    }
    state.error = null;
    feed.paint();
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (state.drag === null) return;
    state.points[state.drag] = norm(ev);
    feed.paint();
  });
  canvas.addEventListener('pointerup', () => { state.drag = null; });
  canvas.addEventListener('dblclick', (ev) => removeVertex(hit(norm(ev))));
  const onKey = (ev) => {
    if ((ev.key === 'Delete' || ev.key === 'Backspace') && document.activeElement === document.body) removeVertex(state.selected);
  };
  document.addEventListener('keydown', onKey);
  cleanup.push(() => document.removeEventListener('keydown', onKey));

  const deleteZone = async () => {
    if (!state.zone) return;
    try {
      await api('DELETE', `/api/v1/zones/${encodeURIComponent(state.zone.id)}`);
      location.hash = `#/zones/${encodeURIComponent(camera)}?t=${Date.now()}`;
    } catch (e) { showFieldError(form, e); }
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const round = (v) => Math.round(v * 10000) / 10000;
    const doc = { camera, name: f.get('name'), polygon: state.points.map(([x, y]) => [round(x), round(y)]), anchor: f.get('anchor') };
    const body = { doc };
    if (state.zone && state.zone.version !== null) body.expected_version = state.zone.version;
    try {
      await api('PUT', `/api/v1/zones/${encodeURIComponent(f.get('id'))}`, body);
      state.error = null;
      location.hash = `#/zones/${encodeURIComponent(camera)}?saved=${encodeURIComponent(f.get('id'))}`;
    } catch (e) {
      const el = showFieldError(form, e);
      if (e.field === 'doc.polygon') {
        state.error = e.message;
        el.classList.add('polygon-error');
        feed.paint();
      }
    }
  });
  root.append(h('h2', {}, 'Zones ', camSel), h('div', { class: 'split' }, h('div', { class: 'stage' }, canvas, msg), h('aside', {}, list, form)));
  select(null);
}
