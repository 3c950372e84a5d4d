import { test, expect, Browser, BrowserContext, Page } from '@playwright/test';
import { hydrated, ownerSession, seedApp } from '../tests/accounts';
import { twinsWritten } from './site';
import { Load, recordLoads } from '../tests/wire';

// The dashboard's weight for a visitor with an empty cache, in bytes on the
// wire as chromium received them (CDP `encodedDataLength`: headers and body
// as sent; chromium asks for brotli, which murmur sends), release build.
//
// The targets (issue 14): the first route, sign-in, at most 200 KB in all
// (page, script, WASM, style); any dashboard route at most 350 KB. The
// sign-in page is met by sending it without the WASM client (a plain form:
// ARCHITECTURE.md, "Pages without the client"), and every dashboard route
// is met since the pages' parts load when shown (ARCHITECTURE.md, "Parts of
// pages"; BENCHMARKS.md, "The dashboard's weight"). The test prints each
// route against its target and fails when a route is over. The checks are
// soft: every route is measured and printed, and the test fails at the end
// if any is over. KB is 1,000 bytes here (the stricter reading).
const TARGET_FIRST_ROUTE = 200_000;
const TARGET_ANY_ROUTE = 350_000;

// Opens `path` in a fresh context (nothing cached), waits until the page is
// hydrated and the network is quiet, and returns every response's bytes;
// then, when given, runs `after` on the page (with the loads so far).
async function coldVisit(
  browser: Browser,
  baseURL: string,
  path: string,
  cookies: Parameters<BrowserContext['addCookies']>[0] = [],
  after?: (page: Page, loads: Map<string, Load>) => Promise<void>,
) {
  const context = await browser.newContext({ baseURL });
  await context.addCookies(cookies);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const loads = await recordLoads(page, true);
  await page.goto(path);
  await hydrated(page);
  await page.waitForLoadState('networkidle');
  const all = [...loads.values()].filter((l) => l.url.startsWith('http'));
  const total = all.reduce((n, l) => n + l.bytes, 0);
  const url = page.url();
  if (after) await after(page, loads);
  await context.close();
  expect(errors, `script errors on ${path}`).toEqual([]);
  return { total, loads: all, url };
}

function report(path: string, v: { total: number; loads: Load[] }) {
  const lines = v.loads
    .sort((a, b) => b.bytes - a.bytes)
    .map((l) => `    ${String(l.bytes).padStart(8)} B  ${new URL(l.url).pathname}`);
  console.log(`${path}: ${v.total} B\n${lines.join('\n')}`);
}

