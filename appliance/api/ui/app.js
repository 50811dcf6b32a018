// The single-page app: hash router, role-aware navigation and the alarm watcher
// (audible alert through Web Audio, mutable for the session).

import { api, h, can, session, clearSession, setUnauthorizedHandler } from './api.js';
import { loginView, wallView, cameraView, rulesView, eventsView, denied } from './views.js';
import { zonesView } from './zones.js';
import { outputsView, usersView, systemView } from './admin.js';
import { camerasView } from './cameras.js';
import { wizardView, wizardSkipped, noCamera } from './wizard.js';

const PAGES = [
  { path: 'wall', title: 'Live wall', min: 'viewer', view: wallView },
  { path: 'events', title: 'Events', min: 'viewer', view: eventsView },
  { path: 'cameras', title: 'Cameras', min: 'operator', view: camerasView },
  { path: 'zones', title: 'Zones', min: 'operator', view: zonesView },
  { path: 'rules', title: 'Rules', min: 'operator', view: rulesView },
  { path: 'outputs', title: 'Outputs', min: 'viewer', view: outputsView },
  { path: 'users', title: 'Users & keys', min: 'admin', view: usersView },
  { path: 'system', title: 'System', min: 'viewer', view: systemView },
  { path: 'camera', title: null, min: 'viewer', view: cameraView },
  { path: 'wizard', title: null, min: 'admin', view: wizardView },
];

const view = document.getElementById('view');
const top = document.getElementById('top');
let cleanup = [];

function teardown() {
  for (const f of cleanup) {
    try { f(); } catch { /* a failed cleanup must not block navigation */ }
  }
  cleanup = [];
}

function nav() {
  const s = session();
  document.getElementById('who').textContent = s ? `${s.username} (${s.role})` : '';
  const here = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0] || 'wall';
  document.getElementById('nav').replaceChildren(...PAGES.filter((p) => p.title && can(p.min)).map((p) =>
    h('a', { href: `#/${p.path}`, class: p.path === here ? 'active' : null, dataset: { page: p.path } }, p.title)));
}

