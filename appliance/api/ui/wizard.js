// The first-run wizard: from a box as flashed to its first alarm, through the public
// API only. Steps 1-2 (setup token, admin account) are the login page's first-boot
// form; then camera (with a still preview) -> zone drawn on that preview -> intrusion
// rule -> output test -> done (the live wall). It opens by itself after an admin logs
// in on a box with no camera, can be skipped, and is reopened from the NOT GUARDING
// banner or the cameras page.

import { api, h, can, showFieldError } from './api.js';
import { denied } from './views.js';
import { cameraForm } from './cameras.js';
import { shapeEditor, polygonDoc } from './zones.js';

const STEPS = ['Admin account', 'Camera', 'Zone', 'Rule', 'Test the outputs', 'Done'];
const SEVERITIES = ['critical', 'warning', 'info'];

/** Whether the wizard was skipped in this session (it then opens only when asked). */
export function wizardSkipped() {
  return sessionStorage.getItem('sy.wizard.skipped') === '1';
}

/** Whether the box has no camera at all (running or stored). */
export async function noCamera() {
  const c = await api('GET', '/api/v1/cameras');
  return !(c.running || []).length && !(c.edited || []).length;
}

export async function wizardView(root, cleanup) {
  if (!can('admin')) return denied(root, 'admin');
  const done = { camera: null, preview: null, zone: null, rule: null, tested: [] };
  const steps = h('ol', { class: 'steps', id: 'wizard-steps' }, STEPS.map((t, i) => h('li', {}, `${i + 1}. ${t}`)));
  const body = h('section', { class: 'card', id: 'wizard-step' });
  const skip = h('button', { type: 'button', class: 'link', id: 'wizard-skip', onclick: () => {
    sessionStorage.setItem('sy.wizard.skipped', '1');
    location.hash = '#/wall';
  } }, 'Skip the wizard (set up later from the Cameras page)');
  root.append(h('h2', {}, 'First-run setup'), steps, body, skip);

  let leave = [];
  const show = (i) => {
    for (const f of leave) f();
    leave = [];
    [...steps.children].forEach((li, j) => { li.className = j < i ? 'done' : j === i ? 'current' : ''; });
    body.dataset.step = STEPS[i].toLowerCase().split(' ').pop();
    body.replaceChildren(h('h3', {}, `Step ${i + 1} of ${STEPS.length}: ${STEPS[i]}`));
    Promise.resolve([null, cameraStep, zoneStep, ruleStep, outputsStep, doneStep][i](() => show(i + 1)))
      .catch((e) => body.append(h('p', { class: 'error', role: 'alert' }, `Cannot load this step: ${e.message}`)));
  };
  cleanup.push(() => { for (const f of leave) f(); });

  const cameraStep = (next) => {
    body.append(h('p', {}, 'Choose the camera: a device found on this box, or recorded footage (a file inside the media directory). Preview it, then save: it starts at once.'),
      cameraForm({ previewFirst: true, onSaved: (id, doc, preview) => {
        Object.assign(done, { camera: id, cameraName: doc.name, preview });
        window.dispatchEvent(new Event('sy-settings-changed'));
        next();
      } }));
  };

  const zoneStep = async (next) => {
    const bitmap = await createImageBitmap(done.preview);
    leave.push(() => bitmap.close());
    const canvas = h('canvas', { class: 'editor', id: 'wizard-canvas', width: bitmap.width, height: bitmap.height });
    const state = { kind: 'zone', points: [], drag: null, selected: null, error: null, spot: {} };
    const hint = h('div', { class: 'hint' }, 'Click the corners of the area nobody may enter; drag a corner to move it, double-click one to remove it.');
    const ctx = canvas.getContext('2d');
    const paint = () => {
      ctx.drawImage(bitmap, 0, 0);
      editor.draw(ctx);
    };
    const editor = shapeEditor(canvas, state, paint, (t) => { hint.textContent = t; });
    const form = h('form', { id: 'wizard-zone' },
      h('div', { class: 'grid2' },
        h('label', {}, 'Zone id', h('input', { name: 'id', required: true, pattern: '[a-z0-9][a-z0-9-]*', value: `${done.camera}-area` })),
        h('label', {}, 'Name', h('input', { name: 'name', required: true, value: `Area of ${done.cameraName}` }))),
      h('div', { class: 'row' },
        h('button', { type: 'button', id: 'wizard-clear-zone', onclick: () => { state.points = []; editor.clearError(); paint(); } }, 'Clear'),
        h('button', { type: 'submit', class: 'primary', id: 'wizard-save-zone' }, 'Save zone and continue')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const doc = { camera: done.camera, name: f.get('name'), polygon: polygonDoc(state.points), anchor: 'feet' };
      try {
        await api('PUT', `/api/v1/zones/${encodeURIComponent(f.get('id'))}`, { doc });
        Object.assign(done, { zone: f.get('id'), zoneName: doc.name });
        next();
      } catch (e) {
        const el = showFieldError(form, e);
        if (e.field === 'doc.polygon') {
          state.error = e.message;
          el.classList.add('polygon-error');
          paint();
        }
      }
    });
    body.append(h('p', {}, `Draw the zone on the preview of ${done.cameraName}.`), h('div', { class: 'stage' }, canvas, hint), form);
    paint();
  };

  const ruleStep = async (next) => {
    const outs = (await api('GET', '/api/v1/outputs')).outputs || [];
    const form = h('form', { id: 'wizard-rule' },
      h('div', { class: 'grid2' },
        h('label', {}, 'Rule id', h('input', { name: 'id', required: true, pattern: '[a-z0-9][a-z0-9-]*', value: `${done.zone}-intrusion` })),
        h('label', {}, 'Name', h('input', { name: 'name', required: true, value: `Person in ${done.zoneName}` })),
        h('label', {}, 'Severity', h('select', { name: 'severity' }, SEVERITIES.map((s) => h('option', { value: s }, s))))),
      h('fieldset', {}, h('legend', {}, 'Outputs to drive when someone enters the zone'),
        outs.filter((o) => o.role !== 'healthy').map((o) => h('label', { class: 'inline' },
          h('input', { type: 'checkbox', name: 'outputs', value: o.id, checked: o.role === 'siren' }), `${o.id} (${o.role})`))),
      h('button', { type: 'submit', class: 'primary', id: 'wizard-save-rule' }, 'Save rule and continue'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const doc = { name: f.get('name'), kind: 'intrusion', zone: done.zone, severity: f.get('severity'), enabled: true };
      if (f.getAll('outputs').length) doc.outputs = f.getAll('outputs');
      try {
        await api('PUT', `/api/v1/rules/${encodeURIComponent(f.get('id'))}`, { doc });
        done.rule = f.get('id');
        next();
      } catch (e) { showFieldError(form, e); }
    });
    body.append(h('p', {}, `An intrusion rule raises an alarm when a person is inside ${done.zoneName}.`), form);
  };

  const outputsStep = async (next) => {
    const outs = (await api('GET', '/api/v1/outputs')).outputs || [];
    const rows = outs.map((o) => {
      const result = h('span', { class: 'muted' });
      const button = h('button', { type: 'button', dataset: { output: o.id }, onclick: async () => {
        result.className = 'muted';
        result.textContent = 'on for 1 s\u2026';
        try {
          await api('POST', `/api/v1/outputs/${encodeURIComponent(o.id)}/test`, { duration_ms: 1000 });
          result.textContent = 'tested: did it sound or switch?';
          button.dataset.tested = '1';
          done.tested.push(o.id);
        } catch (e) {
          result.className = 'error';
          result.textContent = e.message;
        }
      } }, `Test ${o.id}`);
      return h('li', {}, button, ' ', `${o.role}`, ' ', result);
    });
    body.append(h('p', {}, 'Switch each output on for a second and check the siren sounds and the relay switches.'),
      h('ul', { class: 'plain', id: 'wizard-outputs' }, rows),
      h('button', { type: 'button', class: 'primary', id: 'wizard-next', onclick: next }, 'Continue'));
  };

  const doneStep = () => {
    sessionStorage.setItem('sy.wizard.skipped', '1');
    body.append(h('p', {}, `The box now guards: camera ${done.camera}, zone ${done.zone}, rule ${done.rule}${done.tested.length ? `; outputs tested: ${done.tested.join(', ')}` : ''}.`),
      h('p', { class: 'muted' }, 'Add cameras, zones and rules later on the Cameras, Zones and Rules pages.'),
      h('button', { type: 'button', class: 'primary', id: 'wizard-finish', onclick: () => { location.hash = '#/wall'; } }, 'Go to the live wall'));
  };

  show(1);
}
