import { test, expect, Page } from '@playwright/test';
import { owner, mate } from './accounts';

// One fresh murmur, one story: the first run through to signing out, in the
// order a new customer lives it. Later steps rely on earlier ones.
test.describe.configure({ mode: 'serial' });


let page: Page;
const consoleErrors: string[] = [];

async function hydrated(p: Page) {
  await p.waitForSelector('body[data-hydrated="true"]');
}

// Signs in as the owner with a wrong password, on the sign-in page: told
// so, and still there.
async function wrongPassword() {
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill('not my password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
  await expect(page).toHaveURL(/\/login$/);
}

test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  page.on('console', (m) => {
    // Chrome logs every non-2xx fetch; the expected refusals of bad input
    // (401, 409, 422) are the point of several steps here. A 404 or a 5xx
    // is still an error.
    const expected = /^Failed to load resource: the server responded with a status of (401|409|422) /;
    if (m.type() === 'error' && !expected.test(m.text())) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  // Any alert() would mean text typed by someone ran as script.
  page.on('dialog', async (d) => {
    consoleErrors.push(`dialog opened: ${d.message()}`);
    await d.dismiss();
  });
});

test.afterAll(async () => {
  expect(consoleErrors).toEqual([]);
  await page.close();
});

test('first run shows setup; bad input is explained beside each field', async () => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/setup$/);
  await hydrated(page);
  await expect(page.getByRole('heading', { name: 'Welcome to murmur' })).toBeVisible();

  await page.getByRole('button', { name: 'Create owner account' }).click();
  await expect(page.getByText('Enter a name.')).toBeVisible();
  await expect(page.getByText('Enter an email address.')).toBeVisible();
  await expect(page.getByText('Enter a password.')).toBeVisible();
  await expect(page.getByLabel('Your name')).toHaveAttribute('aria-invalid', 'true');

  await page.getByLabel('Your name').fill(owner.name);
  await page.getByLabel('Email').fill('not-an-email');
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create owner account' }).click();
  await expect(page.getByText('Enter an email address like name@example.com.')).toBeVisible();
  await expect(page.getByText('Use at least 10 characters (this one has 5).')).toBeVisible();
  await expect(page.getByText('Enter a name.')).toHaveCount(0);

  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill(owner.password);
  await page.getByRole('button', { name: 'Create owner account' }).click();
  await expect(page).toHaveURL(/\/new-app$/);
});

test('create an app and see its install snippet', async () => {
  await hydrated(page);
  await page.getByRole('button', { name: 'Create app' }).click();
  await expect(page.getByText('Enter an app name.')).toBeVisible();

  await page.getByLabel('App name').fill('Acme Shop');
  await page.getByRole('button', { name: 'Create app' }).click();
  await expect(page.getByRole('heading', { name: 'Acme Shop is ready' })).toBeVisible();
  await expect(page.getByTestId('identity-secret')).toHaveText(/^[A-Za-z0-9_-]{43}$/);

  await page.getByRole('link', { name: "Open the app's settings" }).click();
  await expect(page).toHaveURL(/\/apps\/[0-9a-f]{24}\/settings$/);
  await hydrated(page);
  const appId = (await page.getByTestId('app-id').textContent())!.trim();
  const snippet = page.getByLabel('Install snippet');
  await expect(snippet).toContainText(`Murmur.init({ appId: "${appId}" });`);
  await expect(snippet).toContainText('/widget/loader.js');
  await expect(page.getByRole('link', { name: 'Settings', exact: true })).toHaveAttribute('aria-current', 'page');
  await expect(page.getByRole('combobox', { name: 'App' })).toHaveValue(appId);
  await expect(page.getByText(owner.name).first()).toBeVisible();
});

test('create an API key: the secret is shown once', async () => {
  await page.getByLabel('Key name').fill('production backend');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.getByTestId('api-key-secret').textContent())!.trim();
  expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  await expect(page.getByRole('cell', { name: 'production backend', exact: true })).toBeVisible();
  await page.reload();
  await hydrated(page);
  await expect(page.getByRole('cell', { name: 'production backend', exact: true })).toBeVisible();
  await expect(page.getByText(secret)).toHaveCount(0);
  await page.getByRole('button', { name: 'Revoke key production backend' }).click();
  await expect(page.getByRole('cell', { name: 'Revoked', exact: true })).toBeVisible();
});

test('add a teammate, with clear messages for bad input', async () => {
  const form = page.locator('form', { has: page.getByRole('button', { name: 'Add teammate' }) });
  await form.getByLabel('Name').fill(mate.name);
  await form.getByLabel('Email').fill(owner.email);
  await form.getByLabel('Password').fill(mate.password);
  await form.getByRole('button', { name: 'Add teammate' }).click();
  await expect(page.getByText('A teammate with this email already exists.')).toBeVisible();

  await form.getByLabel('Email').fill(mate.email);
  await form.getByLabel('Password').fill('short');
  await form.getByRole('button', { name: 'Add teammate' }).click();
  await expect(page.getByText('Use at least 10 characters (this one has 5).')).toBeVisible();

  await form.getByLabel('Password').fill(mate.password);
  await form.getByRole('button', { name: 'Add teammate' }).click();
  await expect(page.getByRole('listitem').filter({ hasText: mate.email })).toBeVisible();
  await expect(page.getByRole('button', { name: `Remove ${mate.name}` })).toBeVisible();
});

