import { test, expect, Page } from '@playwright/test';
import { hydrated, ownerPage, ownerSession, seedApp } from './accounts';

// "Why did (or didn't) this user get this whisper?" in the browser: a user
// who matched, one who failed a condition (with their value), and one who
// had already received it, on their profiles and on the whisper's page.
test.describe.configure({ mode: 'serial' });

let page: Page;
let appId = '';
let whisperId = '';
const errors: string[] = [];

test.beforeAll(async ({ browser, request, baseURL }) => {
  const seeded = await seedApp(request, baseURL!, 'Why shop', [
    { userId: 'ann', givenName: 'Ann', properties: { plan: 'pro' } },
    { userId: 'bob', givenName: 'Bob', properties: { plan: 'free' } },
    { userId: 'cy', givenName: 'Cy', properties: { plan: 'pro' } },
  ]);
  appId = seeded.appId;
  const headers = await ownerSession(request, baseURL!);
  const editor = await (
    await request.post('/api/whispers/editor', {
      form: { 'input[app_id]': appId, 'input[whisper_id]': 'new', 'input[template]': '' },
      headers,
    })
  ).json();
  const draft = {
    ...editor.draft,
    name: 'Pro tips',
    all_users: false,
    conditions: [{ property: 'plan', operator: 'is', value: 'pro' }],
    trigger: { kind: 'event', event: 'viewed-pricing' },
    text: 'Hi {{ firstName || there }}, a tip for pros.',
    buttons: [],
  };
  const saved = await request.post('/api/whispers/save', {
    form: { 'input[app_id]': appId, 'input[whisper_id]': 'new', 'input[draft]': JSON.stringify(draft), 'input[activate]': 'true' },
    headers,
  });
  expect(saved.status()).toBe(200);
  whisperId = await saved.json();
  const track = async (user: string) =>
    expect(
      (await request.post(`/v1.1/appusers/${user}/events`, { data: { name: 'viewed-pricing' }, headers: seeded.auth })).status(),
    ).toBeLessThan(300);
  await track('ann');
  await track('bob');
  await track('cy');
  await track('cy'); // again: already received
  page = await ownerPage(browser, errors);
});

test.afterAll(async () => {
  expect(errors).toEqual([]);
});

async function askOnProfile(user: string) {
  await page.goto(`/apps/${appId}/users/${user}`);
  await hydrated(page);
  await page.getByTestId('why-open').click();
  await page.getByTestId('why-subject').selectOption({ label: 'Whisper: Pro tips (active)' });
  return page.getByTestId('why-answer');
}

test('a user who matched: the trigger, each condition passed with their value, the card', async () => {
  const answer = await askOnProfile('ann');
  await expect(answer).toContainText('Ann tracked the event “viewed-pricing”');
  await expect(answer).toContainText('Ann passed every condition (1).');
  await expect(answer.locator('table tr[data-passed="true"] td')).toHaveText(['plan is pro', 'pro', 'passed']);
  await expect(answer).toContainText('Card made on');
});

test('a user who failed a condition: which one, and their value then', async () => {
  const answer = await askOnProfile('bob');
  await expect(answer).toHaveAttribute('data-verdict', 'no');
  await expect(answer).toContainText('Bob was not in the audience');
  await expect(answer.locator('table tr[data-passed="false"] td')).toHaveText(['plan is pro', 'free', 'failed']);
});

test('a user who had already received it: once only', async () => {
  const answer = await askOnProfile('cy');
  await expect(answer).toContainText('A whisper goes to each user once: Cy will not get it again');
});

test("on the whisper's page: enter a user, read why; an unknown user is an error beside the field", async () => {
  await page.goto(`/apps/${appId}/whispers/${whisperId}`);
  await hydrated(page);
  await page.getByTestId('why-open').click();
  await page.getByTestId('why-user').fill('nobody');
  await page.getByRole('button', { name: 'Explain' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'No user "nobody" in this app.' })).toBeVisible();
  await page.getByTestId('why-user').fill('bob');
  await page.getByRole('button', { name: 'Explain' }).click();
  await expect(page.getByTestId('why-answer')).toContainText('Bob was not in the audience');
});
