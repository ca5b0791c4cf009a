// Schedules and retention: every role reads them; masters add, edit, enable or disable and
// delete schedules, and change retention policies after a preview (retention.js).
import { gql } from './api.js';
import { refocus } from './forms.js';
import * as retention from './retention.js';
import * as editor from './schedule-form.js';
import { dialog, duration, el, fill, pill, showError, table, time, toast } from './ui.js';

const LOAD = `{
  schedules {
    id name cron timeZone backupType source tables includeFiles uploadToDrive verify enabled
    nextFireAt lastFireAt
  }
  health { configuration { shortestScheduleIntervalSeconds shortestScheduleIntervalSource } }
}`;
const ENABLE = `mutation($s: String!, $on: Boolean!) {
  setScheduleEnabled(schedule: $s, enabled: $on) { name enabled nextFireAt }
}`;
const DELETE = 'mutation($s: String!) { deleteSchedule(schedule: $s) { name } }';

let ctx = null;
let schedules = [];

/** What a schedule backs up, in a few words. */
function options(s) {
  const parts = [s.source ? `source ${s.source}` : 'default source',
    s.tables ? `tables ${s.tables.join(', ')}` : 'all tables'];
  if (s.includeFiles) parts.push('files');
  if (s.uploadToDrive) parts.push('Drive');
  parts.push(s.verify === 'none' ? 'no verification' : `verify ${s.verify}`);
  return parts.join(' · ');
}

function button(label, key, onclick, kind = 'secondary') {
  return el('button', { type: 'button', class: `small ${kind}`, 'aria-label': label, dataset: { focus: key }, onclick },
    label.split(' ')[0]);
}

function actions(s) {
  const verb = s.enabled ? 'Disable' : 'Enable';
  return el('div', { class: 'row-actions' },
    button(`Edit schedule ${s.name}`, `edit:${s.name}`, () => edit(s)),
    button(`${verb} schedule ${s.name}`, `toggle:${s.name}`, () => toggle(s)),
    button(`Delete schedule ${s.name}`, `delete:${s.name}`, () => remove(s), 'danger'));
}

function render() {
  const master = ctx.can('master');
  const headers = ['Name', 'Cron', 'Time zone', 'Type', 'Options', 'Enabled', 'Next fire', 'Last fire'];
  if (master) headers.push(el('span', { class: 'sr-only' }, 'Actions'));
  const rows = schedules.map((s) => {
    const cells = [
      el('strong', {}, s.name),
      el('code', {}, s.cron),
      s.timeZone,
      s.backupType.toLowerCase(),
      options(s),
      s.enabled ? pill('enabled', 'ok') : pill('disabled', 'muted'),
      s.nextFireAt ? time(s.nextFireAt) : '–',
      time(s.lastFireAt),
    ];
    if (master) cells.push(actions(s));
    return cells;
  });
  const node = table(document.getElementById('schedules-table'), 'Schedules, by name', headers, rows);
  for (const [i, s] of schedules.entries()) node.tBodies[0].rows[i].dataset.schedule = s.name;
  if (!schedules.length) {
    node.tBodies[0].append(el('tr', {}, el('td', { colspan: headers.length }, 'No schedules: backups run only when asked.')));
  }
}

async function load() {
  const data = await gql(LOAD);
  schedules = data.schedules;
  const c = data.health.configuration;
  fill(document.getElementById('schedules-interval'), c.shortestScheduleIntervalSource === 'schedules'
    ? `The shortest schedule interval is ${duration(c.shortestScheduleIntervalSeconds)}: health expects a backup at least that often.`
    : `No schedule is enabled: health expects a backup every ${duration(c.shortestScheduleIntervalSeconds)}.`);
  render();
}

/** Reloads the table, then focuses the first of `keys` still shown (or the Add button). */
async function reload(keys) {
  await load();
  refocus(keys, document.getElementById('schedule-add'));
}

function edit(s) {
  const add = document.getElementById('schedule-add');
  editor.open(document.getElementById('schedule-editor'), s, (saved) => {
    if (!saved) refocus(s ? [`edit:${s.name}`] : [], add);
    else reload([`edit:${saved}`]).catch((e) => showError(e, 'list schedules'));
  });
}

async function toggle(s) {
  try {
    const r = (await gql(ENABLE, { s: s.name, on: !s.enabled })).setScheduleEnabled;
    toast(`Schedule ${r.name} ${r.enabled ? 'enabled' : 'disabled'}.`);
    await reload([`toggle:${s.name}`]);
  } catch (e) {
    showError(e, `${s.enabled ? 'disable' : 'enable'} schedule ${s.name}`);
  }
}

async function remove(s) {
  const ok = await dialog(`Delete schedule ${s.name}?`, (form) => form.append(
    el('p', {}, `"${s.name}" (${s.cron}, ${s.timeZone}) stops firing. The backups it took stay.`)), 'Delete schedule');
  if (!ok) return;
  try {
    await gql(DELETE, { s: s.name });
    toast(`Schedule ${s.name} deleted.`);
    await reload([]);
  } catch (e) {
    showError(e, `delete schedule ${s.name}`);
  }
}

function layout() {
  const master = ctx.can('master');
  return [
    el('p', { id: 'schedules-interval' }),
    el('div', { class: 'section-head' }, el('h2', {}, 'Schedules'),
      master ? el('button', { type: 'button', id: 'schedule-add', onclick: () => edit(null) }, 'Add schedule') : null),
    master ? null : el('p', {}, el('small', {}, 'Only masters can change schedules and retention.')),
    el('div', { id: 'schedule-editor', class: 'card editor', hidden: true }),
    el('div', { class: 'table-wrap' }, el('table', { id: 'schedules-table' })),
    el('div', { id: 'retention' }),
  ];
}

/** Shows the view. */
export async function show(c) {
  ctx = c;
  fill(document.getElementById('schedules-body'), layout());
  await Promise.all([load(), retention.show(document.getElementById('retention'), ctx)]);
}