test('the sign-in page and every dashboard route stay within their budgets', async ({ browser, request, baseURL }) => {
  test.setTimeout(180_000);
  // The server compresses the files in the background once it starts.
  await expect.poll(twinsWritten, { timeout: 120_000 }).toBe(true);
  // Data on the pages: an app with two users, one of them with a
  // conversation.
  const { appId, auth } = await seedApp(request, baseURL!, 'Budget shop', [
    { userId: 'budget-1', givenName: 'Ada', properties: { plan: 'pro' } },
    { userId: 'budget-2', givenName: 'Bo' },
  ]);
  expect(
    (await request.post('/v1.1/appusers/budget-1/messages', { data: { role: 'appUser', text: 'Hello' }, headers: auth })).status(),
  ).toBe(201);
  const headers = await ownerSession(request, baseURL!);
  const session = await (await request.post('/api/session', { headers })).json();
  const cookies = (await request.storageState()).cookies;

  // The first route, signed out.
  const login = await coldVisit(browser, baseURL!, '/login');
  report('/login', login);
  expect(login.url).toMatch(/\/login$/);
  // No script at all on the sign-in page, and its style sheet did come
  // over the wire (the measure measures).
  expect(login.loads.filter((l) => /\.(wasm|js)$/.test(new URL(l.url).pathname))).toEqual([]);
  expect(login.loads.some((l) => /\/pkg\/murmur\.[A-Za-z0-9_-]{22}\.css$/.test(l.url) && l.bytes > 1_000)).toBe(true);
  console.log(`/login: ${login.total} B; target ${TARGET_FIRST_ROUTE} B ${login.total <= TARGET_FIRST_ROUTE ? 'met' : 'NOT met'}`);
  expect.soft(login.total).toBeLessThanOrEqual(TARGET_FIRST_ROUTE);

  // The detail pages' addresses, as the lists link them; a saved whisper's
  // page and a sent message's page (the routes whose pages show a part
  // loaded when shown, `pages::PAGE_PARTS`), made as a teammate makes them.
  const app = `/apps/${appId}`;
  const owner = await browser.newContext({ baseURL });
  await owner.addCookies(cookies);
  const o = await owner.newPage();
  await o.goto(`${app}/inbox`);
  await hydrated(o);
  const conversation = await o.getByTestId('inbox-list').locator('a').first().getAttribute('href');
  expect(conversation).toMatch(new RegExp(`^/apps/${appId}/inbox/.+`));
  await o.goto(`${app}/whispers`);
  await hydrated(o);
  await o.getByRole('link', { name: 'Welcome', exact: true }).click();
  await hydrated(o);
  await o.getByRole('button', { name: 'Save and activate' }).click();
  await expect(o).toHaveURL(/whispers\/[0-9a-f]{24}$/);
  const savedWhisper = new URL(o.url()).pathname;
  await o.goto(`${app}/users`);
  await hydrated(o);
  await o.getByRole('checkbox', { name: 'Select Ada' }).check();
  await o.getByRole('link', { name: 'Message 1 user' }).click();
  await expect(o).toHaveURL(/\/messages\/new\?users=/);
  await o.getByLabel('Title').fill('Budget hello');
  await o.getByLabel('Text').fill('Hi {{ firstName || there }}!');
  await o.getByRole('button', { name: 'Send now' }).click();
  await expect(o).toHaveURL(/\/messages\/[0-9a-f]{24}$/);
  const sentMessage = new URL(o.url()).pathname;
  await owner.close();

  // Each route with the number of bundles it loads: its page's, and its
  // part's where the page shows one as it opens.
  const routes: [string, number][] = [
    [app, 1],
    [`${app}/whispers`, 1],
    [`${app}/whispers/new`, 1],
    [savedWhisper, 1],
    [`${app}/users`, 1],
    [`${app}/users/budget-1`, 1],
    [`${app}/messages`, 1],
    [`${app}/messages/new`, 2],
    [sentMessage, 2],
    [`${app}/inbox`, 1],
    [conversation!, 1],
    [`${app}/teammates/${session.me.id}`, 1],
    [`${app}/settings`, 1],
    [`${app}/audit`, 1],
    ['/account', 1],
    ['/new-app', 1],
  ];
  // On the saved whisper's page, once measured, a part loaded when the
  // teammate opens it: the "Why?" panel comes in one bundle of its own,
  // holding only what the editor's bundle did not bring
  // (`server::bundles`), and works.
  const openWhy = async (w: Page, loads: Map<string, Load>) => {
    const before = new Set(loads.keys());
    await w.getByTestId('why-open').click();
    await w.getByTestId('why-user').fill('budget-1');
    await w.getByRole('button', { name: 'Explain' }).click();
    await expect(w.getByTestId('why-answer')).toContainText('Ada');
    const opened = [...loads.entries()].filter(([id]) => !before.has(id)).map(([, l]) => l);
    const files = opened.map((l) => new URL(l.url).pathname).filter((p) => p.startsWith('/pkg/'));
    expect(files.length, files.join(', ')).toBe(1);
    expect(files[0]).toMatch(/^\/pkg\/bundled\/bundle_whisper_why_\d+\.[A-Za-z0-9_-]{22}\.wasm$/);
    const part = opened.find((l) => new URL(l.url).pathname === files[0])!;
    console.log(`the saved whisper's "Why?" panel, when opened: ${part.bytes} B`);
  };
  const totals: string[] = [];
  for (const [path, bundles] of routes) {
    const v = await coldVisit(browser, baseURL!, path, cookies, path === savedWhisper ? openWhy : undefined);
    report(path, v);
    // Signed in: the page itself, not a redirect to sign-in.
    expect(new URL(v.url).pathname, path).toBe(path);
    // Its lazy page's files came in one bundle (`server::bundles`), and
    // its part's in another: no chunk fetched alone.
    const pkg = v.loads.map((l) => new URL(l.url).pathname);
    expect(pkg.filter((p) => /\/(chunk|split)_[^/]*\.wasm$/.test(p)), path).toEqual([]);
    expect(pkg.filter((p) => p.startsWith('/pkg/bundled/bundle_')).length, path).toBe(bundles);
    totals.push(`${path}: ${v.total} B (target ${TARGET_ANY_ROUTE} B ${v.total <= TARGET_ANY_ROUTE ? 'met' : 'NOT met'})`);
    expect.soft(v.total, path).toBeLessThanOrEqual(TARGET_ANY_ROUTE);
  }
  console.log(`first route /login: ${login.total} B\n${totals.join('\n')}`);
});
