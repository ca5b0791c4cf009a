// Schedules and retention (masters): what the health report says the catalog holds. Editing
// needs the schedule mutations, which this API version does not offer yet.
import { gql } from './api.js';
import { duration, el, fill, table } from './ui.js';

const CONFIG = `{ health { configuration {
  schedules retention shortestScheduleIntervalSeconds shortestScheduleIntervalSource
} } }`;

/** A table of JSON objects, one column per key seen. */
function objects(caption, rows) {
  if (!rows.length) return el('p', {}, `No ${caption.toLowerCase()} in the catalog.`);
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => (v === null || v === undefined ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const node = el('table');
  table(node, caption, keys, rows.map((r) => keys.map((k) => cell(r[k]))));
  return el('div', { class: 'table-wrap' }, node);
}

/** Shows the view. */
export async function show() {
  const c = (await gql(CONFIG)).health.configuration;
  const interval = c.shortestScheduleIntervalSource === 'schedules'
    ? `The shortest schedule interval is ${duration(c.shortestScheduleIntervalSeconds)}: health expects a backup at least that often.`
    : `No schedule is known: health expects a backup every ${duration(c.shortestScheduleIntervalSeconds)}.`;
  fill(document.getElementById('schedules-body'),
    el('p', {}, interval),
    el('h2', {}, 'Schedules'),
    objects('Schedules', c.schedules),
    el('h2', {}, 'Retention policies'),
    objects('Retention policies', c.retention),
    el('p', {}, el('small', {}, 'Editing schedules and retention here needs the schedule API (upsertSchedule, setRetentionPolicy), not in this version yet.')));
}
