import { test, expect, Page } from '@playwright/test';
import { hydrated, ownerPage, seedApp } from './accounts';

// The users pages over data a customer's backend sent through the REST API,
// including names and values that carry markup.
test.describe.configure({ mode: 'serial' });

let page: Page;
let appId = '';
const errors: string[] = [];

test.beforeAll(async ({ browser, request, baseURL }) => {
  const seeded = await seedApp(request, baseURL!, 'Users demo', [
    { userId: 'ada', givenName: 'Ada', surname: 'Lovelace', email: 'ada@example.com', properties: { plan: 'gold', seats: 12 } },
    { userId: 'bob', givenName: 'Bob', email: 'bob@example.com', properties: { plan: 'silver', seats: 2 } },
    { userId: 'eve', givenName: '<img src=x onerror="alert(1)">Eve', email: 'eve@example.com', properties: { plan: '<script>alert(2)</script>' } },
  ]);
  appId = seeded.appId;
  expect((await request.post('/v1.1/appusers/ada/events', { data: { name: 'item-in-cart' }, headers: seeded.auth })).status()).toBe(201);
  page = await ownerPage(browser, errors);
});

test.afterAll(async () => {
  expect(errors).toEqual([]);
});

test('the users list searches, filters with a live count, and selects', async () => {
  await page.goto(`/apps/${appId}/users`);
  await hydrated(page);
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('3 users match');
  // Markup in a name is shown as text.
  await expect(page.getByRole('link', { name: '<img src=x onerror="alert(1)">Eve' })).toBeVisible();
  expect(await page.locator('img[src="x"]').count()).toBe(0);

  await page.getByLabel('Search by name, email or user ID').fill('bob@');
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('1 user match');
  await page.getByLabel('Search by name, email or user ID').fill('');
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('3 users match');

  await page.getByRole('button', { name: 'Add condition' }).click();
  const row = page.getByRole('group', { name: 'Condition 1' });
  await row.getByLabel('Property').selectOption('seats');
  await row.getByLabel('Operator').selectOption('greater_than');
  await row.getByLabel('Value').fill('5');
  await row.getByLabel('Value').press('Tab');
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('1 user match');
  await expect(page.getByRole('link', { name: 'Ada Lovelace' })).toBeVisible();
  // Editing a condition updates its row in place: keyboard focus stays
  // where Tab put it.
  await expect(row.getByRole('button', { name: 'Remove condition 1' })).toBeFocused();

  await row.getByLabel('Operator').selectOption('less_than');
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('1 user match');
  await expect(page.getByRole('link', { name: 'Bob' })).toBeVisible();
  // The input takes numbers only; an empty one is explained beside the filter.
  await row.getByLabel('Value').fill('');
  await row.getByLabel('Value').press('Tab');
  await expect(page.getByRole('alert')).toHaveText('"seats": enter a number.');

  await page.getByRole('button', { name: 'Remove condition 1' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('3 users match');
  await page.getByRole('checkbox', { name: 'Select Bob' }).check();
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('3 users match · 1 selected');
  await page.getByRole('checkbox', { name: 'Select all users on this page' }).check();
  await expect(page.getByRole('status').filter({ hasText: 'match' })).toHaveText('3 users match · 3 selected');

  await page.getByRole('button', { name: 'Name' }).click();
  const names = await page.locator('table.users tbody tr td:nth-child(2)').allTextContents();
  expect(names[0]).toBe('<img src=x onerror="alert(1)">Eve');
});

test('the catalog lists properties and events with their users', async () => {
  await page.getByText('Properties and events').click();
  await expect(page.getByRole('row', { name: 'seats number 2' })).toBeVisible();
  await expect(page.getByRole('row', { name: 'plan text 3' })).toBeVisible();
  await expect(page.getByRole('row', { name: 'item-in-cart 1' })).toBeVisible();
});

test('a profile shows properties and events, markup as text', async () => {
  await page.getByRole('link', { name: 'Ada Lovelace' }).click();
  await expect(page.getByRole('heading', { name: 'Ada Lovelace' })).toBeVisible();
  await expect(page.getByRole('row', { name: /seats 12/ })).toBeVisible();
  await expect(page.getByText(/item-in-cart · \d{4}-\d{2}-\d{2}/)).toBeVisible();
  await page.goto(`/apps/${appId}/users/eve`);
  await hydrated(page);
  await expect(page.getByRole('row', { name: /plan <script>alert\(2\)<\/script>/ })).toBeVisible();
});
