import { expect, APIRequestContext, Frame, Page } from '@playwright/test';
import * as http from 'node:http';

// The accounts the end-to-end tests use, shared by the spec files.
export const owner = { name: 'Olive Owner', email: 'olive@example.com', password: 'olive password 1' };
export const mate = { name: 'Tess Mate', email: 'tess@example.com', password: 'tess password 1' };

// Signs the API request context in as the owner (setting murmur up first if
// this spec runs alone). Returns the same-origin headers server functions need.
export async function ownerSession(request: APIRequestContext, baseURL: string) {
  const headers = { Origin: baseURL, Accept: 'application/json' };
  const session = await (await request.post('/api/session', { headers })).json();
  const form = session.setup_needed
    ? { 'input[name]': owner.name, 'input[email]': owner.email, 'input[password]': owner.password }
    : { 'input[email]': owner.email, 'input[password]': owner.password };
  const r = await request.post(session.setup_needed ? '/api/setup' : '/api/login', { form, headers });
  expect(r.status()).toBe(200);
  return headers;
}

export async function hydrated(p: Page) {
  await p.waitForSelector('body[data-hydrated="true"]');
}

// Opens the app's settings (signed in as `p`) and returns its install snippet.
export async function installSnippet(p: Page, appId: string): Promise<string> {
  await p.goto(`/apps/${appId}/settings`);
  await hydrated(p);
  return (await p.getByLabel('Install snippet').textContent()) ?? '';
}

// Creates an app with an API key and the given users (through the REST API,
// as a customer's backend would). Returns the app id and the key's auth header.
export async function seedApp(request: APIRequestContext, baseURL: string, name: string, users: object[]) {
  const headers = await ownerSession(request, baseURL);
  const app = await (await request.post('/api/apps/create', { form: { 'input[name]': name }, headers })).json();
  const key = await (
    await request.post('/api/apps/keys/create', { form: { 'input[app_id]': app.app.id, 'input[name]': 'seed' }, headers })
  ).json();
  const auth = { Authorization: 'Basic ' + Buffer.from(`${key.id}:${key.secret}`).toString('base64') };
  for (const u of users) {
    expect((await request.post('/v1.1/appusers', { data: u, headers: auth })).status()).toBe(201);
  }
  return { appId: app.app.id as string, auth };
}

// A browser page signed in as the owner, that records script errors and
// any dialog (which would mean typed text ran as script).
export async function ownerPage(browser: { newPage(): Promise<Page> }, errors: string[]) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', async (d) => {
    errors.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password').fill(owner.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/apps\//);
  return page;
}

// A customer's site on its own origin (http://localhost:<port>): any path
// under /shop is a page with the install snippet that `snippet()` returns.
export async function customerSite(port: number, snippet: () => string): Promise<http.Server> {
  const host = http.createServer((req, res) => {
    if ((req.url ?? '').startsWith('/shop')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body><h1>Shop</h1>${snippet()}</body></html>`);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((ok) => host.listen(port, '127.0.0.1', ok));
  return host;
}

// The messenger frame the loader added to `page`.
export async function widgetFrame(page: Page): Promise<Frame> {
  await expect.poll(() => page.frames().some((f) => f.url().includes('/widget/frame'))).toBe(true);
  return page.frames().find((f) => f.url().includes('/widget/frame'))!;
}
