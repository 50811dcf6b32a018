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

/** Draws zones (normalised polygons) and detections (pixel boxes) on a frame. */
export function drawOverlay(ctx, meta, zones, { highlight = null } = {}) {
  const w = ctx.canvas.width;
  const h = ctx.canvas.height;
  const s = Math.max(1, w / 640);
  ctx.lineWidth = 2 * s;
  ctx.font = `${12 * s}px sans-serif`;
  for (const z of zones) {
    const pts = z.doc.polygon || [];
    if (pts.length < 2) continue;
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    ctx.closePath();
    ctx.fillStyle = z.id === highlight ? 'rgba(255,210,0,0.25)' : 'rgba(255,160,0,0.15)';
    ctx.fill();
    ctx.strokeStyle = '#ffa000';
    ctx.stroke();
    ctx.fillStyle = '#ffa000';
    ctx.fillText(z.doc.name || z.id, pts[0][0] * w + 4 * s, pts[0][1] * h + 14 * s);
  }
  if (!meta) return;
  for (const d of meta.detections || []) {
    const [x1, y1, x2, y2] = d.bbox;
    const track = d.track ?? d.track_id ?? null;
    const color = PALETTE[(track ?? 0) % PALETTE.length];
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = `${track !== null ? `#${track} ` : ''}${d.class} ${(d.score * 100).toFixed(0)}%`;
    const tw = ctx.measureText(label).width + 6 * s;
    ctx.fillStyle = color;
    ctx.fillRect(x1, Math.max(0, y1 - 16 * s), tw, 16 * s);
    ctx.fillStyle = '#000';
    ctx.fillText(label, x1 + 3 * s, Math.max(12 * s, y1 - 4 * s));
  }
}
