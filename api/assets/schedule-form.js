// The schedule editor (masters): add a schedule or change one, in a form beside the table.
// The API checks every field; its refusal is shown next to the form, on the field it names.
import { gql } from './api.js';
import { clearError, errorLine, showError } from './forms.js';
import { el, field, fill, toast } from './ui.js';

const UPSERT = `mutation($input: ScheduleInput!) {
  upsertSchedule(input: $input) { name cron enabled nextFireAt }
}`;
const TYPES = ['DAILY', 'WEEKLY', 'MONTHLY', 'MANUAL'];
const VERIFY = ['none', 'quick', 'deep'];

/** Which input an INVALID_INPUT message is about (the API names the field first). */
function fieldOf(message) {
  const rules = [
    [/^name\b/, 'name'], [/cron/, 'cron'], [/time zone/, 'timeZone'], [/^tables\b/, 'tables'],
    [/^source\b/, 'source'], [/^uploadToDrive\b/, 'drive'], [/verify/, 'verify'],
    [/^backupType\b/, 'backupType'],
  ];
  const hit = rules.find(([re]) => re.test(message));
  return hit ? hit[1] : null;
}

function options(values, selected) {
  return values.map((v) => el('option', { value: v, selected: v === selected }, v.toLowerCase()));
}

function inputFrom(form) {
  const f = new FormData(form);
  const text = (name) => (f.get(name) || '').trim();
  const tables = text('tables').split(/[\s,]+/).filter(Boolean);
  return {
    name: form.elements.namedItem('name').value.trim(),
    cron: text('cron'),
    timeZone: text('timeZone') || null,
    backupType: f.get('backupType'),
    source: text('source') || null,
    tables: tables.length ? tables : null,
    includeFiles: f.has('files'),
    uploadToDrive: f.has('drive'),
    verify: f.get('verify'),
    enabled: f.has('enabled'),
  };
}

function fields(s) {
  const editing = !!s;
  return [
    field('Name', el('input', { name: 'name', id: 'schedule-name', required: true, spellcheck: 'false',
      autocomplete: 'off', value: editing ? s.name : '', readonly: editing }),
    editing ? 'A schedule is kept by its name: to rename it, add a new one and delete this one.'
      : 'a-z, 0-9, "_" and "-", e.g. nightly-orders.'),
    field('Cron expression', el('input', { name: 'cron', id: 'schedule-cron', required: true, spellcheck: 'false',
      autocomplete: 'off', value: editing ? s.cron : '0 2 * * *' }),
    'Five fields: minute hour day-of-month month day-of-week. "0 2 * * *" is 02:00 every day.'),
    field('Time zone', el('input', { name: 'timeZone', id: 'schedule-zone', spellcheck: 'false',
      value: editing ? s.timeZone : 'UTC' }), 'An IANA name: UTC, Europe/Berlin, America/New_York.'),
    field('Backup type', el('select', { name: 'backupType', id: 'schedule-type' },
      options(TYPES, editing ? s.backupType : 'DAILY'))),
    field('Source', el('input', { name: 'source', id: 'schedule-source', spellcheck: 'false',
      value: editing && s.source ? s.source : '', placeholder: 'default source' }), 'Empty for the first configured source.'),
    field('Tables', el('input', { name: 'tables', id: 'schedule-tables', spellcheck: 'false',
      value: editing && s.tables ? s.tables.join(', ') : '', placeholder: 'all tables' }),
    'schema.name, comma-separated; empty for the whole database.'),
    field('Verify afterwards', el('select', { name: 'verify', id: 'schedule-verify' },
      options(VERIFY, editing ? s.verify : 'none'))),
    field('Include the files directory', el('input', { type: 'checkbox', name: 'files', id: 'schedule-files',
      checked: editing && s.includeFiles })),
    field('Copy to Google Drive', el('input', { type: 'checkbox', name: 'drive', id: 'schedule-drive',
      checked: editing && s.uploadToDrive })),
    field('Enabled', el('input', { type: 'checkbox', name: 'enabled', id: 'schedule-enabled',
      checked: editing ? s.enabled : true })),
  ];
}

/**
 * Opens the editor in `node` for schedule `s` (null: a new one). `onDone(name)` runs after a
 * save (with the schedule's name) or a cancel (with null); the caller redraws and moves focus.
 */
export function open(node, s, onDone) {
  const line = errorLine('schedule-error');
  const save = el('button', { type: 'submit' }, 'Save schedule');
  const cancel = el('button', { type: 'button', class: 'secondary', onclick: () => close(null) }, 'Cancel');
  const form = el('form', { id: 'schedule-form', class: 'stack', 'aria-labelledby': 'schedule-form-title', novalidate: true },
    el('h3', { id: 'schedule-form-title' }, s ? `Edit schedule ${s.name}` : 'Add a schedule'),
    el('div', { class: 'form-grid' }, fields(s)),
    line,
    el('div', { class: 'actions' }, cancel, save));
  function close(name) {
    fill(node);
    node.hidden = true;
    onDone(name);
  }
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') close(null);
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearError(form, line);
    const input = inputFrom(form);
    save.disabled = true;
    try {
      const saved = (await gql(UPSERT, { input })).upsertSchedule;
      toast(`Schedule ${saved.name} saved (${saved.cron}).`);
      close(saved.name);
    } catch (e) {
      showError(form, line, e, fieldOf);
    } finally {
      save.disabled = false;
    }
  });
  fill(node, form);
  node.hidden = false;
  form.elements.namedItem(s ? 'cron' : 'name').focus();
}
