import { test, expect, Page } from '@playwright/test';
import { hydrated, ownerPage, seedApp } from './accounts';

// A marketer builds whispers in the browser: templates, personalisation
// with live previews, buttons, activate/pause/resume/duplicate/delete.
test.describe.configure({ mode: 'serial' });

let page: Page;
let appId = '';
const errors: string[] = [];

test.beforeAll(async ({ browser, request, baseURL }) => {
  const seeded = await seedApp(request, baseURL!, 'Whisper shop', [
    { userId: 'ada', givenName: 'Ada', surname: 'Lovelace', signedUpAt: '2020-01-01T00:00:00Z' },
    { userId: 'new', givenName: 'Newbie' },
  ]);
  appId = seeded.appId;
  page = await ownerPage(browser, errors);
});

test.afterAll(async () => {
  expect(errors).toEqual([]);
});

const card = () => page.getByRole('group', { name: 'Notification preview' });
const messenger = () => page.getByRole('group', { name: 'Messenger preview' });

test('from the rating template to an active whisper, with live previews', async () => {
  await page.goto(`/apps/${appId}/whispers`);
  await hydrated(page);
  await expect(page.getByText('No whispers yet.')).toBeVisible();
  await page.getByRole('link', { name: 'Ask for app rating' }).click();
  await expect(page).toHaveURL(/whispers\/new\?template=rating/);
  await hydrated(page);
  await expect(page.getByLabel('Name', { exact: true })).toHaveValue('Ask for app rating');
  // Signed up more than 5 days ago: Ada, not the newcomer.
  await expect(page.getByRole('status').filter({ hasText: 'match now' })).toHaveText('1 user match now');

  const text = page.getByLabel('Text', { exact: true });
  await text.fill('Hi {{ firstName');
  await expect(page.getByText('A placeholder is not closed: add }}.')).toBeVisible();
  await text.fill('Hi {{ firstName || friend }}, would you **rate** us?');
  await expect(card()).toContainText('Hi friend, would you rate us?');
  await expect(card().locator('strong')).toHaveText('rate');
  await page.getByLabel('Personalise as').selectOption({ label: 'Ada Lovelace' });
  await expect(card()).toContainText('Hi Ada, would you rate us?');
  await expect(messenger()).toContainText('Hi Ada, would you rate us?');
  await page.getByLabel('Personalise as').selectOption({ label: 'Nobody (show fallbacks)' });
  await expect(messenger()).toContainText('Hi friend, would you rate us?');

  // The template's button plus one more.
  await expect(card().getByRole('link', { name: 'Rate the app' })).toBeVisible();
  await page.getByRole('button', { name: 'Add button' }).click();
  const b2 = page.getByRole('group', { name: 'Button 2' });
  await b2.getByLabel('Label').fill('Later');
  await b2.getByLabel('Label').press('Tab');
  await b2.getByLabel('Action').selectOption('reply');
  await b2.getByLabel('Reply text').fill('Maybe later');
  await b2.getByLabel('Reply text').press('Tab');
  await expect(card().getByRole('button', { name: 'Later' })).toBeVisible();

  await page.getByRole('button', { name: 'Save and activate' }).click();
  await expect(page).toHaveURL(/whispers\/[0-9a-f]{24}$/);
  await hydrated(page);
  await expect(page.locator('.status')).toHaveText('active');
  await expect(page.getByLabel('Text', { exact: true })).toHaveValue('Hi {{ firstName || friend }}, would you **rate** us?');

  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.locator('.status')).toHaveText('paused');
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(page.locator('.status')).toHaveText('active');

  // Editing an active whisper asks first.
  await page.getByLabel('Name', { exact: true }).fill('Rate us');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByRole('alertdialog', { name: 'Apply changes' })).toContainText('future deliveries only');
  await page.getByRole('button', { name: 'Apply to future deliveries' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved.' })).toBeVisible();
});

test('the list shows stats and can duplicate, pause and delete', async () => {
  await page.goto(`/apps/${appId}/whispers`);
  await hydrated(page);
  const row = page.getByRole('row', { name: /Rate us/ });
  await expect(row).toContainText('active');
  await expect(row).toContainText('signedUpAt more than 5 days ago');
  await expect(row).toContainText('when a user starts matching');
  await expect(row.getByRole('cell', { name: '0', exact: true })).toHaveCount(4);

  await page.getByRole('button', { name: 'Duplicate Rate us' }).click();
  const copy = page.getByRole('row', { name: /Copy of Rate us/ });
  await expect(copy).toContainText('draft');
  await page.getByRole('button', { name: 'Pause Rate us' }).click();
  await expect(page.getByRole('row', { name: /^Rate us/ })).toContainText('paused');

  await page.getByRole('button', { name: 'Delete Copy of Rate us' }).click();
  await expect(page.getByRole('alert')).toHaveText('Delete for good?');
  await page.getByRole('button', { name: 'Yes, delete' }).click();
  await expect(page.getByRole('row', { name: /Copy of Rate us/ })).toHaveCount(0);
  await expect(page.getByRole('row', { name: /Rate us/ })).toHaveCount(1);
});

test('a whisper for all users needs an event; markup stays text', async () => {
  await page.goto(`/apps/${appId}/whispers/new`);
  await hydrated(page);
  await page.getByLabel('Name', { exact: true }).fill('<b>Everyone</b>');
  await page.getByLabel('All users').check();
  await expect(page.getByRole('status').filter({ hasText: 'match now' })).toHaveText('2 users match now');
  await page.getByLabel('Send it').selectOption('property_match');
  await page.getByLabel('Text', { exact: true }).fill('<script>alert(1)</script> Hello <img src=x onerror=alert(2)>');
  await expect(card()).toContainText('<script>alert(1)</script> Hello <img src=x onerror=alert(2)>');
  expect(await page.locator('.mm-card img, .mm-card script').count()).toBe(0);
  await page.getByRole('button', { name: 'Save draft' }).click();
  await expect(
    page.getByText('A whisper for all users must be triggered by an event (or app launch, or a first message).'),
  ).toBeVisible();
  await expect(page).toHaveURL(/whispers\/new$/);

  await page.getByLabel('Send it').selectOption('event');
  await page.getByLabel('Event name').fill('item-in-cart');
  await page.getByRole('button', { name: 'Save draft' }).click();
  await expect(page).toHaveURL(/whispers\/[0-9a-f]{24}$/);
  await page.goto(`/apps/${appId}/whispers`);
  await hydrated(page);
  await expect(page.getByRole('link', { name: '<b>Everyone</b>' })).toBeVisible();
  await expect(page.getByRole('row', { name: /Everyone/ })).toContainText('on event “item-in-cart”');
});
