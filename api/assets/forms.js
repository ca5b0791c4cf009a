// Helpers for the editing forms: an error line next to the form that marks the field the API
// refused (the API's INVALID_INPUT messages start by naming it), numbers that may be empty,
// and putting focus back after a table is drawn again.
import { el } from './ui.js';

/** The error line of a form; role=alert, so it is read out as it changes. */
export function errorLine(id) {
  return el('p', { id, class: 'error form-error', role: 'alert' });
}

function describedBy(input, add, remove) {
  const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter((i) => i && i !== remove);
  if (add) ids.push(add);
  if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
  else input.removeAttribute('aria-describedby');
}

/** Clears the error line and every field's invalid mark. */
export function clearError(form, line) {
  line.textContent = '';
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    describedBy(input, null, line.id);
  }
}

/**
 * Shows error `e` on `line` after `doing` ("Not saved"). When `fieldOf(message)` names one of the form's inputs, that input
 * is marked invalid, described by the line, and focused, so the person lands where to fix it.
 */
export function showError(form, line, e, fieldOf, doing = 'Not saved') {
  clearError(form, line);
  const message = e.message || String(e);
  const code = e.code && e.code !== 'INVALID_INPUT' ? ` [${e.code}]` : '';
  line.textContent = `${doing}: ${message}${code}`;
  const name = e.code === 'INVALID_INPUT' ? fieldOf(message) : null;
  const input = name ? form.elements.namedItem(name) : null;
  if (input && input.focus) {
    input.setAttribute('aria-invalid', 'true');
    describedBy(input, line.id, null);
    input.focus();
  }
}

/** An input's number, or null when it is empty. */
export function optionalNumber(value) {
  const v = String(value === null || value === undefined ? '' : value).trim();
  return v === '' ? null : Number(v);
}

/** After a table is drawn again: focuses the first element whose data-focus is in `keys`. */
export function refocus(keys, fallback) {
  for (const k of keys) {
    const node = document.querySelector(`[data-focus="${CSS.escape(k)}"]`);
    if (node && !node.hidden) {
      node.focus();
      return;
    }
  }
  if (fallback) fallback.focus();
}
