// What every browser test file shares: the environment tests/tests/dashboard_browser.rs passes
// in, one headless Chromium per file, pages that record console errors, sign-in, screenshots,
// and GraphQL calls that check what the dashboard did in the catalog.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const URL = need('CELLAR_DASH_URL');
export const ARTIFACTS = need('CELLAR_ARTIFACTS');
export const WAIT = { timeout: 60_000 };
let browser;

/** An environment variable the Rust test sets. */
export function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through tests/tests/dashboard_browser.rs`);
  return v;
}

/** Launches the browser before this file's tests and closes it after them. */
export function useBrowser() {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: need('CHROMIUM'),
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
  });
  after(async () => {
    if (browser) await browser.close();
  });
}

/** A fresh page (own sessionStorage) that records console errors, CSP reports included. */
export async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => m.type() === 'error' && page.problems.push(m.text()));
  page.on('pageerror', (e) => page.problems.push(String(e)));
  await page.goto(URL);
  return page;
}

export async function signIn(page, token) {
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export function noProblems(page) {
  assert.deepEqual(page.problems, [], 'console errors (CSP violations included)');
}

/** The page is no wider than the screen (tables scroll inside their own box). */
export async function fitsScreen(page) {
  const [overflow, wide] = await page.evaluate(() => {
    const name = (n) => `${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ''}${n.className ? `.${n.className}` : ''}`;
    const clipped = (n) => n.parentElement && n.parentElement !== document.body
      && (getComputedStyle(n.parentElement).overflowX !== 'visible' || clipped(n.parentElement));
    const out = [...document.querySelectorAll('body *')]
      .filter((n) => n.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(n))
      .slice(0, 5).map(name);
    return [document.documentElement.scrollWidth - window.innerWidth, out];
  });
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen; past its edge: ${wide.join(', ')}`);
}

/** The focused element's accessible label (aria-label, else its id). */
export function focused(page) {
  return page.evaluate(() => {
    const a = document.activeElement;
    return a ? a.getAttribute('aria-label') || a.id : null;
  });
}

/** Runs a GraphQL document over HTTP as `token` (the master's by default); returns `data`. */
export async function gql(query, variables = {}, token = need('CELLAR_MASTER_TOKEN')) {
  const resp = await fetch(`${URL}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await resp.json();
  assert.equal(body.errors, undefined, `${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Waits until `check()` returns a truthy value (polled), failing after `ms`. */
export async function until(what, check, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
