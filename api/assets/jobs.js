// Jobs: running and waiting jobs with progress bars fed live by `jobProgress` subscriptions
// (new jobs are noticed through `jobEvents`), cancel, and the recently finished ones.
import { gql, subscribe } from './api.js';
import { bytes, duration, el, fill, pill, shortId, showError, table, time, toast } from './ui.js';

const FIELDS = `id kind state attempt maxAttempts cancelRequested createdAt finishedAt error
  progress { phase percent bytesDone bytesTotal throughput eta }
  backup { id }`;
const ACTIVE_STATES = ['RUNNING', 'AVAILABLE', 'SCHEDULED', 'RETRYABLE'];
const LIST = `query($state: JobState) { jobs(state: $state, limit: 50) { nodes { ${FIELDS} } } }`;
const DONE = `{ jobs(limit: 30) { nodes { ${FIELDS} } } }`;
const FOLLOW = `subscription($id: ID!) { jobProgress(id: $id) { ${FIELDS} } }`;
const EVENTS = 'subscription { jobEvents { id state } }';
const CANCEL = 'mutation($id: ID!) { cancelJob(id: $id) { id cancelRequested } }';
const FINAL = { COMPLETED: 'ok', CANCELLED: 'muted', DISCARDED: 'bad' };

/** id -> { item, unsubscribe } for the jobs shown as active. */
const followed = new Map();
let stopEvents = null;
let ctx = null;

function progressText(job) {
  const p = job.progress || {};
  const parts = [p.phase || job.state.toLowerCase()];
  if (p.percent !== null && p.percent !== undefined) parts.push(`${Math.floor(p.percent)} %`);
  if (p.bytesDone) parts.push(`${bytes(p.bytesDone)}${p.bytesTotal ? ` of ${bytes(p.bytesTotal)}` : ''}`);
  if (p.throughput) parts.push(`${bytes(p.throughput)}/s`);
  if (p.eta !== null && p.eta !== undefined && job.state === 'RUNNING') parts.push(`ETA ${duration(p.eta)}`);
  return parts.join(' · ');
}

function percentOf(job) {
  if (job.state === 'COMPLETED') return 100;
  const p = job.progress && job.progress.percent;
  return p === null || p === undefined ? 0 : Math.min(100, Math.max(0, p));
}

/** Builds a job's list item once; `update` changes it in place (focus stays on Cancel). */
function jobItem(job) {
  const title = `${job.kind} job ${job.id}`;
  const state = el('span');
  const bar = el('progress', { max: 100, value: 0, 'aria-label': `${title} progress` });
  const text = el('p', { class: 'job-text' });
  const error = el('p', { class: 'error', hidden: true });
  const cancel = el('button', { type: 'button', class: 'small secondary', 'aria-label': `Cancel ${title}`,
    onclick: () => cancelJob(job.id) }, 'Cancel');
  cancel.hidden = !ctx.can('operator');
  const item = el('li', { class: 'card job', id: `job-${job.id}`, tabindex: '-1', dataset: { jobId: job.id } },
    el('div', { class: 'job-head' },
      el('strong', {}, title),
      job.backup ? el('span', { class: 'mono', title: job.backup.id }, shortId(job.backup.id)) : null,
      state, cancel),
    bar, text, error);
  item.update = (j) => {
    const done = j.state in FINAL;
    fill(state, pill(j.cancelRequested && !done ? 'cancelling' : j.state.toLowerCase(), FINAL[j.state] || 'info'));
    bar.value = percentOf(j);
    text.textContent = progressText(j);
    error.textContent = j.error || '';
    error.hidden = !j.error;
    if ((done || j.cancelRequested) && !cancel.hidden) {
      if (document.activeElement === cancel) item.focus();
      cancel.hidden = true;
    }
    item.dataset.state = j.state;
  };
  item.update(job);
  return item;
}

function follow(job) {
  if (followed.has(job.id)) return;
  const item = jobItem(job);
  document.getElementById('jobs-active').prepend(item);
  const unsubscribe = subscribe(FOLLOW, { id: job.id },
    (data) => item.update(data.jobProgress),
    (err) => {
      if (err) showError(err, `follow job ${job.id}`);
      else loadDone().catch(() => {});
    });
  followed.set(job.id, { item, unsubscribe });
}

async function cancelJob(id) {
  try {
    await gql(CANCEL, { id });
    toast(`Cancel requested for job ${id}.`);
  } catch (e) {
    showError(e, `cancel job ${id}`);
  }
}

async function loadActive() {
  const lists = await Promise.all(ACTIVE_STATES.map((state) => gql(LIST, { state })));
  const jobs = lists.flatMap((d) => d.jobs.nodes).sort((a, b) => Number(a.id) - Number(b.id));
  for (const j of jobs) follow(j);
  const list = document.getElementById('jobs-active');
  if (!list.childElementCount) list.append(el('li', { class: 'empty' }, 'Nothing is running.'));
}

async function loadDone() {
  const jobs = (await gql(DONE)).jobs.nodes.filter((j) => j.state in FINAL);
  table(document.getElementById('jobs-done'), 'Recently finished jobs', ['Job', 'Kind', 'State', 'Finished', 'Error'],
    jobs.map((j) => [j.id, j.kind, pill(j.state.toLowerCase(), FINAL[j.state]), time(j.finishedAt), j.error || '']));
}

/** Shows the view: follows every active job until the view is left. */
export async function show(c) {
  ctx = c;
  hide();
  fill(document.getElementById('jobs-active'));
  stopEvents = subscribe(EVENTS, {}, (data) => {
    const e = data.jobEvents;
    if (!followed.has(e.id) && !(e.state in FINAL)) {
      const empty = document.querySelector('#jobs-active .empty');
      if (empty) empty.remove();
      gql(`query($id: ID!) { job(id: $id) { ${FIELDS} } }`, { id: e.id })
        .then((d) => follow(d.job))
        .catch((err) => showError(err, `read job ${e.id}`));
    }
  }, (err) => err && showError(err, 'receive job events'));
  await Promise.all([loadActive(), loadDone()]);
}

/** Leaves the view: every subscription is closed. */
export function hide() {
  for (const { unsubscribe } of followed.values()) unsubscribe();
  followed.clear();
  if (stopEvents) stopEvents();
  stopEvents = null;
}
