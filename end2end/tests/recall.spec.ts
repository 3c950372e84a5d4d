import { test, expect, Page, Frame } from '@playwright/test';
import * as http from 'node:http';
import { customerSite, hydrated, ownerPage, seedApp, widgetFrame, installSnippet } from './accounts';

// Recall, live: a visitor on a customer's page gets a whisper's card; the
// teammate finds the visitor's profile, sees the card in the timeline and
// recalls it; the card leaves the widget without a reload, and the
// timeline says it was recalled.
test.describe.configure({ mode: 'serial' });

const HOST_PORT = Number(process.env.E2E_RECALL_PORT ?? 3115);
const hostOrigin = `http://localhost:${HOST_PORT}`;
let host: http.Server;
let appId = '';
let snippet = '';
let owner: Page;
const errors: string[] = [];

test.beforeAll(async ({ browser, request, baseURL }) => {
  ({ appId } = await seedApp(request, baseURL!, 'Recall shop', []));
  host = await customerSite(HOST_PORT, () => snippet);
  owner = await ownerPage(browser, errors);
  snippet = await installSnippet(owner, appId);
  expect(snippet).toContain('/widget/loader.js');
});

test.afterAll(async () => {
  host?.close();
  expect(errors).toEqual([]);
});

// The shop's tab goes to the background (as when the visitor switched tabs):
// the frame's document is told it is hidden.
async function hide(frame: Frame) {
  await frame.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
}

test('a card recalled in the dashboard leaves the open widget; the timeline shows it', async ({ browser }) => {
  // A whisper for everyone, sent on an event.
  await owner.goto(`/apps/${appId}/whispers/new`);
  await hydrated(owner);
  await owner.getByLabel('Name', { exact: true }).fill('Wrong price');
  await owner.getByLabel('All users').check();
  await owner.getByLabel('Send it').selectOption('event');
  await owner.getByLabel('Event name').fill('viewed-sale');
  await owner.getByLabel('Text', { exact: true }).fill('Everything is **90%** off!');
  await owner.getByRole('button', { name: 'Save and activate' }).click();
  await expect(owner).toHaveURL(/whispers\/[0-9a-f]{24}$/);
  await hydrated(owner);
  const whisperURL = owner.url();

  // A visitor, in a browser context of their own, on the shop page. Their
  // tab is in the background when the card arrives: it is on the page but
  // not seen yet, so it can still be recalled.
  const visitor = await browser.newContext();
  const page = await visitor.newPage();
  page.on('pageerror', (e) => errors.push(`host page: ${e.message}`));
  await page.goto(`${hostOrigin}/shop`);
  const frame = await widgetFrame(page);
  await expect(frame.getByRole('button', { name: 'Open messages' })).toBeVisible();
  await hide(frame);
  await page.evaluate(() => (window as any).Murmur.track('viewed-sale'));
  const card = frame.locator('.card');
  await expect(card).toHaveCount(1);
  await expect(card.locator('.body')).toHaveText('Everything is 90% off!');

  // The teammate opens the visitor's profile: the timeline lists the event and the card.
  await owner.goto(`/apps/${appId}/users`);
  await hydrated(owner);
  await owner.getByRole('link', { name: 'Anonymous user' }).first().click();
  await expect(owner).toHaveURL(/\/users\/[0-9a-f]{24}$/);
  await hydrated(owner);
  const timeline = owner.getByTestId('timeline');
  const cardItem = timeline.locator('[data-kind="card"]');
  await expect(cardItem).toHaveCount(1);
  await expect(cardItem).toContainText('Whisper “Wrong price”');
  await expect(cardItem).toHaveAttribute('data-state', 'sent');
  await expect(timeline.locator('[data-kind="event"]').first()).toContainText('viewed-sale');
  // Newest first: the card above the event that caused it.
  await expect(timeline.getByTestId('timeline-item').first()).toHaveAttribute('data-kind', 'card');

  // Recall: the card leaves the visitor's widget, no reload; the timeline says so.
  await cardItem.getByTestId('recall-card').click();
  await expect(card).toHaveCount(0);
  await expect(cardItem).toHaveAttribute('data-state', 'cancelled');
  await expect(cardItem.getByTestId('recall-card')).toHaveCount(0);
  // The thread does not show it either.
  await frame.getByRole('button', { name: 'Open messages' }).click();
  await expect(frame.locator('#thread')).not.toContainText('90%');

  // After a reload of the profile, the timeline keeps who recalled it.
  await owner.reload();
  await hydrated(owner);
  await expect(owner.getByTestId('timeline').locator('[data-kind="card"]')).toContainText('Recalled by Olive Owner');
  await visitor.close();

  // On the whisper's page: "Recall unseen cards" pauses it (nothing is left to recall here).
  await owner.goto(whisperURL);
  await hydrated(owner);
  await expect(owner.locator('.status')).toHaveText('active');
  await owner.getByTestId('recall-whisper').click();
  await owner.getByRole('button', { name: 'Recall and pause' }).click();
  await expect(owner.getByTestId('recall-result')).toHaveText('0 cards recalled. The whisper is paused.');
  await expect(owner.locator('.status')).toHaveText('paused');
});