async function route() {
  teardown();
  view.replaceChildren();
  if (!session()) {
    top.hidden = true;
    stopAlarms();
    hideBanners();
    loginView(view, async () => {
      // An admin logging in on a box with no camera lands in the first-run wizard.
      let wizard = false;
      try { wizard = can('admin') && !wizardSkipped() && (await noCamera()); } catch { /* the wall then */ }
      const target = wizard ? '#/wizard' : !location.hash || location.hash === '#/login' ? '#/wall' : location.hash;
      if (location.hash !== target) location.hash = target;
      else route();
    });
    return;
  }
  top.hidden = false;
  startAlarms();
  startBanners();
  nav();
  const [path, arg] = location.hash.replace(/^#\/?/, '').split('?')[0].split('/');
  const page = PAGES.find((p) => p.path === (path || 'wall')) || PAGES[0];
  document.body.dataset.page = page.path;
  if (!can(page.min)) {
    denied(view, page.min);
    return;
  }
  try {
    await page.view(view, cleanup, arg ? decodeURIComponent(arg) : undefined);
  } catch (e) {
    view.append(h('p', { class: 'error', role: 'alert' }, `Cannot load this page: ${e.message}`));
  }
}

// --- banners: what the box does not do (guard, serve the uploaded certificate, store) ---

const banners = document.getElementById('banners');
let bannerTimer = null;

function banner(id, text, link) {
  return h('div', { class: 'banner', id, role: 'alert' }, text, link ? ' ' : null, link);
}

// Cheap reads every 10 s (the health probe; the cameras' health: a box guards while
// some camera is watched); the system page's certificate state at most once a minute
// (it also reads the update state).
let certificateProblem = null;
let systemAt = 0;
async function pollBanners() {
  const fresh = Date.now() - systemAt > 60000;
  const [health, cams, sys] = await Promise.all([
    api('GET', '/api/v1/health').catch(() => null),
    api('GET', '/api/v1/cameras').catch(() => null),
    fresh ? api('GET', '/api/v1/system').catch(() => null) : null,
  ]);
  if (!session()) return;
  if (sys) {
    certificateProblem = sys.certificate_problem;
    systemAt = Date.now();
  }
  const out = [];
  if (cams && !(cams.health || []).length) {
    const link = can('admin') ? h('a', { href: '#/wizard' }, 'Run the first-run wizard')
      : can('operator') ? h('a', { href: '#/cameras' }, 'Add a camera') : null;
    out.push(banner('banner-not-guarding', 'NOT GUARDING: no camera is watched, so no alarm can be raised.', link));
  }
  if (certificateProblem) {
    out.push(banner('banner-certificate', `The uploaded TLS certificate was set aside (${certificateProblem}); a self-signed certificate is served.`,
      can('admin') ? h('a', { href: '#/system' }, 'Certificate') : null));
  }
  if (health && health.storage === 'degraded') {
    out.push(banner('banner-storage', `STORAGE DEGRADED: the event store is unavailable; events waiting in memory: ${health.events_buffered}. Alarms still run.`));
  }
  banners.replaceChildren(...out);
}

// A page that changed the cameras asks for a fresh look at once.
window.addEventListener('sy-settings-changed', () => { if (session()) pollBanners(); });

function startBanners() {
  pollBanners();
  if (!bannerTimer) bannerTimer = setInterval(pollBanners, 10000);
}

function hideBanners() {
  clearInterval(bannerTimer);
  bannerTimer = null;
  systemAt = 0;
  banners.replaceChildren();
}

// --- alarms ---------------------------------------------------------------

let audio = null;
let alarmTimer = null;
let lastBeep = 0;
const seen = new Set();
const muteButton = document.getElementById('mute');
const badge = document.getElementById('alarm-badge');

function muted() {
  return sessionStorage.getItem('sy.muted') === '1';
}

function showMute() {
  muteButton.textContent = muted() ? 'Sound off' : 'Sound on';
  muteButton.classList.toggle('off', muted());
}

function unlockAudio() {
  if (!audio && window.AudioContext) audio = new AudioContext();
  if (audio && audio.state === 'suspended') audio.resume();
}

function beep() {
  document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  if (muted() || !audio) return;
  const t = audio.currentTime;
  for (const [start, freq] of [[0, 880], [0.35, 660]]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = 'square';
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t + start);
    gain.gain.exponentialRampToValueAtTime(0.2, t + start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + start + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(t + start);
    osc.stop(t + start + 0.32);
  }
}

async function pollAlarms() {
  let page;
  try {
    page = await api('GET', '/api/v1/events?state=active&limit=100');
  } catch {
    return;
  }
  const active = page.events;
  badge.hidden = active.length === 0;
  badge.textContent = `${active.length} active alarm${active.length === 1 ? '' : 's'}`;
  const fresh = active.some((e) => !seen.has(e.id));
  for (const e of active) seen.add(e.id);
  const now = Date.now();
  // A new alarm beeps at once; unacknowledged ones remind every 15 s.
  if (fresh || (active.length && now - lastBeep > 15000)) {
    lastBeep = now;
    beep();
  }
}

function startAlarms() {
  if (alarmTimer) return;
  pollAlarms();
  alarmTimer = setInterval(pollAlarms, 2000);
}

function stopAlarms() {
  clearInterval(alarmTimer);
  alarmTimer = null;
}

muteButton.addEventListener('click', () => {
  sessionStorage.setItem('sy.muted', muted() ? '0' : '1');
  showMute();
});
badge.addEventListener('click', () => { location.hash = '#/events'; });
document.addEventListener('pointerdown', unlockAudio);
document.addEventListener('keydown', unlockAudio);
document.getElementById('logout').addEventListener('click', async () => {
  try { await api('POST', '/api/v1/auth/logout'); } catch { /* the session ends locally anyway */ }
  clearSession();
  location.hash = '#/login';
  route();
});
setUnauthorizedHandler(() => {
  clearSession();
  route();
});
window.addEventListener('hashchange', route);
showMute();
route();
