// Schedules, retention and pins in the dashboard, in headless Chromium: a master edits a
// schedule's cron and sees its next fire time move, disables it, adds and deletes one, changes
// a retention policy after previewing it; pins and unpins a backup; an operator pins but cannot
// unpin; a viewer sees all of it without a single edit or pin control. Every change is checked
// in the catalog through GraphQL too (dashboard_browser.rs checks it in SQL afterwards).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WAIT, fitsScreen, focused, gql, need, newPage, noProblems, shot, signIn, until, useBrowser } from './harness.mjs';

useBrowser();

const SCHEDULES = '{ schedules { name cron timeZone backupType verify enabled nextFireAt } }';
const POLICIES = '{ retentionPolicies { backupType maxCount maxAgeDays keepDaily } }';
const BACKUP = 'query($id: ID!) { backup(id: $id) { id status pinned } }';
const CREATE = 'mutation { createBackup(input: { backupType: WEEKLY }) { backup { id } } }';
const weekly = [];

async function schedule(name) {
  return (await gql(SCHEDULES)).schedules.find((s) => s.name === name);
}

async function openView(page, token, link) {
  await signIn(page, token);
  await page.getByRole('link', { name: link }).click();
}

// Two weekly backups, one after the other (the older first), for the retention preview.
before(async () => {
  for (let i = 0; i < 2; i += 1) {
    const id = (await gql(CREATE)).createBackup.backup.id;
    await until(`backup ${id} to complete`, async () => {
      const b = (await gql(BACKUP, { id })).backup;
      assert.notEqual(b.status, 'FAILED', id);
      return b.status === 'COMPLETED';
    }, 120_000);
    weekly.push(id);
  }
});

test('a master edits, disables, adds and deletes schedules', async () => {
  const page = await newPage();
  await openView(page, need('CELLAR_MASTER_TOKEN'), 'Schedules');
  const row = (name) => page.locator(`#schedules-table tr[data-schedule="${name}"]`);
  await row('daily').waitFor(WAIT);
  const seeded = await schedule('daily');
  assert.equal(seeded.cron, '0 2 * * *');

  // Keyboard: Enter opens the editor on the cron field, Escape closes it and focus comes back.
  await page.getByRole('button', { name: 'Edit schedule weekly', exact: true }).focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'schedule-cron');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#schedule-editor').isVisible(), false);
  assert.equal(await focused(page), 'Edit schedule weekly');

  // A cron the API refuses: the message stands next to the form, on the cron field.
  await page.getByRole('button', { name: 'Edit schedule daily', exact: true }).click();
  assert.equal(await page.locator('#schedule-form').getByLabel('Name', { exact: true }).getAttribute('readonly'), '');
  await page.locator('#schedule-form').getByLabel('Cron expression', { exact: true }).fill('every night');
  await page.getByRole('button', { name: 'Save schedule', exact: true }).click();
  const error = page.locator('#schedule-error');
  await error.getByText('invalid cron expression').waitFor(WAIT);
  assert.equal(await page.locator('#schedule-form').getByLabel('Cron expression', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'schedule-cron');
  assert.match(await page.locator('#schedule-form').getByLabel('Cron expression', { exact: true }).getAttribute('aria-describedby'), /schedule-error/);
  await shot(page, 'schedule-error');
  assert.equal((await schedule('daily')).cron, '0 2 * * *', 'a refused edit changed the schedule');

  await page.locator('#schedule-form').getByLabel('Cron expression', { exact: true }).fill('30 5 * * *');
  await page.getByRole('button', { name: 'Save schedule', exact: true }).click();
  await row('daily').getByText('30 5 * * *').waitFor(WAIT);
  const edited = await schedule('daily');
  assert.equal(edited.cron, '30 5 * * *');
  assert.notEqual(edited.nextFireAt, seeded.nextFireAt);
  const next = new Date(edited.nextFireAt);
  assert.deepEqual([next.getUTCHours(), next.getUTCMinutes()], [5, 30]);
  assert.ok(next - Date.now() > 0 && next - Date.now() <= 24 * 3600 * 1000, edited.nextFireAt);
  assert.equal(await row('daily').locator('time').first().getAttribute('datetime'), edited.nextFireAt);
  assert.equal(await focused(page), 'Edit schedule daily');

  await page.getByRole('button', { name: 'Disable schedule daily', exact: true }).click();
  await row('daily').locator('.pill', { hasText: /^disabled$/ }).waitFor(WAIT);
  assert.equal(await focused(page), 'Enable schedule daily');
  const disabled = await schedule('daily');
  assert.equal(disabled.enabled, false);
  assert.equal(disabled.nextFireAt, null);

  await page.getByRole('button', { name: 'Add schedule', exact: true }).click();
  await page.locator('#schedule-form').getByLabel('Name', { exact: true }).fill('browser-nightly');
  await page.locator('#schedule-form').getByLabel('Cron expression', { exact: true }).fill('15 1 * * 1-5');
  await page.locator('#schedule-form').getByLabel('Time zone', { exact: true }).fill('Europe/Berlin');
  await page.locator('#schedule-form').getByLabel('Backup type', { exact: true }).selectOption('WEEKLY');
  await page.locator('#schedule-form').getByLabel('Verify afterwards', { exact: true }).selectOption('quick');
  await page.getByRole('button', { name: 'Save schedule', exact: true }).click();
  await row('browser-nightly').waitFor(WAIT);
  const added = await schedule('browser-nightly');
  assert.deepEqual({ ...added, nextFireAt: !!added.nextFireAt }, { name: 'browser-nightly', cron: '15 1 * * 1-5',
    timeZone: 'Europe/Berlin', backupType: 'WEEKLY', verify: 'quick', enabled: true, nextFireAt: true });
  await shot(page, 'schedules-edited');

  await page.getByRole('button', { name: 'Delete schedule browser-nightly', exact: true }).click();
  const dialog = page.locator('#dialog');
  await dialog.getByText('The backups it took stay').waitFor(WAIT);
  await shot(page, 'schedule-delete-dialog');
  await dialog.getByRole('button', { name: 'Delete schedule', exact: true }).click();
  await row('browser-nightly').waitFor({ state: 'detached', ...WAIT });
  assert.equal(await schedule('browser-nightly'), undefined);
  assert.equal(await focused(page), 'schedule-add');
  noProblems(page);
  await page.context().close();
});

