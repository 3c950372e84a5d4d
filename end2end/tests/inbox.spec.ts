import { test, expect, Page, Frame } from '@playwright/test';
import * as http from 'node:http';
import { customerSite, hydrated, ownerPage, seedApp, widgetFrame, installSnippet } from './accounts';

// The inbox, live, with two browser contexts: an end user in the widget on
// a customer's page and a teammate in the inbox. The user writes → the inbox
// shows it live; the teammate replies → the widget shows it live; close →
// the conversation moves to Closed; the user writes again → it reopens.
test.describe.configure({ mode: 'serial' });

const HOST_PORT = Number(process.env.E2E_INBOX_PORT ?? 3113);
const hostOrigin = `http://localhost:${HOST_PORT}`;
let host: http.Server;
let appId = '';
let snippet = '';
let owner: Page;
const errors: string[] = [];

test.beforeAll(async ({ browser, request, baseURL }) => {
  ({ appId } = await seedApp(request, baseURL!, 'Inbox shop', []));
  host = await customerSite(HOST_PORT, () => snippet);
  owner = await ownerPage(browser, errors);
  snippet = await installSnippet(owner, appId);
  expect(snippet).toContain('/widget/loader.js');
});

test.afterAll(async () => {
  host?.close();
  expect(errors).toEqual([]);
});

test('user and teammate talk live; close moves it to Closed; the user reopens it', async ({ browser }) => {
  // The teammate's inbox is open and empty.
  await owner.goto(`/apps/${appId}/inbox`);
  await hydrated(owner);
  await expect(owner.getByTestId('inbox-empty')).toBeVisible();

  // The end user, in a browser context of their own, writes in the widget.
  const userContext = await browser.newContext();
  const page = await userContext.newPage();
  page.on('pageerror', (e) => errors.push(`host page: ${e.message}`));
  await page.goto(`${hostOrigin}/shop`);
  const frame = await widgetFrame(page);
  await frame.getByRole('button', { name: 'Open messages' }).click();
  await expect(frame.getByRole('dialog', { name: 'Conversation' })).toBeVisible();
  await frame.getByLabel('Your reply').fill('Where is my <b>parcel</b>?');
  await frame.getByLabel('Your reply').press('Enter');
  const thread = frame.locator('#thread');
  await expect(thread.locator('.item.mine')).toHaveText('Where is my <b>parcel</b>?');

  // The inbox shows it live, unread; the keyboard opens it.
  const list = owner.getByTestId('inbox-list');
  await expect(list).toContainText('Where is my <b>parcel</b>?');
  await expect(list.locator('.conversation-row.unread')).toHaveCount(1);
  await owner.keyboard.press('Enter');
  await expect(owner).toHaveURL(new RegExp(`/apps/${appId}/inbox/[0-9a-f]+$`));
  const view = owner.getByTestId('conversation');
  await expect(view).toContainText('Where is my <b>parcel</b>?');
  expect(await view.locator('.thread b').count()).toBe(0);
  await expect(list.locator('.conversation-row.unread')).toHaveCount(0);

  // `r` focuses the reply; the teammate's styled reply reaches the widget live.
  await owner.keyboard.press('r');
  await expect(owner.locator('#reply-text')).toBeFocused();
  await owner.keyboard.type('On its **way**!');
  await owner.keyboard.press('Enter');
  await expect(view.locator('.thread')).toContainText('On its way!');
  await expect(thread.locator('.item.theirs').last()).toContainText('On its way!');
  await expect(thread.locator('.item.theirs strong')).toHaveText('way');

  // `c` closes (after leaving the reply box): it moves to Closed.
  await owner.keyboard.press('Escape');
  await owner.keyboard.press('c');
  await expect(view).toHaveAttribute('data-state', 'closed');
  await expect(owner.getByTestId('inbox-empty')).toBeVisible();
  await owner.getByRole('tab', { name: 'Closed' }).click();
  // The list previews the team's words without their styling markers.
  await expect(owner.getByTestId('inbox-list')).toContainText('On its way!');
  await owner.getByRole('tab', { name: 'Open' }).click();
  await expect(owner.getByTestId('inbox-empty')).toBeVisible();

  // The user writes again: the conversation reopens, live.
  await frame.getByLabel('Your reply').fill('Thanks!');
  await frame.getByLabel('Your reply').press('Enter');
  await expect(owner.getByTestId('inbox-list')).toContainText('Thanks!');
  await expect(view).toHaveAttribute('data-state', 'open');
  await expect(view.locator('.thread')).toContainText('Thanks!');

  // The widget lists the user's conversations.
  await frame.getByRole('button', { name: 'Your conversations' }).click();
  await expect(frame.locator('#convlist li')).toHaveCount(1);
  await expect(frame.locator('#convlist')).toContainText('Thanks!');
  await userContext.close();
});

test('the inbox pages through older conversations', async ({ request, baseURL }) => {
  const users = Array.from({ length: 32 }, (_, i) => ({ userId: `pager-${i}`, givenName: `Pager ${i}` }));
  const paged = await seedApp(request, baseURL!, 'Paged shop', users);
  for (const u of users) {
    const r = await request.post(`/v1.1/appusers/${u.userId}/messages`, {
      data: { role: 'appUser', text: `Message from ${u.userId}` },
      headers: paged.auth,
    });
    expect(r.status()).toBe(201);
  }
  await owner.goto(`/apps/${paged.appId}/inbox`);
  await hydrated(owner);
  const rows = owner.getByTestId('inbox-list').locator('.conversation-row');
  await expect(rows).toHaveCount(30);
  await owner.getByTestId('inbox-older').click();
  await expect(rows).toHaveCount(2);
  await expect(owner.getByTestId('inbox-older')).toHaveCount(0);
  await owner.getByRole('button', { name: 'Newer' }).click();
  await expect(rows).toHaveCount(30);
});
