import { test, expect, Page } from '@playwright/test';
import * as http from 'node:http';
import { customerSite, ownerPage, seedApp, installSnippet } from './accounts';

// Office hours, as a team sets them and as an end user meets them: the
// settings form, then the widget on a customer's page saying the team is
// away and when it is back, and the office-hours reply to a message.
test.describe.configure({ mode: 'serial' });

const HOST_PORT = Number(process.env.E2E_OFFICE_PORT ?? 3109);
const hostOrigin = `http://localhost:${HOST_PORT}`;
const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
let host: http.Server;
let appId = '';
let snippet = '';
let owner: Page;
const errors: string[] = [];

test.beforeAll(async ({ browser, request, baseURL }) => {
  ({ appId } = await seedApp(request, baseURL!, 'Office shop', []));
  host = await customerSite(HOST_PORT, () => snippet);
  owner = await ownerPage(browser, errors);
});

test.afterAll(async () => {
  host?.close();
  expect(errors).toEqual([]);
});

test('settings: office hours are validated, saved, and say whether the team is open', async () => {
  snippet = await installSnippet(owner, appId);
  const panel = owner.getByRole('region', { name: 'Office hours' });
  await expect(panel.getByTestId('office-status')).toHaveText('Office hours are off: the team is shown as available.');

  // Only tomorrow (UTC) is open, so the team is away now whatever the time.
  const tomorrow = DAYS[(new Date().getUTCDay() + 7) % 7];
  await panel.getByLabel('Use office hours').check();
  await panel.getByLabel('Time zone').fill('Mars/Olympus');
  for (const d of DAYS) await panel.getByLabel(d, { exact: true }).fill('');
  await panel.getByLabel(tomorrow, { exact: true }).fill('09:00-10:00');
  await panel.getByLabel('Reply outside office hours').fill('Away for now, {{ firstName || friend }}!');
  await panel.getByRole('button', { name: 'Save office hours' }).click();
  await expect(panel.getByText('is not a time zone murmur knows')).toBeVisible();

  await panel.getByLabel('Time zone').fill('UTC');
  await panel.getByRole('button', { name: 'Save office hours' }).click();
  await expect(panel.getByTestId('office-status')).toContainText('Closed now; back at');
});

test('the widget says the team is away, and a message gets the office-hours reply', async ({ browser }) => {
  expect(snippet).toContain('/widget/loader.js');
  const page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(`host page: ${e.message}`));
  await page.goto(`${hostOrigin}/shop`);
  await expect.poll(() => page.frames().some((f) => f.url().includes('/widget/frame'))).toBe(true);
  const frame = page.frames().find((f) => f.url().includes('/widget/frame'))!;
  await frame.getByRole('button', { name: 'Open messages' }).click();
  await expect(frame.getByRole('dialog', { name: 'Conversation' })).toBeVisible();
  await expect(frame.locator('#presence')).toContainText("We're away — back");

  await frame.getByLabel('Your reply').fill('Hello?');
  await frame.getByLabel('Your reply').press('Enter');
  const thread = frame.locator('#thread');
  await expect(thread).toContainText('Away for now, friend!');
  await expect(thread.locator('.item')).toHaveCount(2);
  await page.close();
});
