// The restore dialog (masters): names the target database, explains the safety backup, and
// asks for the target's name typed out before anything is enqueued.
import { gql } from './api.js';
import { dialog, el, field, showError, toast } from './ui.js';

const RESTORE = `mutation($input: RestoreBackupInput!) {
  restoreBackup(input: $input) { id }
}`;

function targetName(form, b) {
  const t = (form.get('target') || '').trim();
  return t || b.source;
}

/** Opens the dialog for backup `b`; enqueues the restore when confirmed. */
export async function restoreDialog(b) {
  const data = await dialog(`Restore ${b.id}`, (form) => {
    const target = el('input', { name: 'target', id: 'restore-target', placeholder: b.source, spellcheck: 'false' });
    const typed = el('input', { name: 'confirm', id: 'restore-confirm', required: true, spellcheck: 'false', autocomplete: 'off' });
    const warning = el('p', { class: 'warning', id: 'restore-warning' });
    const explain = () => {
      const name = target.value.trim() || b.source;
      warning.textContent = `This replaces data in the database "${name}". `
        + (safety.checked
          ? `A safety backup of what will be replaced is taken first (type safety); undo with a rollback of this restore.`
          : 'No safety backup will be taken: this cannot be undone.');
      typed.setAttribute('pattern', name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    };
    const safety = el('input', { type: 'checkbox', name: 'safety', id: 'restore-safety', checked: true, onchange: explain });
    target.addEventListener('input', explain);
    const files = b.includeFiles
      ? [field('Also restore the attached files', el('input', { type: 'checkbox', name: 'files', id: 'restore-files' }),
        'Replaces the content of the workers\' CELLAR_FILES_DIR with the files of this backup.')]
      : [];
    form.append(
      field('Target database', target, `Empty: the backup's own source (${b.source}). Another name is created when missing.`),
      field('Tables', el('input', { name: 'tables', id: 'restore-tables', placeholder: 'all tables' }),
        'Only these tables (schema.name, comma-separated); empty for the whole database.'),
      ...files,
      field('Take a safety backup first', safety),
      warning,
      field('Type the target database name to confirm', typed));
    explain();
  }, 'Restore');
  if (!data) return;
  const tables = (data.get('tables') || '').split(/[\s,]+/).filter(Boolean);
  const input = {
    backupId: b.id,
    targetDatabase: (data.get('target') || '').trim() || null,
    tables: tables.length ? tables : null,
    confirmRestore: data.get('confirm').trim() === targetName(data, b),
    createSafetyBackup: data.has('safety'),
    restoreFiles: data.has('files'),
  };
  if (!input.confirmRestore) {
    toast('Restore not started: the typed name did not match the target database.', true);
    return;
  }
  try {
    const job = (await gql(RESTORE, { input })).restoreBackup;
    toast(`Restore into "${targetName(data, b)}" started as job ${job.id}.`);
    location.hash = '#jobs';
  } catch (e) {
    showError(e, 'start the restore');
  }
}
