// The zone editor: draw, move and delete polygon vertices and counting lines (two
// points, an arrow from side A to side B) on a live frame. The API
// validates (same rules as the config file); its errors are drawn at the spot: the
// crossing edges or the offending vertex turn red, with the message beside them.

import { api, h, can, showFieldError } from './api.js';
import { LiveFeed, drawLine } from './live.js';
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

/** Which end of a line an API error points at (`doc.from`: 0, `doc.to`: 1). */
function lineErrorSpot(field) {
  if (field === 'doc.from') return { vertex: 0 };
  if (field === 'doc.to') return { vertex: 1 };
  return {};
}

/**
 * The drawing part of the zone editor, shared by the zones page and the first-run
 * wizard: on `canvas`, a click adds a point, a drag moves one, a double-click removes
 * one; `draw(ctx)` draws the shape being edited (`state.kind` 'zone': a polygon;
 * 'line': two points, an arrow from side A to side B) with its error spot.
 * `state` is `{kind, points, drag, selected, error, spot}` (points normalised 0..1);
 * `repaint()` redraws the canvas; `say(text)` shows a hint.
 */
export function shapeEditor(canvas, state, repaint, say) {
  const errorLabel = (ctx, at, s) => {
    const w = ctx.canvas.width;
    const t = state.error;
    ctx.font = `${13 * s}px sans-serif`;
    const tw = ctx.measureText(t).width + 10 * s;
    const x = Math.min(Math.max(0, at[0] - tw / 2), w - tw);
    const y = Math.min(Math.max(14 * s, at[1]), ctx.canvas.height - 10 * s);
    ctx.fillStyle = 'rgba(160,0,0,0.85)';
    ctx.fillRect(x, y - 12 * s, tw, 20 * s);
    ctx.fillStyle = '#fff';
    ctx.fillText(t, x + 5 * s, y + 3 * s);
  };
  const draw = (ctx) => {
    const w = ctx.canvas.width;
    const hgt = ctx.canvas.height;
    const s = Math.max(1, w / 640);
    const px = ([x, y]) => [x * w, y * hgt];
    const pts = state.points;
    if (!pts.length) return;
    const spot = state.kind === 'zone' && state.error ? errorSpot(state.error) : state.spot;
    ctx.lineWidth = 2.5 * s;
    if (state.kind === 'line') {
      if (pts.length === 2) drawLine(ctx, px(pts[0]), px(pts[1]), { color: state.error ? '#ff2020' : '#00e0ff', width: 2.5 * s, s });
    } else {
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
    }
    pts.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x * w, y * hgt, 6 * s, 0, Math.PI * 2);
      ctx.fillStyle = i === spot.vertex ? '#ff2020' : i === state.selected ? '#ffffff' : '#00e0ff';
      ctx.fill();
    });
    if (state.error) {
      // At the offending end of a line, else at the shape's centre.
      const at = spot.vertex !== undefined && pts[spot.vertex] ? pts[spot.vertex]
        : [pts.reduce((a, p) => a + p[0], 0) / pts.length, pts.reduce((a, p) => a + p[1], 0) / pts.length];
      errorLabel(ctx, [at[0] * w, at[1] * hgt + (spot.vertex !== undefined ? 22 * s : 0)], s);
    }
  };
  const clearError = () => {
    state.error = null;
    state.spot = {};
  };
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
    clearError();
    repaint();
  };
  canvas.addEventListener('pointerdown', (ev) => {
    const p = norm(ev);
    const i = hit(p);
    if (i >= 0) {
      state.drag = i;
      state.selected = i;
      canvas.setPointerCapture(ev.pointerId);
    } else if (state.kind === 'line' && state.points.length >= 2) {
      say('A line has two ends: drag one to move it, or double-click one to remove it first.');
      return;
    } else {
      state.points.push(p);
      state.selected = state.points.length - 1;
    }
    clearError();
    repaint();
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (state.drag === null) return;
    state.points[state.drag] = norm(ev);
    repaint();
  });
  canvas.addEventListener('pointerup', () => { state.drag = null; });
  canvas.addEventListener('dblclick', (ev) => removeVertex(hit(norm(ev))));
  return { draw, removeVertex, clearError };
}

