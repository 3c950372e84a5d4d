import { test, expect } from '@playwright/test';
import { hydrated, ownerPage, seedApp } from './accounts';

// The overview: its charts are SVG drawn by the server, every number is
// also text (the summary, and a table of days under each chart), and the
// range switches between 7, 30 and 90 days without a page load.
test('the overview charts the figures, as text too, over the range chosen', async ({ browser, request, baseURL }) => {
  const { appId } = await seedApp(request, baseURL!, 'Overview Shop', [
    { userId: 'ov-ada', givenName: 'Ada' },
    { userId: 'ov-bob', givenName: 'Bob' },
    { userId: 'ov-cy', givenName: 'Cy' },
  ]);
  const errors: string[] = [];
  const page = await ownerPage(browser, errors);
  await page.goto(`/apps/${appId}`);
  await hydrated(page);
  await expect(page.getByRole('heading', { name: 'Overview', level: 1 })).toBeVisible();
  await expect(page.getByRole('link', { name: 'Last 30 days' })).toHaveAttribute('aria-current', 'page');

  // Charts: one SVG each, described for screen readers.
  for (const id of [
    'chart-users',
    'chart-whispers',
    'chart-messages',
    'chart-conversations',
    'chart-first-response',
    'chart-first-responses',
  ]) {
    await expect(page.getByTestId(id).locator('svg[role="img"]')).toBeVisible();
  }
  const whispers = page.getByTestId('chart-whispers');
  await expect(whispers.locator('svg')).toHaveAttribute('aria-label', /^Whispers, by day \(UTC\), .*; Sent: 0; Seen: 0; Clicked: 0; Replied: 0$/);
  // The numbers as text: the summary and a row per day.
  await expect(page.getByTestId('stat-users').locator('dd')).toHaveText(/^\d+$/);
  await expect(page.getByTestId('stat-whispers-sent').locator('dd')).toHaveText('0');
  await expect(page.getByTestId('overview-updated')).toHaveText(/^Updated \d\d:\d\d UTC/);
  await expect(whispers.locator('tbody tr')).toHaveCount(30);
  await expect(whispers.getByRole('columnheader', { name: 'Seen' })).toBeAttached();
  await expect(page.getByTestId('chart-users').locator('tbody tr').first().locator('td').first()).toHaveText(/^\d+$/);

  // 7 days, then 90: the URL, the links and the tables follow.
  await page.getByRole('link', { name: 'Last 7 days' }).click();
  await expect(page).toHaveURL(new RegExp(`/apps/${appId}\\?range=7$`));
  await expect(page.getByRole('link', { name: 'Last 7 days' })).toHaveAttribute('aria-current', 'page');
  await expect(page.getByRole('link', { name: 'Last 30 days' })).not.toHaveAttribute('aria-current', 'page');
  await expect(whispers.locator('tbody tr')).toHaveCount(7);
  await page.getByRole('link', { name: 'Last 90 days' }).click();
  await expect(page).toHaveURL(new RegExp(`/apps/${appId}\\?range=90$`));
  await expect(whispers.locator('tbody tr')).toHaveCount(90);
  await expect(page.getByTestId('chart-conversations').locator('svg')).toBeVisible();

  // A direct load of a range renders it on the server.
  await page.goto(`/apps/${appId}?range=7`);
  await hydrated(page);
  await expect(page.getByTestId('chart-messages').locator('tbody tr')).toHaveCount(7);
  expect(errors).toEqual([]);
});
