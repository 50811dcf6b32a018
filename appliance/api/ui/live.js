// The live WebSocket: a JSON `frame` message followed by one binary JPEG per frame.
// JPEGs are decoded with createImageBitmap straight from the ArrayBuffer (no base64),
// drawn to a canvas and closed at once, so memory stays flat over hours. A frame that
// arrives while the previous one is still decoding is dropped (newest wins).

import { api } from './api.js';

/** One camera's live feed painting into a canvas, with an overlay callback. */
export class LiveFeed {
  /**
   * @param {string} camera camera id
   * @param {HTMLCanvasElement} canvas where frames are drawn
   * @param {(ctx: CanvasRenderingContext2D, meta: object) => void} overlay draws on top
   */
  constructor(camera, canvas, overlay) {
    this.camera = camera;
    this.canvas = canvas;
    this.overlay = overlay;
    this.ctx = canvas.getContext('2d');
    this.meta = null;
    this.pending = null;
    this.decoding = false;
    this.frames = 0;
    this.dropped = 0;
    this.stopped = false;
    this.ws = null;
    this.backoff = 500;
    this.bitmap = null;
    this.open();
  }

  async open() {
    if (this.stopped) return;
    let ticket;
    try {
      ticket = (await api('POST', '/api/v1/live/ticket')).ticket;
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const url = `wss://${location.host}/api/v1/live/ws?ticket=${encodeURIComponent(ticket)}`;
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      ws.send(JSON.stringify({ type: 'subscribe', camera: this.camera }));
    };
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = () => {
      this.ws = null;
      this.retry();
    };
    ws.onerror = () => ws.close();
  }

