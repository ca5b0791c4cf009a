// Overview: health and its reasons, the last successful and last verified backup of each
// source, storage used, the queue and the live workers (the `health` query).
import { gql } from './api.js';
import { bytes, el, fill, pill, shortId, table, time } from './ui.js';

const HEALTH = `{
  health {
    status checkedAt
    reasons { status code message }
    summary {
      totalBackups
      sources { name lastSuccessfulBackupId lastSuccessfulBackupAt lastVerifiedBackupId lastVerifiedBackupAt failureStreak }
    }
    metrics {
      storageUsedLocalBytes storageUsedDriveBytes queueDepth oldestWaitingJobSeconds liveWorkers
      workers { host pid version lastSeenAt live }
    }
  }
}`;
const KIND = { HEALTHY: 'ok', WARNING: 'warn', CRITICAL: 'bad', ERROR: 'bad' };

function card(title, ...body) {
  return el('article', { class: 'card stat' }, el('h2', {}, title), ...body);
}

function backupLine(id, at) {
  if (!id) return el('p', {}, 'none yet');
  return el('p', {}, time(at), ' · ', el('a', { href: '#backups', title: id }, shortId(id)));
}

function healthCard(h) {
  const label = h.status.toLowerCase();
  return card(
    'Health',
    el('p', { class: 'big' }, pill(label, KIND[h.status] || 'info')),
    h.reasons.length
      ? el('ul', { class: 'reasons' }, h.reasons.map((r) => el('li', {}, pill(r.status.toLowerCase(), KIND[r.status] || 'info'), ' ', r.message)))
      : el('p', {}, 'No problems found.'),
    el('p', {}, el('small', {}, 'checked ', time(h.checkedAt))),
  );
}

function sourceCards(summary) {
  return summary.sources.map((s) => card(
    `Source ${s.name}`,
    el('h3', {}, 'Last successful backup'),
    backupLine(s.lastSuccessfulBackupId, s.lastSuccessfulBackupAt),
    el('h3', {}, 'Last verified backup'),
    backupLine(s.lastVerifiedBackupId, s.lastVerifiedBackupAt),
    s.failureStreak ? el('p', { class: 'error' }, `${s.failureStreak} failed since the last success`) : null,
  ));
}

function workersTable(m) {
  const node = el('table');
  table(node, 'Workers', ['Host', 'PID', 'Version', 'Last seen', 'Live'], m.workers.map((w) => [
    w.host, String(w.pid), w.version, time(w.lastSeenAt), pill(w.live ? 'live' : 'gone', w.live ? 'ok' : 'muted'),
  ]));
  return el('div', { class: 'table-wrap' }, node);
}

/** Shows the view. */
export async function show() {
  const body = document.getElementById('overview-body');
  if (!body.childElementCount) fill(body, el('p', {}, 'Loading…'));
  const h = (await gql(HEALTH)).health;
  const m = h.metrics;
  const cards = [healthCard(h)];
  if (h.summary) cards.push(...sourceCards(h.summary));
  if (m) {
    cards.push(
      card('Storage used',
        el('p', { class: 'big' }, bytes(m.storageUsedLocalBytes)),
        el('p', {}, `local; ${bytes(m.storageUsedDriveBytes)} on Drive; ${h.summary.totalBackups} backups`)),
      card('Queue',
        el('p', { class: 'big' }, `${m.queueDepth} waiting`),
        el('p', {}, m.oldestWaitingJobSeconds ? `oldest waiting ${Math.round(m.oldestWaitingJobSeconds)} s` : 'nothing waits'),
        el('p', {}, el('a', { href: '#jobs' }, 'See running jobs'))),
      card('Workers', el('p', { class: 'big' }, `${m.liveWorkers} live`)),
    );
  }
  fill(body, ...cards);
  if (m && m.workers.length) body.append(el('section', { class: 'wide', 'aria-label': 'Workers' }, workersTable(m)));
}