test('a master previews a retention change, then saves it', async () => {
  const page = await newPage();
  await openView(page, need('CELLAR_MASTER_TOKEN'), 'Schedules');
  await page.getByRole('button', { name: 'Edit weekly retention', exact: true }).click();
  const save = page.getByRole('button', { name: 'Save policy', exact: true });
  assert.equal(await save.isDisabled(), true, 'saving is offered before a preview');

  // Refused by the API: the message names the field, which is marked.
  await page.getByLabel('Keep at most (per source)').fill('0');
  await page.getByRole('button', { name: 'Preview', exact: true }).click();
  await page.locator('#retention-error').getByText('maxCount must be 1 to 100000').waitFor(WAIT);
  assert.equal(await page.getByLabel('Keep at most (per source)').getAttribute('aria-invalid'), 'true');

  await page.getByLabel('Keep at most (per source)').fill('1');
  await page.getByRole('button', { name: 'Preview', exact: true }).click();
  const preview = page.locator('#retention-preview');
  await preview.getByText('would delete 1 of 2 weekly backups').waitFor(WAIT);
  const doomed = preview.locator('tbody tr', { hasText: 'delete' });
  assert.equal(await doomed.count(), 1);
  assert.equal(await doomed.locator('[title]').first().getAttribute('title'), weekly[0]);
  assert.equal(await page.getByLabel('Keep at most (per source)').getAttribute('aria-invalid'), null);
  await shot(page, 'retention-preview');
  let stored = (await gql(POLICIES)).retentionPolicies.find((p) => p.backupType === 'WEEKLY');
  assert.equal(stored.maxCount, 10, 'the preview saved the policy');

  // A change after the preview takes the offer to save back until it is previewed again.
  await page.getByLabel('Maximum age in days').fill('30');
  assert.equal(await save.isDisabled(), true);
  await page.getByRole('button', { name: 'Preview', exact: true }).click();
  await preview.getByText('would delete 1 of 2').waitFor(WAIT);
  await save.click();
  const weeklyRow = page.locator('#retention-table tbody tr', { hasText: 'weekly' });
  await weeklyRow.getByText('30 days').waitFor(WAIT);
  assert.match(await weeklyRow.textContent(), /1 per source/);
  assert.equal(await focused(page), 'Edit weekly retention');
  stored = (await gql(POLICIES)).retentionPolicies.find((p) => p.backupType === 'WEEKLY');
  assert.deepEqual(stored, { backupType: 'WEEKLY', maxCount: 1, maxAgeDays: 30, keepDaily: 0 });
  await shot(page, 'retention-saved');
  noProblems(page);
  await page.context().close();
});

