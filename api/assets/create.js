// The "create a backup" form (operators and masters): type, tables, files, Drive, verify.
import { gql } from './api.js';
import { el, field, fill, showError, toast } from './ui.js';

const CREATE = `mutation($input: CreateBackupInput!) {
  createBackup(input: $input) { id backup { id } }
}`;
const TYPES = ['MANUAL', 'DAILY', 'WEEKLY', 'MONTHLY'];

/** Splits "public.a, public.b" into names; empty means all tables. */
function tableList(text) {
  const names = text.split(/[\s,]+/).filter(Boolean);
  return names.length ? names : null;
}

async function submit(form, button) {
  const f = new FormData(form);
  const input = {
    backupType: f.get('type'),
    tables: tableList(f.get('tables') || ''),
    includeFiles: f.has('files'),
    uploadToDrive: f.has('drive'),
    verifyBackup: f.has('verify'),
  };
  const source = (f.get('source') || '').trim();
  if (source) input.source = source;
  button.disabled = true;
  try {
    const job = (await gql(CREATE, { input })).createBackup;
    toast(`Backup ${job.backup ? job.backup.id : ''} started as job ${job.id}.`);
    location.hash = '#jobs';
  } catch (e) {
    showError(e, 'create the backup');
  } finally {
    button.disabled = false;
  }
}

/** Renders the form into `node` (once). */
export function render(node) {
  if (node.firstChild) return;
  const button = el('button', { type: 'submit' }, 'Start backup');
  const form = el('form', { id: 'create-form', class: 'stack' },
    field('Type', el('select', { name: 'type', id: 'create-type' },
      TYPES.map((t) => el('option', { value: t }, t.toLowerCase())))),
    field('Tables', el('input', { name: 'tables', id: 'create-tables', placeholder: 'public.users, public.orders' }),
      'Leave empty for the whole database.'),
    field('Source', el('input', { name: 'source', id: 'create-source', placeholder: 'default source' }),
      'A configured source name; empty for the first one.'),
    field('Include the files directory', el('input', { type: 'checkbox', name: 'files', id: 'create-files' })),
    field('Copy to Google Drive', el('input', { type: 'checkbox', name: 'drive', id: 'create-drive' })),
    field('Verify afterwards', el('input', { type: 'checkbox', name: 'verify', id: 'create-verify', checked: true })),
    el('div', { class: 'actions' }, button));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit(form, button);
  });
  fill(node, form);
}
