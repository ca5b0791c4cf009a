// The audit log (masters): who did what, when, from where, and how it ended.
import { gql } from './api.js';
import { el, pill, showError, table, time } from './ui.js';

const LIST = `query($after: String) {
  auditLog(limit: 50, after: $after) {
    nodes { id at tokenName role action target jobId outcome errorCode clientAddress }
    pageInfo { endCursor hasNextPage }
  }
}`;
const KIND = { ALLOWED: 'ok', DENIED: 'warn', FAILED: 'bad' };
let rows = [];
let next = null;
let wired = false;

function render() {
  table(document.getElementById('audit-table'), 'Audit events, newest first',
    ['When', 'Who', 'Action', 'Target', 'Job', 'Outcome', 'From'],
    rows.map((e) => [
      time(e.at),
      e.tokenName ? `${e.tokenName} (${(e.role || '').toLowerCase()})` : 'anonymous',
      e.action,
      el('span', { class: 'mono' }, e.target || ''),
      e.jobId || '',
      pill(`${e.outcome.toLowerCase()}${e.errorCode ? ` ${e.errorCode}` : ''}`, KIND[e.outcome]),
      e.clientAddress || '',
    ]));
  document.getElementById('audit-more').hidden = !next;
}

async function load(reset) {
  const page = (await gql(LIST, { after: reset ? null : next })).auditLog;
  rows = reset ? page.nodes : rows.concat(page.nodes);
  next = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  render();
}

/** Shows the view. */
export async function show() {
  if (!wired) {
    wired = true;
    document.getElementById('audit-more').addEventListener('click',
      () => load(false).catch((e) => showError(e, 'read more of the audit log')));
  }
  await load(true);
}
