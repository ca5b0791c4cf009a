// The dashboard's entry point: sign-in, the signed-in person's role, and the views behind
// the #hash routes. Each view module exports `show(ctx)`; `ctx.can(role)` gates actions.
import { gql, setToken, token } from './api.js';
import { fill, showError } from './ui.js';
import * as overview from './overview.js';
import * as backups from './backups.js';
import * as jobs from './jobs.js';
import * as schedules from './schedules.js';
import * as audit from './audit.js';

const VIEWS = { overview, backups, jobs, schedules, audit };
const RANK = { VIEWER: 1, OPERATOR: 2, MASTER: 3 };
const ctx = {
  me: null,
  /** True when the signed-in role is at least `role` ('operator', 'master'). */
  can(role) {
    return !!this.me && RANK[this.me.role] >= RANK[role.toUpperCase()];
  },
};
let current = null;

async function signIn(t) {
  setToken(t);
  let me;
  try {
    me = (await gql('{ me { name role } }')).me;
  } catch (e) {
    setToken(null);
    throw e;
  }
  if (!me) {
    setToken(null);
    throw new Error('this token is not valid (unknown, revoked or expired)');
  }
  ctx.me = me;
}

function applyRole() {
  for (const node of document.querySelectorAll('[data-role]')) {
    node.hidden = !ctx.can(node.dataset.role);
  }
  fill(document.getElementById('who'), `${ctx.me.name} (${ctx.me.role.toLowerCase()})`);
}

function setSignedIn(on) {
  document.getElementById('signin').hidden = on;
  document.getElementById('nav').hidden = !on;
  document.getElementById('signout').hidden = !on;
  if (!on) {
    fill(document.getElementById('who'));
    for (const v of document.querySelectorAll('.view')) v.hidden = true;
  }
}

function route() {
  if (!ctx.me) return;
  let name = location.hash.slice(1) || 'overview';
  const link = document.querySelector(`#nav a[href="#${name}"]`);
  if (!VIEWS[name] || !link || link.hidden) name = 'overview';
  if (current && current.hide) current.hide();
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  current = VIEWS[name];
  document.title = `Cellar · ${link ? link.textContent : 'Overview'}`;
  Promise.resolve(current.show(ctx)).catch((e) => showError(e, `load ${name}`));
}

/** Moves focus to the newly shown view's heading area, for keyboard and screen readers. */
function focusMain() {
  document.getElementById('main').focus();
}

async function start() {
  const form = document.getElementById('signin-form');
  const err = document.getElementById('signin-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const input = document.getElementById('token');
    try {
      await signIn(input.value.trim());
      input.value = '';
      applyRole();
      setSignedIn(true);
      route();
      focusMain();
    } catch (e) {
      err.textContent = `Sign-in refused: ${e.message}`;
      input.focus();
    }
  });
  document.getElementById('signout').addEventListener('click', () => {
    if (current && current.hide) current.hide();
    current = null;
    ctx.me = null;
    setToken(null);
    setSignedIn(false);
    document.getElementById('token').focus();
  });
  window.addEventListener('hashchange', () => {
    route();
    focusMain();
  });
  if (token()) {
    try {
      await signIn(token());
      applyRole();
      setSignedIn(true);
      route();
      return;
    } catch (e) {
      err.textContent = `Please sign in again: ${e.message}`;
    }
  }
  setSignedIn(false);
}

start();
