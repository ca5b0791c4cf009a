// Overview: health and its reasons, the last successful and last verified backups, storage
// used, the queue and the workers.
import { gql, token } from './api.js';
import { bytes, el, fill, pill, shortId, time } from './ui.js';

const BACKUPS = `query($after: String) {
  backups(status: COMPLETED, limit: 100, after: $after) {
    nodes { id backupType completedAt sizes { storedBytes } verification { status } }
    pageInfo { endCursor hasNextPage }
  }
}`;
const MAX_PAGES = 10;

const HEALTH_KIND = { healthy: 'ok', degraded: 'warn', unhealthy: 'bad' };

/** The REST health summary (same token). */
async function health() {
  const resp = await fetch('/api/backup/health', {
    headers: { Authorization: `Bearer ${token() || ''}` },
  });
  if (!resp.ok) throw new Error(`health answered ${resp.status}`);
  const body = await resp.json();
  return { status: body.overall_status, ...body.health_summary };
}

/** Completed backups, newest first, at most MAX_PAGES pages; `complete` if all were read. */
async function completedBackups() {
  let after = null;
  const all = [];
  for (let i = 0; i < MAX_PAGES; i += 1) {
    const page = (await gql(BACKUPS, { after })).backups;
    all.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return { all, complete: true };
    after = page.pageInfo.endCursor;
  }
  return { all, complete: false };
}

function card(title, ...body) {
  return el('article', { class: 'card stat' }, el('h2', {}, title), ...body);
}

function backupLine(b) {
  if (!b) return el('p', { class: 'big' }, 'none yet');
  return [
    el('p', { class: 'big' }, time(b.completedAt)),
    el('p', {}, el('a', { href: '#backups', title: b.id }, shortId(b.id)), ` · ${b.backupType.toLowerCase()}`),
  ];
}

function healthCard(h) {
  const problems = h.problems || [];
  return card(
    'Health',
    el('p', { class: 'big' }, pill(h.status, HEALTH_KIND[h.status] || 'info')),
    problems.length
      ? el('ul', { class: 'reasons' }, problems.map((p) => el('li', {}, p)))
      : el('p', {}, 'No problems found.'),
  );
}

/** Shows the view. */
export async function show() {
  const body = document.getElementById('overview-body');
  if (!body.childElementCount) fill(body, el('p', {}, 'Loading…'));
  const [h, done] = await Promise.all([health(), completedBackups()]);
  const lastOk = done.all[0];
  const lastVerified = done.all.find((b) => b.verification && b.verification.status === 'valid');
  const stored = done.all.reduce((s, b) => s + (b.sizes.storedBytes || 0), 0);
  fill(
    body,
    healthCard(h),
    card('Last successful backup', backupLine(lastOk)),
    card('Last verified backup', backupLine(lastVerified)),
    card(
      'Storage used',
      el('p', { class: 'big' }, bytes(stored)),
      el('p', {}, `${done.all.length}${done.complete ? '' : '+'} completed backups`),
    ),
    card(
      'Queue',
      el('p', { class: 'big' }, `${h.queue_depth} waiting`),
      el('p', {}, h.oldest_queued_seconds ? `oldest waiting ${Math.round(h.oldest_queued_seconds)} s` : 'nothing waits'),
      el('p', {}, el('a', { href: '#jobs' }, 'See running jobs')),
    ),
  );
}