/** A zone's points as the API takes them (rounded to 1/10000). */
export function polygonDoc(points) {
  const round = (v) => Math.round(v * 10000) / 10000;
  return points.map((p) => [round(p[0]), round(p[1])]);
}

export async function zonesView(root, cleanup, cameraId) {
  if (!can('operator')) return denied(root, 'operator');
  const { cameras, lines: allLines } = await loadConfig();
  if (!cameras.length) {
    root.append(h('p', {}, 'No cameras.'));
    return;
  }
  const camera = cameras.some((c) => c.id === cameraId) ? cameraId : cameras[0].id;
  const zones = merged(await api('GET', '/api/v1/zones'))
    .filter((z) => z.doc.camera === camera && Array.isArray(z.doc.polygon));
  const lines = allLines.filter((l) => l.doc.camera === camera && Array.isArray(l.doc.from));
  // `kind` is 'zone' (a polygon) or 'line' (two points, side A on the left of from -> to).
  const state = { kind: 'zone', zone: null, points: [], drag: null, selected: null, error: null, spot: {} };

  const canvas = h('canvas', { class: 'big editor', width: 640, height: 360, id: 'zone-canvas', dataset: { camera, frames: '0' } });
  const msg = h('div', { class: 'hint' });
  const title = h('h3', {});
  const anchorLabel = h('label', {}, 'Anchor', h('select', { name: 'anchor' }, h('option', { value: 'feet' }, 'feet'), h('option', { value: 'centre' }, 'centre')));
  const saveButton = h('button', { type: 'submit', class: 'primary', id: 'save-zone' }, 'Save zone');
  const deleteButton = h('button', { type: 'button', class: 'danger', id: 'delete-zone', onclick: () => deleteShape() }, 'Delete zone');
  const form = h('form', { class: 'card', id: 'zone-form' },
    title,
    h('label', {}, 'Id', h('input', { name: 'id', required: true, pattern: '[a-z0-9][a-z0-9-]*' })),
    h('label', {}, 'Name', h('input', { name: 'name', required: true })),
    anchorLabel,
    h('input', { type: 'hidden', name: 'polygon' }),
    h('input', { type: 'hidden', name: 'from' }),
    h('input', { type: 'hidden', name: 'to' }),
    h('div', { class: 'row' },
      saveButton,
      h('button', { type: 'button', id: 'delete-vertex', onclick: () => removeVertex(state.selected) }, 'Delete point'),
      h('button', { type: 'button', id: 'clear-zone', onclick: () => { state.points = []; state.selected = null; clearError(); feed.paint(); } }, 'Clear'),
      deleteButton));
  const list = h('ul', { class: 'zone-list' });
  const camSel = h('select', { id: 'zone-camera', onchange: (e) => { location.hash = `#/zones/${encodeURIComponent(e.target.value)}`; } },
    cameras.map((c) => h('option', { value: c.id, selected: c.id === camera ? true : null }, c.id)));

  const clearError = () => editor.clearError();
  const select = (kind, z) => {
    state.kind = kind;
    state.zone = z;
    state.points = !z ? [] : kind === 'line' ? [[...z.doc.from], [...z.doc.to]] : z.doc.polygon.map((p) => [...p]);
    state.selected = null;
    clearError();
    const noun = kind === 'line' ? 'line' : 'zone';
    form.dataset.kind = kind;
    title.textContent = z ? `Edit ${noun} ${z.id}` : `New ${noun}`;
    saveButton.id = `save-${noun}`;
    saveButton.textContent = `Save ${noun}`;
    deleteButton.id = `delete-${noun}`;
    deleteButton.textContent = `Delete ${noun}`;
    deleteButton.hidden = !z;
    anchorLabel.hidden = kind === 'line';
    msg.textContent = kind === 'line'
      ? 'Click two points: from, then to. The arrow shows the crossing from side A to side B. Drag an end to move it; double-click an end to remove it.'
      : 'Click to add a vertex, drag a vertex to move it, double-click a vertex (or select it and press Delete) to remove it.';
    form.elements.id.value = z ? z.id : '';
    form.elements.id.readOnly = !!z;
    form.elements.name.value = z ? z.doc.name : '';
    form.elements.anchor.value = (kind === 'zone' && z && z.doc.anchor) || 'feet';
    for (const old of form.querySelectorAll('.field-error')) old.remove();
    feed.paint();
  };
  list.append(
    h('li', {}, h('button', { type: 'button', id: 'new-zone', onclick: () => select('zone', null) }, 'New zone')),
    h('li', {}, h('button', { type: 'button', id: 'new-line', onclick: () => select('line', null) }, 'New line')),
    ...zones.map((z) => h('li', {}, h('button', { type: 'button', dataset: { zone: z.id }, onclick: () => select('zone', z) }, `${z.id}: ${z.doc.name}`))),
    ...lines.map((l) => h('li', {}, h('button', { type: 'button', dataset: { line: l.id }, onclick: () => select('line', l) }, `line ${l.id}: ${l.doc.name}`))));

  const draw = (ctx) => {
    const w = ctx.canvas.width;
    const hgt = ctx.canvas.height;
    const s = Math.max(1, w / 640);
    const px = ([x, y]) => [x * w, y * hgt];
    for (const z of zones) {
      if (state.kind === 'zone' && state.zone && z.id === state.zone.id) continue;
      ctx.beginPath();
      z.doc.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * hgt) : ctx.moveTo(x * w, y * hgt)));
      ctx.closePath();
      ctx.strokeStyle = 'rgba(255,160,0,0.6)';
      ctx.lineWidth = 1.5 * s;
      ctx.stroke();
    }
    for (const l of lines) {
      if (state.kind === 'line' && state.zone && l.id === state.zone.id) continue;
      drawLine(ctx, px(l.doc.from), px(l.doc.to), { color: 'rgba(77,210,255,0.6)', width: 1.5 * s, label: l.id, s });
    }
    editor.draw(ctx);
  };
  const editor = shapeEditor(canvas, state, () => feed.paint(), (t) => { msg.textContent = t; });
  const feed = new LiveFeed(camera, canvas, draw);
  const removeVertex = editor.removeVertex;
  cleanup.push(() => feed.stop());
  const onKey = (ev) => {
    if ((ev.key === 'Delete' || ev.key === 'Backspace') && document.activeElement === document.body) removeVertex(state.selected);
  };
  document.addEventListener('keydown', onKey);
  cleanup.push(() => document.removeEventListener('keydown', onKey));

  const base = () => (state.kind === 'line' ? '/api/v1/lines' : '/api/v1/zones');
  const deleteShape = async () => {
    if (!state.zone) return;
    try {
      await api('DELETE', `${base()}/${encodeURIComponent(state.zone.id)}`);
      location.hash = `#/zones/${encodeURIComponent(camera)}?t=${Date.now()}`;
    } catch (e) { showFieldError(form, e); }
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const pt = (p) => (p ? polygonDoc([p])[0] : null);
    const doc = state.kind === 'line'
      ? { camera, name: f.get('name'), from: pt(state.points[0]), to: pt(state.points[1]) }
      : { camera, name: f.get('name'), polygon: polygonDoc(state.points), anchor: f.get('anchor') };
    if (state.kind === 'line' && state.points.length < 2) {
      state.error = 'A line needs two points: click its start, then its end';
      state.spot = {};
      showFieldError(form, { field: state.points.length ? 'doc.to' : 'doc.from', message: state.error }).classList.add('line-error');
      feed.paint();
      return;
    }
    const body = { doc };
    if (state.zone && state.zone.version !== null) body.expected_version = state.zone.version;
    try {
      await api('PUT', `${base()}/${encodeURIComponent(f.get('id'))}`, body);
      clearError();
      location.hash = `#/zones/${encodeURIComponent(camera)}?saved=${encodeURIComponent(f.get('id'))}`;
    } catch (e) {
      const el = showFieldError(form, e);
      if (state.kind === 'zone' && e.field === 'doc.polygon') {
        state.error = e.message;
        el.classList.add('polygon-error');
        feed.paint();
      } else if (state.kind === 'line' && (e.field === 'doc.from' || e.field === 'doc.to')) {
        state.error = e.message;
        state.spot = lineErrorSpot(e.field);
        el.classList.add('line-error');
        feed.paint();
      }
    }
  });
  root.append(h('h2', {}, 'Zones and lines ', camSel), h('div', { class: 'split' }, h('div', { class: 'stage' }, canvas, msg), h('aside', {}, list, form)));
  select('zone', null);
}
