// Backups: the table (filterable by type, paged), the chart of sizes and durations, and the
// actions the role allows (verify and pin; restore, unpin and delete for masters).
import { gql } from './api.js';
import { chart } from './chart.js';
import * as create from './create.js';
import { refocus } from './forms.js';
import { restoreDialog } from './restore.js';
import { bytes, duration, el, fill, pill, secondsBetween, shortId, showError, table, time, toast } from './ui.js';

const LIST = `query($type: BackupType, $after: String) {
  backups(type: $type, limit: 50, after: $after) {
    nodes {
      id backupType status source createdAt completedAt error pinned includeFiles
      sizes { storedBytes plainBytes }
      verification { status level }
      storage { localAvailable driveAvailable }
    }
    pageInfo { endCursor hasNextPage }
  }
}`;
const VERIFY = 'mutation($id: ID!) { verifyBackup(id: $id) { id } }';
const DELETE = 'mutation($id: ID!) { deleteBackup(id: $id) { id } }';
const PIN = 'mutation($id: ID!) { pinBackup(id: $id) { id pinned } }';
const UNPIN = 'mutation($id: ID!) { unpinBackup(id: $id) { id pinned } }';

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

/** Pins or unpins `b`, redraws its row, and puts focus back on the row's pin button. */
async function setPinned(b, pinned) {
  try {
    const r = Object.values(await gql(pinned ? PIN : UNPIN, { id: b.id }))[0];
    b.pinned = r.pinned;
    toast(r.pinned ? `Backup ${b.id} pinned: retention keeps it and it cannot be deleted.`
      : `Backup ${b.id} unpinned: retention may delete it again.`);
    render();
    refocus([`pin:${b.id}`, `verify:${b.id}`], document.getElementById('backups-refresh'));
  } catch (e) {
    showError(e, `${pinned ? 'pin' : 'unpin'} the backup`);
  }
}

async function confirmDelete(b) {
  const ok = window.confirm(`Delete backup ${b.id}? Its stored objects are removed; the record stays.`);
  if (ok) await act('delete the backup', DELETE, b.id, 'Deletion enqueued');
}

function actions(b) {
  const button = (verb, onclick, kind = '', focus = null, attrs = {}) => el('button', {
    type: 'button', class: `small ${kind}`, 'aria-label': `${verb} backup ${b.id}`,
    dataset: focus ? { focus: `${focus}:${b.id}` } : null, onclick, ...attrs }, verb);
  const operator = b.status === 'COMPLETED' && ctx.can('operator');
  const master = b.status === 'COMPLETED' && ctx.can('master');
  return el('div', { class: 'row-actions' },
    operator && button('Verify', () => act('verify the backup', VERIFY, b.id, 'Verification enqueued'), '', 'verify'),
    operator && !b.pinned && button('Pin', () => setPinned(b, true), 'secondary', 'pin'),
    master && b.pinned && button('Unpin', () => setPinned(b, false), 'secondary', 'pin'),
    master && button('Restore', () => restoreDialog(b), '', null, { 'data-action': 'restore' }),
    master && !b.pinned && button('Delete', () => confirmDelete(b), 'danger'));
}

function render() {
  const headers = ['Backup', 'Type', 'Created', 'Size', 'Duration', 'State', 'Verification', 'Stored in', ''];
  table(document.getElementById('backups-table'), 'Backups, newest first', headers, rows.map((b) => [
    el('span', {}, el('span', { title: b.id, class: 'mono' }, shortId(b.id)),
      b.pinned ? el('span', { class: 'pill info pin', title: 'Pinned: retention keeps it; it cannot be deleted until unpinned.' }, 'pinned') : null),
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
