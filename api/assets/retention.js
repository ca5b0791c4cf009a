// Retention policies, one per backup type: every role reads them; masters change one after a
// preview of what the changed policy would delete (saving is offered only for previewed values).
import { gql } from './api.js';
import { clearError, errorLine, optionalNumber, refocus, showError } from './forms.js';
import { el, field, fill, pill, shortId, table, time, toast } from './ui.js';

const POLICIES = '{ retentionPolicies { backupType maxCount maxAgeDays keepDaily keepWeekly keepMonthly } }';
const PREVIEW = `query($p: RetentionPolicyInput) {
  retentionPreview(policy: $p) { backupId source status createdAt delete reason }
}`;
const SET = `mutation($p: RetentionPolicyInput!) {
  setRetentionPolicy(input: $p) { backupType maxCount maxAgeDays keepDaily keepWeekly keepMonthly }
}`;
// The inputs are named as the API's fields, which its INVALID_INPUT messages start with.
const FIELDS = ['maxCount', 'maxAgeDays', 'keepDaily', 'keepWeekly', 'keepMonthly'];
const fieldOf = (message) => FIELDS.find((f) => message.startsWith(f)) || null;

let ctx = null;
let policies = [];

const limit = (n, unit) => (n === null || n === undefined ? 'no limit' : `${n}${unit}`);

function render() {
  const master = ctx.can('master');
  const headers = ['Type', 'Keep at most', 'Max age', 'Daily', 'Weekly', 'Monthly'];
  if (master) headers.push(el('span', { class: 'sr-only' }, 'Actions'));
  table(document.getElementById('retention-table'), 'Retention policies, by backup type', headers, policies.map((p) => {
    const type = p.backupType.toLowerCase();
    const cells = [type, limit(p.maxCount, ' per source'), limit(p.maxAgeDays, ' days'), p.keepDaily, p.keepWeekly, p.keepMonthly];
    if (master) {
      cells.push(el('button', { type: 'button', class: 'small secondary', 'aria-label': `Edit ${type} retention`,
        dataset: { focus: `retention:${p.backupType}` }, onclick: () => edit(p) }, 'Edit'));
    }
    return cells;
  }));
}

async function load() {
  policies = (await gql(POLICIES)).retentionPolicies;
  render();
}

function number(label, name, value, hint) {
  const [min, max] = { maxCount: [1, 100000], maxAgeDays: [1, 36500] }[name] || [0, 100000];
  return field(label, el('input', { type: 'number', name, id: `retention-${name}`, min, max, step: 1,
    inputmode: 'numeric', value: value === null || value === undefined ? '' : value }), hint);
}

function policyFrom(form, type) {
  const v = (name) => optionalNumber(form.elements.namedItem(name).value);
  return { backupType: type, maxCount: v('maxCount'), maxAgeDays: v('maxAgeDays'),
    keepDaily: v('keepDaily') || 0, keepWeekly: v('keepWeekly') || 0, keepMonthly: v('keepMonthly') || 0 };
}

/** The preview's table: what the policy would delete and keep, and why. */
function previewTable(rows, type) {
  const doomed = rows.filter((r) => r.delete).length;
  const summary = rows.length
    ? `With this policy, retention would delete ${doomed} of ${rows.length} ${type} backup${rows.length === 1 ? '' : 's'}.`
    : `There are no completed or failed ${type} backups: nothing would be deleted.`;
  const node = el('table', { id: 'retention-preview-table' });
  table(node, `Retention preview for ${type} backups`, ['Backup', 'Source', 'Created', 'State', 'Decision', 'Why'],
    rows.map((r) => [el('span', { class: 'mono', title: r.backupId }, shortId(r.backupId)), r.source, time(r.createdAt),
      r.status.toLowerCase(), r.delete ? pill('delete', 'bad') : pill('keep', 'ok'), r.reason]));
  return [el('p', { class: doomed ? 'warning' : '' }, summary), rows.length ? el('div', { class: 'table-wrap' }, node) : null];
}

/** The editor's form for policy `p`; `parts` are the pieces `edit` wires up. */
function editorForm(p, type) {
  const parts = {
    line: errorLine('retention-error'),
    result: el('div', { id: 'retention-preview', 'aria-live': 'polite' }),
    cancel: el('button', { type: 'button', class: 'secondary' }, 'Cancel'),
    save: el('button', { type: 'button', id: 'retention-save', disabled: true, 'aria-describedby': 'retention-save-hint' },
      'Save policy'),
  };
  parts.form = el('form', { id: 'retention-form', 'aria-labelledby': 'retention-form-title', novalidate: true },
    el('h3', { id: 'retention-form-title' }, `Retention of ${type} backups`),
    el('div', { class: 'form-grid' },
      number('Keep at most (per source)', 'maxCount', p.maxCount, 'Empty: no limit.'),
      number('Maximum age in days', 'maxAgeDays', p.maxAgeDays, 'Empty: no limit.'),
      number('Keep one a day, for days', 'keepDaily', p.keepDaily, 'The newest of each of the latest N days, even past the limits.'),
      number('Keep one a week, for weeks', 'keepWeekly', p.keepWeekly, 'ISO weeks.'),
      number('Keep one a month, for months', 'keepMonthly', p.keepMonthly, 'Calendar months (UTC).')),
    parts.line, parts.result,
    el('div', { class: 'actions' }, parts.cancel, el('button', { type: 'submit', class: 'secondary' }, 'Preview'), parts.save),
    el('small', { id: 'retention-save-hint' }, 'Preview first: saving is offered for the values you have previewed.'));
  return parts;
}

/** Opens the editor for policy `p`: Preview asks the API, Save stores the previewed values. */
function edit(p) {
  const type = p.backupType.toLowerCase();
  const node = document.getElementById('retention-editor');
  const { form, line, result, cancel, save } = editorForm(p, type);
  let previewed = null;
  const close = (saved) => {
    fill(node);
    node.hidden = true;
    (saved ? load() : Promise.resolve()).then(() => refocus([`retention:${p.backupType}`]));
  };
  const run = async (doing, f) => {
    clearError(form, line);
    try {
      await f();
    } catch (e) {
      showError(form, line, e, fieldOf, doing);
    }
  };
  form.addEventListener('input', () => {
    previewed = null;
    save.disabled = true;
    fill(result);
  });
  form.addEventListener('keydown', (ev) => ev.key === 'Escape' && close(false));
  cancel.addEventListener('click', () => close(false));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const proposed = policyFrom(form, p.backupType);
    run('Preview refused', async () => {
      fill(result, previewTable((await gql(PREVIEW, { p: proposed })).retentionPreview, type));
      previewed = proposed;
      save.disabled = false;
    });
  });
  save.addEventListener('click', () => previewed && run('Not saved', async () => {
    await gql(SET, { p: previewed });
    toast(`Retention of ${type} backups saved.`);
    close(true);
  }));
  fill(node, form);
  node.hidden = false;
  form.elements.namedItem('maxCount').focus();
}

/** Draws the section into `node` and loads the policies. */
export async function show(node, c) {
  ctx = c;
  fill(node,
    el('h2', {}, 'Retention policies'),
    el('p', {}, 'Which backups retention deletes, per backup type. Pinned backups, backups a restore is reading, '
      + 'and the newest verified backup of each source are always kept.'),
    el('div', { id: 'retention-editor', class: 'card editor', hidden: true }),
    el('div', { class: 'table-wrap' }, el('table', { id: 'retention-table' })));
  await load();
}
