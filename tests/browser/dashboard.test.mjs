// The dashboard in headless Chromium, against real cellar-api and cellar-worker processes.
// Started by tests/tests/dashboard_browser.rs, which creates the catalog and source databases,
// the processes and the tokens, and passes them in (see harness.mjs). This file runs first, on
// an empty catalog; manage.test.mjs (schedules, retention, pins) runs after it.
// Screenshots of the main views go to CELLAR_ARTIFACTS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, fitsScreen, need, newPage, noProblems, shot, signIn, useBrowser } from './harness.mjs';

useBrowser();

test('a bad token is refused', async () => {
  const page = await newPage();
  await signIn(page, 'cellar_not-a-real-token');
  const error = page.locator('#signin-error');
  await error.getByText('Sign-in refused').waitFor(WAIT);
  assert.match(await error.textContent(), /not valid/);
  assert.equal(await page.locator('#nav').isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('cellar.token')), null);
  await shot(page, 'signin-refused');
  await page.context().close();
});

test('a master starts a backup, watches it to 100 %, and sees it listed and verified', async () => {
  const page = await newPage();
  await signIn(page, need('CELLAR_MASTER_TOKEN'));
  await page.locator('#overview-body .stat').first().waitFor(WAIT);
  await page.getByText('Last successful backup').waitFor(WAIT);
  assert.match(await page.locator('#overview-body').textContent(), /Source src.*none yet/s);
  await shot(page, 'overview-empty');

  await page.getByRole('link', { name: 'Backups' }).click();
  await page.getByText('Create a backup').click();
  assert.equal(await page.getByLabel('Verify afterwards').isChecked(), true);
  await page.getByRole('button', { name: 'Start backup' }).click();
  const toast = page.locator('#toast');
  await toast.getByText('started as job').waitFor(WAIT);
  const [, backupId, jobId] = (await toast.textContent()).match(/Backup (\S+) started as job (\d+)/);

  // On the Jobs view: record every value the job's progress bar shows until it ends.
  const item = page.locator(`#job-${jobId}`);
  await item.waitFor(WAIT);
  await page.evaluate((id) => {
    window.seen = [];
    const note = () => {
      const bar = document.querySelector(`#job-${id} progress`);
      if (bar) window.seen.push(bar.value);
    };
    note();
    new MutationObserver(note).observe(document.getElementById('jobs-active'), { childList: true, subtree: true, attributes: true });
  }, jobId);
  await page.waitForFunction((id) => {
    const li = document.getElementById(`job-${id}`);
    return li && li.dataset.state === 'COMPLETED';
  }, jobId, WAIT);
  assert.equal(Number(await item.locator('progress').getAttribute('value')), 100);
  assert.match(await item.locator('.job-text').textContent(), /done · 100 %/);
  const seen = await page.evaluate(() => window.seen);
  console.log(`progress values seen: ${seen.join(' ')}`);
  assert.equal(seen[seen.length - 1], 100, `progress values: ${seen}`);
  for (let i = 1; i < seen.length; i += 1) assert.ok(seen[i] >= seen[i - 1], `progress went back: ${seen}`);
  await shot(page, 'jobs');

  await page.getByRole('link', { name: 'Backups' }).click();
  const row = page.locator('#backups-table tbody tr', { has: page.locator(`[title="${backupId}"]`) });
  await row.waitFor(WAIT);
  assert.match(await row.textContent(), /completed/);
  assert.match(await row.textContent(), /valid \(deep\)/);
  assert.match(await row.textContent(), /local/);
  await row.getByRole('button', { name: `Restore backup ${backupId}` }).waitFor(WAIT);
  await shot(page, 'backups');

  // The restore confirmation names the target and the safety backup; cancelling does nothing.
  await row.getByRole('button', { name: `Restore backup ${backupId}` }).click();
  const dialog = page.locator('#dialog');
  await dialog.waitFor(WAIT);
  assert.match(await dialog.locator('#restore-warning').textContent(), /database "src".*safety backup/s);
  await page.getByLabel('Target database', { exact: true }).fill('src_copy');
  assert.match(await dialog.locator('#restore-warning').textContent(), /"src_copy"/);
  await shot(page, 'restore-dialog');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await dialog.isVisible(), false);

  await page.getByRole('link', { name: 'Overview' }).click();
  // The view keeps its previous content while it reloads: wait for the new backup to show.
  await page.locator('#overview-body').getByText(backupId.slice(-20)).first().waitFor(WAIT);
  const overview = await page.locator('#overview-body').textContent();
  assert.ok(!overview.includes('none yet'), overview);
  assert.match(overview, /1 live/);
  await shot(page, 'overview');
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.locator('#audit-table').getByText('createBackup').waitFor(WAIT);
  await shot(page, 'audit');
  await page.getByRole('link', { name: 'Schedules' }).click();
  await page.locator('#schedules-body').getByRole('heading', { name: 'Retention policies' }).waitFor(WAIT);
  await shot(page, 'schedules');
  noProblems(page);
  await page.context().close();
});

test('a viewer sees the backups but no restore button and no create form', async () => {
  const page = await newPage();
  await signIn(page, need('CELLAR_VIEWER_TOKEN'));
  await page.getByRole('link', { name: 'Backups' }).click();
  await page.locator('#backups-table tbody tr').first().waitFor(WAIT);
  assert.match(await page.locator('#backups-table tbody').textContent(), /completed/);
  assert.equal(await page.getByRole('button', { name: /^Restore/ }).count(), 0);
  assert.equal(await page.getByRole('button', { name: /^Verify/ }).count(), 0);
  assert.equal(await page.locator('#create-panel').isVisible(), false);
  assert.equal(await page.getByRole('link', { name: 'Audit log' }).isVisible(), false);
  await shot(page, 'viewer-backups');
  noProblems(page);
  await page.context().close();
});

test('on a phone the overview fits the screen', async () => {
  const page = await newPage({ width: 390, height: 844 });
  await signIn(page, need('CELLAR_VIEWER_TOKEN'));
  await page.getByText('Last successful backup').waitFor(WAIT);
  await fitsScreen(page);
  await shot(page, 'phone-overview');
  noProblems(page);
  await page.context().close();
});
