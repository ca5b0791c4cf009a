// Backups: the table (filterable by type, paged), the chart of sizes and durations, and the
// actions the role allows (verify; restore and delete for masters).
import { gql } from './api.js';
import { chart } from './chart.js';
import * as create from './create.js';
import { restoreDialog } from './restore.js';
import { bytes, duration, el, fill, pill, secondsBetween, shortId, showError, table, time, toast } from './ui.js';

const LIST = `query($type: BackupType, $after: String) {
  backups(type: $type, limit: 50, after: $after) {
    nodes {
      id backupType status source createdAt completedAt error
      sizes { storedBytes plainBytes }
      verification { status level }
      storage { localAvailable driveAvailable }
    }
    pageInfo { endCursor hasNextPage }
  }
}`;
const VERIFY = 'mutation($id: ID!) { verifyBackup(id: $id) { id } }';
const DELETE = 'mutation($id: ID!) { deleteBackup(id: $id) { id } }';

const STATUS_KIND = { COMPLETED: 'ok', RUNNING: 'info', PENDING: 'info', FAILED: 'bad', DELETED: 'muted' };
let rows = [];
let next = null;
let ctx = null;

function verification(b) {
  if (!b.verification) return pill('not verified', 'muted');
  const ok = b.verification.status === 'valid';
  return pill(`${b.verification.status}${b.verification.level ? ` (${b.verification.level})` : ''}`, ok ? 'ok' : 'bad');
}

function where(b) {
  const places = [];
  if (b.storage.localAvailable) places.push('local');
  if (b.storage.driveAvailable) places.push('Drive');
  return places.length ? places.join(', ') : '–';
}

async function act(doing, mutation, id, done) {
  try {
    const data = await gql(mutation, { id });
    const job = Object.values(data)[0];
    toast(`${done}: job ${job.id}. Follow it under Jobs.`);
  } catch (e) {
    showError(e, doing);
  }
}

async function confirmDelete(b) {
  const ok = window.confirm(`Delete backup ${b.id}? Its stored objects are removed; the record stays.`);
  if (ok) await act('delete the backup', DELETE, b.id, 'Deletion enqueued');
}

function actions(b) {
  const label = (verb) => `${verb} backup ${b.id}`;
  const out = [];
  const completed = b.status === 'COMPLETED';
  if (completed && ctx.can('operator')) {
    out.push(el('button', { type: 'button', class: 'small', 'aria-label': label('Verify'),
      onclick: () => act('verify the backup', VERIFY, b.id, 'Verification enqueued') }, 'Verify'));
  }
  if (completed && ctx.can('master')) {
    out.push(el('button', { type: 'button', class: 'small', 'data-action': 'restore', 'aria-label': label('Restore'),
      onclick: () => restoreDialog(b) }, 'Restore'));
    out.push(el('button', { type: 'button', class: 'small danger', 'aria-label': label('Delete'),
      onclick: () => confirmDelete(b) }, 'Delete'));
  }
  return el('div', { class: 'row-actions' }, out);
}

function render() {
  const headers = ['Backup', 'Type', 'Created', 'Size', 'Duration', 'State', 'Verification', 'Stored in', ''];
  table(document.getElementById('backups-table'), 'Backups, newest first', headers, rows.map((b) => [
    el('span', { title: b.id, class: 'mono' }, shortId(b.id)),
    b.backupType.toLowerCase(),
    time(b.createdAt),
    bytes(b.sizes.storedBytes),
    duration(secondsBetween(b.createdAt, b.completedAt)),
    el('span', { title: b.error || '' }, pill(b.status.toLowerCase(), STATUS_KIND[b.status] || 'info')),
    verification(b),
    where(b),
    actions(b),
  ]));
  if (!rows.length) {
    document.querySelector('#backups-table tbody').append(
      el('tr', {}, el('td', { colspan: headers.length }, 'No backups yet.')));
  }
  chart(document.getElementById('backups-chart'), rows);
  document.getElementById('backups-more').hidden = !next;
}

async function load(reset) {
  const type = document.getElementById('type-filter').value || null;
  const page = (await gql(LIST, { type, after: reset ? null : next })).backups;
  rows = reset ? page.nodes : rows.concat(page.nodes);
  next = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  render();
}

let wired = false;
function wire() {
  if (wired) return;
  wired = true;
  const reload = () => load(true).catch((e) => showError(e, 'list backups'));
  document.getElementById('type-filter').addEventListener('change', reload);
  document.getElementById('backups-refresh').addEventListener('click', reload);
  document.getElementById('backups-more').addEventListener('click',
    () => load(false).catch((e) => showError(e, 'list more backups')));
}

/** Shows the view. */
export async function show(c) {
  ctx = c;
  wire();
  if (ctx.can('operator')) create.render(document.getElementById('create-body'));
  else fill(document.getElementById('create-body'));
  await load(true);
}
