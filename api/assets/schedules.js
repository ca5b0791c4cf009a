// Schedules and retention (masters). Filled in when the API offers them.
import { el, fill } from './ui.js';

/** Shows the view. */
export async function show() {
  fill(document.getElementById('schedules-body'),
    el('p', {}, 'Schedules and retention policies are not offered by this API version yet.'));
}
