import { test, expect, Browser, Page, APIRequestContext, request as newRequest } from '@playwright/test';
import * as http from 'node:http';
import * as crypto from 'node:crypto';
import { hydrated, ownerPage, ownerSession, seedApp } from './accounts';

// Web Push permission: a customer's page (its own origin, serving murmur's
// service worker file) with the widget. The browser is asked for permission
// only right after the user has sent their first message, once per device,
// and never again after a refusal. Headless chromium has no push service,
// so PushManager.subscribe is replaced in the page by one that returns a
// well-formed subscription (what a browser would hand over); everything
// else — the permission prompt's timing, the service worker registration,
// the subscription reaching murmur over the widget's socket — is real.
test.describe.configure({ mode: 'serial' });

const HOST_PORT = Number(process.env.E2E_PUSH_HOST_PORT ?? 3110);
const hostOrigin = `http://localhost:${HOST_PORT}`;
let host: http.Server;
let appId = '';
let murmurURL = '';
let swFile = '';
let headers: Record<string, string> = {};
let api: APIRequestContext; // signed in as the owner

// A browser's subscription keys: a P-256 public point and a 16-byte secret.
function fakeKeys() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  return { p256dh: ecdh.getPublicKey().toString('base64url'), auth: crypto.randomBytes(16).toString('base64url') };
}