test('a master pins and unpins a backup; an operator pins but cannot unpin', async () => {
  const id = weekly[1];
  const page = await newPage();
  await openView(page, need('CELLAR_MASTER_TOKEN'), 'Backups');
  const row = page.locator('#backups-table tbody tr', { has: page.locator(`[title="${id}"]`) });
  await row.waitFor(WAIT);
  await page.getByRole('button', { name: `Pin backup ${id}`, exact: true }).focus();
  await page.keyboard.press('Enter');
  await row.locator('.pin').waitFor(WAIT);
  assert.equal(await focused(page), `Unpin backup ${id}`);
  assert.equal(await row.getByRole('button', { name: `Delete backup ${id}`, exact: true }).count(), 0);
  assert.equal((await gql(BACKUP, { id })).backup.pinned, true);
  await shot(page, 'backups-pinned');
  await page.getByRole('button', { name: `Unpin backup ${id}`, exact: true }).click();
  await row.getByRole('button', { name: `Pin backup ${id}`, exact: true }).waitFor(WAIT);
  assert.equal(await row.locator('.pin').count(), 0);
  assert.equal((await gql(BACKUP, { id })).backup.pinned, false);
  noProblems(page);
  await page.context().close();

  const op = await newPage();
  await openView(op, need('CELLAR_OPERATOR_TOKEN'), 'Backups');
  const opRow = op.locator('#backups-table tbody tr', { has: op.locator(`[title="${id}"]`) });
  await opRow.getByRole('button', { name: `Pin backup ${id}`, exact: true }).click();
  await opRow.locator('.pin').waitFor(WAIT);
  assert.equal(await op.getByRole('button', { name: /^Unpin/ }).count(), 0);
  assert.equal((await gql(BACKUP, { id })).backup.pinned, true);
  noProblems(op);
  await op.context().close();
});

test('a viewer sees schedules, retention and pins without any control to change them', async () => {
  const page = await newPage();
  await openView(page, need('CELLAR_VIEWER_TOKEN'), 'Schedules');
  await page.locator('#schedules-table tr[data-schedule="weekly"]').waitFor(WAIT);
  await page.locator('#retention-table tbody tr').first().waitFor(WAIT);
  await page.getByText('Only masters can change schedules and retention.').waitFor(WAIT);
  assert.equal(await page.locator('#view-schedules button').count(), 0, 'a viewer sees buttons');
  await shot(page, 'viewer-schedules');

  await page.getByRole('link', { name: 'Backups' }).click();
  const row = page.locator('#backups-table tbody tr', { has: page.locator(`[title="${weekly[1]}"]`) });
  await row.locator('.pin').waitFor(WAIT);
  assert.equal(await page.getByRole('button', { name: /^(Pin|Unpin) backup/ }).count(), 0);
  noProblems(page);
  await page.context().close();
});

test('on a phone the schedule editor fits the screen', async () => {
  const page = await newPage({ width: 390, height: 844 });
  await openView(page, need('CELLAR_MASTER_TOKEN'), 'Schedules');
  await page.getByRole('button', { name: 'Add schedule', exact: true }).click();
  await page.locator('#schedule-form').getByLabel('Cron expression', { exact: true }).waitFor(WAIT);
  await fitsScreen(page);
  await shot(page, 'phone-schedules');
  noProblems(page);
  await page.context().close();
});
