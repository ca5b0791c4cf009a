// DOM and formatting helpers. Everything is built with textContent: no HTML from data.

/** Creates an element: el('button', {type: 'button', onclick: f}, 'Text', child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A table with a header row; `rows` are arrays of cells (strings or nodes). */
export function table(node, caption, headers, rows) {
  return fill(
    node,
    el('caption', { class: 'sr-only' }, caption),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))),
  );
}

/** 1536 -> "1.5 KiB". */
export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Seconds -> "1 h 2 min", "42 s". */
export function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** An ISO time as a <time> element in local time. */
export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return el('time', { datetime: iso, title: iso }, d.toLocaleString());
}

/** Seconds between two ISO times. */
export function secondsBetween(a, b) {
  return a && b ? (new Date(b) - new Date(a)) / 1000 : null;
}

/** The last part of a long id, for narrow cells (the full id is in the title). */
export function shortId(id) {
  const parts = String(id).split('_');
  return parts.length > 3 ? `…${parts.slice(-3).join('_')}` : String(id);
}

/** A status pill: `kind` picks its colour (ok, warn, bad, info). */
export function pill(text, kind) {
  return el('span', { class: `pill ${kind}` }, text);
}

let toastTimer = null;
/** A short message in the polite live region (errors stay until replaced). */
export function toast(message, isError = false) {
  const t = document.getElementById('toast');
  t.textContent = message;
  t.className = `toast shown${isError ? ' bad' : ''}`;
  clearTimeout(toastTimer);
  if (!isError) toastTimer = setTimeout(() => (t.className = 'toast'), 6000);
}

/** Reports an ApiError (or any error) to the person. */
export function showError(e, doing) {
  const code = e && e.code ? ` [${e.code}]` : '';
  toast(`Could not ${doing}: ${e.message || e}${code}`, true);
}

/**
 * A modal dialog: `build(form)` fills the form; resolves with the FormData when submitted, or
 * null when cancelled (Escape or the Cancel button). Focus returns where it was.
 */
export function dialog(title, build, submitLabel) {
  const d = document.getElementById('dialog');
  const back = document.activeElement;
  const form = el('form', { method: 'dialog' });
  const cancel = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
  fill(d, el('h2', { id: 'dialog-title' }, title), form);
  build(form);
  form.append(el('div', { class: 'actions' }, cancel, el('button', { type: 'submit' }, submitLabel)));
  return new Promise((resolve) => {
    const done = (value) => {
      d.close();
      if (back && back.focus) back.focus();
      resolve(value);
    };
    cancel.addEventListener('click', () => done(null));
    d.oncancel = (ev) => { ev.preventDefault(); done(null); };
    form.addEventListener('submit', (ev) => { ev.preventDefault(); done(new FormData(form)); });
    d.showModal();
  });
}

/** A labelled input for dialogs and forms. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  const wrap = input.type === 'checkbox' ? 'check' : 'field';
  return el('div', { class: wrap }, el('label', { for: id }, label), input,
    hint ? el('small', { id: hintId }, hint) : null);
}