// An anonymous visitor (identity verification is on; a visitor needs none).
function shopPage() {
  const init = JSON.stringify({ appId, serviceWorker: '/murmur-sw.js' });
  return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Shop</h1>
<script src="${murmurURL}/widget/loader.js"></script>
<script>Murmur.init(${init});</script>
</body></html>`;
}

// In the page before any script: count permission prompts (kept across
// reloads in sessionStorage) and answer them with `answer`; subscriptions
// come from a stub that returns fixed, valid keys.
function stubs(answer: 'granted' | 'denied', keys: { p256dh: string; auth: string }, endpoint: string) {
  return `(() => {
    let state = sessionStorage.getItem('perm') || 'default';
    Object.defineProperty(Notification, 'permission', { get: () => state, configurable: true });
    Notification.requestPermission = function () {
      sessionStorage.setItem('asked', String(Number(sessionStorage.getItem('asked') || 0) + 1));
      state = ${JSON.stringify(answer)};
      sessionStorage.setItem('perm', state);
      return Promise.resolve(state);
    };
    const sub = { endpoint: ${JSON.stringify(endpoint)}, options: {}, keys: ${JSON.stringify(keys)},
      toJSON() { return { endpoint: this.endpoint, keys: this.keys }; }, unsubscribe() { return Promise.resolve(true); } };
    PushManager.prototype.getSubscription = function () { return Promise.resolve(null); };
    PushManager.prototype.subscribe = function (o) {
      sub.options = o;
      sessionStorage.setItem('subscribed', '1');
      return Promise.resolve(sub);
    };
  })();`;
}

async function shopper(browser: Browser, answer: 'granted' | 'denied', endpoint: string) {
  const context = await browser.newContext();
  await context.addInitScript({ content: stubs(answer, fakeKeys(), endpoint) });
  const page = await context.newPage();
  return page;
}

async function asked(page: Page) {
  return page.evaluate(() => Number(sessionStorage.getItem('asked') || 0));
}

async function subscriptions() {
  const r = await api.post('/api/apps/push', { form: { 'input[app_id]': appId }, headers });
  expect(r.status()).toBe(200);
  return (await r.json()).subscriptions as number;
}

async function widget(page: Page) {
  await expect.poll(() => page.frames().some((f) => f.url().includes('/widget/frame'))).toBe(true);
  return page.frames().find((f) => f.url().includes('/widget/frame'))!;
}

async function say(page: Page, text: string) {
  const frame = await widget(page);
  if (!(await frame.locator('#text').isVisible())) await frame.locator('#launcher').click();
  await frame.locator('#text').fill(text);
  await frame.locator('#text').press('Enter');
  await expect(frame.locator('#thread li.mine').filter({ hasText: text }).first()).toBeVisible();
}

test.beforeAll(async ({ baseURL }) => {
  murmurURL = baseURL!;
  api = await newRequest.newContext({ baseURL });
  const request = api;
  headers = await ownerSession(request, baseURL!);
  ({ appId } = await seedApp(request, baseURL!, 'Push shop', []));
  expect((await request.post('/api/apps/push/keys', { form: { 'input[app_id]': appId }, headers })).status()).toBe(200);
  const on = await request.post('/api/apps/push/enabled', { form: { 'input[app_id]': appId, 'input[enabled]': 'true' }, headers });
  expect(on.status()).toBe(200);
  swFile = await (await request.get('/widget/push-sw.js')).text();
  expect(swFile).toContain('showNotification');
  host = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', hostOrigin);
    if (url.pathname === '/shop') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(shopPage());
    } else if (url.pathname === '/murmur-sw.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(swFile);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((ok) => host.listen(HOST_PORT, '127.0.0.1', ok));
});

test.afterAll(async () => {
  host?.close();
  await api?.dispose();
});

test('the owner makes push keys and turns push on in Settings; the worker file is offered', async ({ browser }) => {
  const errors: string[] = [];
  const { appId: other } = await seedApp(api, murmurURL, 'Push settings shop', []);
  const owner = await ownerPage(browser, errors);
  await owner.goto(`/apps/${other}/settings`);
  await hydrated(owner);
  const panel = owner.getByRole('region', { name: 'Push notifications' });
  await expect(panel.getByTestId('push-status')).toHaveText('Off: no push keys yet.');
  await expect(panel.getByRole('button', { name: 'Turn push on' })).toBeDisabled();
  await panel.getByRole('button', { name: 'Generate push keys' }).click();
  await expect(panel.getByTestId('push-status')).toHaveText('Off.');
  await expect(panel.getByTestId('push-key')).toHaveText(/^[A-Za-z0-9_-]{87}$/);
  await panel.getByRole('button', { name: 'Turn push on' }).click();
  await expect(panel.getByTestId('push-status')).toHaveText('On: 0 subscribed browsers.');
  await expect(panel.getByLabel('Service worker')).toContainText('notificationclick');
  expect(errors).toEqual([]);
  await owner.context().close();
});

test('permission is asked only after the first message, once; the subscription reaches murmur', async ({ browser }) => {
  const page = await shopper(browser, 'granted', 'https://push.example.com/send/one');
  await page.goto(`${hostOrigin}/shop`);
  const frame = await widget(page);
  await frame.locator('#launcher').click();
  await expect(frame.locator('#text')).toBeVisible();
  // Open, connected, and nothing asked yet.
  expect(await asked(page)).toBe(0);
  expect(await subscriptions()).toBe(0);

  await say(page, 'Hello, is anyone there?');
  await expect.poll(() => asked(page)).toBe(1);
  await expect.poll(() => subscriptions()).toBe(1);
  // Subscribed with the app's public key, through the customer's worker.
  const key = await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r?.active?.scriptURL ?? r?.installing?.scriptURL ?? r?.waiting?.scriptURL));
  expect(key).toBe(`${hostOrigin}/murmur-sw.js`);

  await say(page, 'Second message');
  await page.reload();
  await say(page, 'After a reload');
  expect(await asked(page)).toBe(1);

  // A notification's click lands on the page with a mark: the messenger opens.
  await page.goto(`${hostOrigin}/shop#murmur-open=0123456789abcdef01234567`);
  await expect((await widget(page)).getByRole('dialog', { name: 'Conversation' })).toBeVisible();
  expect(await asked(page)).toBe(1);
  await page.context().close();
});

test('after a refusal the browser is never asked again, and nothing is subscribed', async ({ browser }) => {
  const before = await subscriptions();
  const page = await shopper(browser, 'denied', 'https://push.example.com/send/two');
  await page.goto(`${hostOrigin}/shop`);
  await say(page, 'First words');
  await expect.poll(() => asked(page)).toBe(1);
  await say(page, 'More words');
  await page.reload();
  await say(page, 'Even more');
  expect(await asked(page)).toBe(1);
  expect(await page.evaluate(() => sessionStorage.getItem('subscribed'))).toBeNull();
  expect(await subscriptions()).toBe(before);
  await page.context().close();
});