test('names with markup show as text, never run', async () => {
  await page.getByRole('combobox', { name: 'App' }).selectOption({ label: '+ New app' });
  await expect(page).toHaveURL(/\/new-app$/);
  await hydrated(page);
  const evil = '<img src=x onerror="alert(1)">Evil';
  await page.getByLabel('App name').fill(evil);
  await page.getByRole('button', { name: 'Create app' }).click();
  await expect(page.getByRole('heading', { name: `${evil} is ready` })).toBeVisible();
  await page.getByRole('link', { name: "Open the app's settings" }).click();
  await hydrated(page);
  await expect(page.getByRole('combobox', { name: 'App' })).toContainText(evil);
  expect(await page.locator('img[src="x"]').count()).toBe(0);
});

test('sign out, wrong password, sign in again', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await hydrated(page);

  await wrongPassword();

  // The teammate signs in with the keyboard alone and sees only Acme Shop.
  await page.getByLabel('Email').fill(mate.email);
  await page.getByLabel('Password').fill(mate.password);
  await page.getByLabel('Password').press('Enter');
  await expect(page).toHaveURL(/\/apps\/[0-9a-f]{24}$/);
  await hydrated(page);
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  await expect(page.getByTestId('chart-whispers').locator('svg')).toBeVisible();
  const options = await page.getByRole('combobox', { name: 'App' }).locator('option').allTextContents();
  expect(options).toEqual(['Acme Shop', '+ New app']);
  await page.getByRole('link', { name: 'Messages' }).click();
  await expect(page.getByRole('heading', { name: 'Messages' })).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
});

test('the sign-in page is a plain form: no WASM, typed email kept after an error', async () => {
  // Sent without the dashboard's client (ARCHITECTURE.md, "Pages without
  // the client"): the form posts itself and the server answers with a page.
  const scripts: string[] = [];
  const onRequest = (r: { url(): string }) => {
    if (/\.(wasm|js)$/.test(new URL(r.url()).pathname)) scripts.push(r.url());
  };
  page.on('request', onRequest);
  await page.goto('/login');
  await hydrated(page);
  await wrongPassword();
  await expect(page.getByLabel('Email')).toHaveValue(owner.email);
  await expect(page.getByLabel('Password')).toHaveValue('');
  page.off('request', onRequest);
  expect(scripts).toEqual([]);

  await page.getByLabel('Password').fill(owner.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/apps\/[0-9a-f]{24}$/);
  await hydrated(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
});

test('pages the server alone renders are loaded from it when the dashboard links to them', async () => {
  // `/`, `/login` and `/setup` are not in the client (ARCHITECTURE.md,
  // "Pages without the client"): a link or redirect to one loads the page.
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill(owner.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/apps\/[0-9a-f]{24}$/);
  await hydrated(page);
  await page.getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();
  const documents: string[] = [];
  const onRequest = (r: { url(): string; resourceType(): string }) => {
    if (r.resourceType() === 'document') documents.push(new URL(r.url()).pathname);
  };
  page.on('request', onRequest);
  // The brand link: the server's redirect to the first app's overview.
  await page.getByRole('link', { name: 'murmur', exact: true }).click();
  await expect(page).toHaveURL(/\/apps\/[0-9a-f]{24}$/);
  await hydrated(page);
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  expect(documents[0]).toBe('/');
  // A link with a query keeps it.
  const overview = page.url();
  await page.evaluate(() => {
    const a = document.createElement('a');
    a.href = '/setup?from=dashboard';
    a.textContent = 'setup with a query';
    document.body.append(a);
  });
  await page.getByRole('link', { name: 'setup with a query' }).click();
  await expect(page).toHaveURL(/\/setup\?from=dashboard$/);
  await expect(page.getByRole('heading', { name: 'murmur is already set up' })).toBeVisible();
  await page.goto(overview);
  await hydrated(page);
  // The session ends elsewhere: the next page's data says so, and the
  // dashboard's redirect to sign-in loads the server's sign-in page.
  await page.context().clearCookies();
  await page.getByRole('link', { name: owner.name }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in to murmur' })).toBeVisible();
  expect(documents).toContain('/login');
  page.off('request', onRequest);
});

test('a second setup is refused once the owner exists', async () => {
  await page.goto('/setup');
  await hydrated(page);
  await expect(page.getByRole('heading', { name: 'murmur is already set up' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Create owner account' })).toHaveCount(0);
});

test('the dashboard fits a 360 px screen and shows keyboard focus', async () => {
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill(owner.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/apps\/[0-9a-f]{24}$/);
  await hydrated(page);
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
  const wider = await page.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className} ends at ${Math.round(e.getBoundingClientRect().right)}px`),
  );
  expect(wider).toEqual([]);

  await page.getByRole('link', { name: 'murmur' }).focus();
  await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
  expect(outline).toBe('solid');
});

test('sign out everywhere, from the account page, lands on the server sign-in page', async () => {
  // Still signed in from the step above; the account page's form calls
  // its server function from the client, which redirects to sign-in.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('link', { name: owner.name }).click();
  await expect(page.getByRole('heading', { name: 'Your account' })).toBeVisible();
  await page.getByRole('button', { name: 'Sign out everywhere' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in to murmur' })).toBeVisible();
  // The session is over: the account page sends to sign-in.
  await page.goto('/account');
  await expect(page).toHaveURL(/\/login$/);
});