  retry() {
    if (this.stopped) return;
    this.canvas.dataset.state = 'reconnecting';
    setTimeout(() => this.open(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 10000);
  }

  onMessage(data) {
    if (typeof data === 'string') {
      let m;
      try {
        m = JSON.parse(data);
      } catch {
        return;
      }
      if (m.type === 'frame') this.pending = m;
      return;
    }
    const meta = this.pending;
    this.pending = null;
    if (!meta) return;
    if (this.decoding) {
      this.dropped += 1;
      return;
    }
    this.decoding = true;
    createImageBitmap(new Blob([data], { type: 'image/jpeg' }))
      .then((bmp) => {
        if (this.stopped) {
          bmp.close();
          return;
        }
        if (this.bitmap) this.bitmap.close();
        this.bitmap = bmp;
        this.meta = meta;
        this.frames += 1;
        this.canvas.dataset.frames = String(this.frames);
        this.canvas.dataset.state = 'live';
        this.paint();
      })
      .catch(() => {
        this.dropped += 1;
      })
      .finally(() => {
        this.decoding = false;
      });
  }

  /** Redraws the last frame and the overlay (also used when the overlay changes). */
  paint() {
    const c = this.canvas;
    if (!this.bitmap) {
      if (this.overlay) this.overlay(this.ctx, this.meta);
      return;
    }
    if (c.width !== this.bitmap.width || c.height !== this.bitmap.height) {
      c.width = this.bitmap.width;
      c.height = this.bitmap.height;
    }
    this.ctx.drawImage(this.bitmap, 0, 0);
    if (this.overlay) this.overlay(this.ctx, this.meta);
  }

  /** Closes the socket and frees the last bitmap. */
  stop() {
    this.stopped = true;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    if (this.bitmap) this.bitmap.close();
    this.bitmap = null;
  }
}

const PALETTE = ['#ff4d4d', '#4dd2ff', '#ffd24d', '#7dff4d', '#c34dff', '#ff8c4d'];

/** A text label on a filled box with its top-left corner at (x, y), kept inside the frame. */
function tag(ctx, text, x, y, bg, fg, s) {
  const tw = ctx.measureText(text).width + 6 * s;
  const bx = Math.max(0, Math.min(x, ctx.canvas.width - tw));
  const by = Math.max(0, Math.min(y, ctx.canvas.height - 16 * s));
  ctx.fillStyle = bg;
  ctx.fillRect(bx, by, tw, 16 * s);
  ctx.fillStyle = fg;
  ctx.fillText(text, bx + 3 * s, by + 12 * s);
}

/**
 * Draws a counting line with an arrow from side A to side B (side A is on the left
 * walking from `from` to `to` in image coordinates, as the rule engine counts).
 * `a`, `b` are pixel points; returns the arrow's head (for labels).
 */
export function drawLine(ctx, a, b, { color = '#4dd2ff', width = 2, label = null, s = 1 } = {}) {
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.moveTo(a[0], a[1]);
  ctx.lineTo(b[0], b[1]);
  ctx.stroke();
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len = Math.hypot(dx, dy) || 1;
  // The normal (-dy, dx) points to side B (positive cross product).
  const nx = -dy / len;
  const ny = dx / len;
  const mx = (a[0] + b[0]) / 2;
  const my = (a[1] + b[1]) / 2;
  const r = 22 * s;
  const tail = [mx - nx * r, my - ny * r];
  const head = [mx + nx * r, my + ny * r];
  ctx.beginPath();
  ctx.moveTo(tail[0], tail[1]);
  ctx.lineTo(head[0], head[1]);
  ctx.stroke();
  const k = 7 * s;
  ctx.beginPath();
  ctx.moveTo(head[0], head[1]);
  ctx.lineTo(head[0] - nx * k + (dx / len) * k * 0.7, head[1] - ny * k + (dy / len) * k * 0.7);
  ctx.lineTo(head[0] - nx * k - (dx / len) * k * 0.7, head[1] - ny * k - (dy / len) * k * 0.7);
  ctx.closePath();
  ctx.fill();
  ctx.font = `bold ${12 * s}px sans-serif`;
  ctx.fillText('A', tail[0] - nx * 12 * s - 4 * s, tail[1] - ny * 12 * s + 4 * s);
  ctx.fillText('B', head[0] + nx * 12 * s - 4 * s, head[1] + ny * 12 * s + 4 * s);
  ctx.font = `${12 * s}px sans-serif`;
  if (label) tag(ctx, label, a[0] + 4 * s, a[1] + 4 * s, 'rgba(0,0,0,0.6)', color, s);
  return head;
}

/**
 * Draws zones (normalised polygons, red when one of their rules is in alarm, with
 * the number of persons inside), counting lines (with their crossing counts) and
 * tracks (pixel boxes with their ids) on a frame. Detections without a confirmed
 * track are drawn thin. Returns the ids of the tracks drawn.
 */
export function drawOverlay(ctx, meta, zones, { highlight = null, lines = [] } = {}) {
  const w = ctx.canvas.width;
  const h = ctx.canvas.height;
  const s = Math.max(1, w / 640);
  const states = new Map(((meta && meta.zones) || []).map((z) => [z.id, z]));
  ctx.lineWidth = 2 * s;
  ctx.font = `${12 * s}px sans-serif`;
  for (const z of zones) {
    const pts = z.doc.polygon || [];
    if (pts.length < 2) continue;
    const st = states.get(z.id);
    const alarm = !!(st && st.alarm);
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    ctx.closePath();
    ctx.fillStyle = alarm ? 'rgba(229,72,77,0.35)' : z.id === highlight ? 'rgba(255,210,0,0.25)' : 'rgba(255,160,0,0.15)';
    ctx.fill();
    ctx.lineWidth = (alarm ? 3 : 2) * s;
    ctx.strokeStyle = alarm ? '#ff3b3b' : '#ffa000';
    ctx.stroke();
    const count = st ? ` (${st.inside.length} inside)` : '';
    tag(ctx, `${alarm ? 'ALARM: ' : ''}${z.doc.name || z.id}${count}`, pts[0][0] * w + 4 * s, pts[0][1] * h + 4 * s,
      alarm ? '#c62828' : 'rgba(0,0,0,0.6)', alarm ? '#fff' : '#ffa000', s);
  }
  for (const l of lines) {
    const st = states.get(l.id);
    const alarm = !!(st && st.alarm);
    const counts = st ? ` A\u2192B ${st.crossings_a_to_b} B\u2192A ${st.crossings_b_to_a}` : '';
    drawLine(ctx, [l.doc.from[0] * w, l.doc.from[1] * h], [l.doc.to[0] * w, l.doc.to[1] * h],
      { color: alarm ? '#ff3b3b' : '#4dd2ff', width: (alarm ? 3 : 2) * s, label: `${l.doc.name || l.id}${counts}`, s });
  }
  if (!meta) return [];
  ctx.lineWidth = 1 * s;
  for (const d of meta.detections || []) {
    const [x1, y1, x2, y2] = d.bbox;
    ctx.strokeStyle = 'rgba(255,255,255,0.5)';
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  const ids = [];
  ctx.lineWidth = 2 * s;
  ctx.font = `${12 * s}px sans-serif`;
  // Coasting (lost) tracks first and faint, so live ones are drawn on top.
  const tracks = [...(meta.tracks || [])].sort((a, b) => Number(b.lost) - Number(a.lost));
  for (const t of tracks) {
    const [x1, y1, x2, y2] = t.bbox;
    const color = PALETTE[t.id % PALETTE.length];
    ids.push(t.id);
    ctx.strokeStyle = color;
    if (t.lost) {
      ctx.globalAlpha = 0.5;
      ctx.lineWidth = 1 * s;
      ctx.setLineDash([4 * s, 4 * s]);
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.setLineDash([]);
      ctx.fillStyle = color;
      ctx.fillText(`#${t.id}`, x1 + 2 * s, y1 + 12 * s);
      ctx.globalAlpha = 1;
      ctx.lineWidth = 2 * s;
      continue;
    }
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    tag(ctx, `#${t.id} ${t.class}`, x1, y1 - 16 * s, color, '#000', s);
  }
  // A hook for tests and tools: the track ids of the last drawn frame.
  const shown = ids.join(' ');
  if (ctx.canvas.dataset.tracks !== shown) ctx.canvas.dataset.tracks = shown;
  return ids;
}
