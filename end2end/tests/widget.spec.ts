import { test, expect, Frame, Page } from '@playwright/test';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { hydrated, ownerPage, ownerSession, widgetFrame, installSnippet } from './accounts';

// The end-user widget on a customer's page: a host page served by this test
// on another origin (localhost, not 127.0.0.1) with hostile CSS, the install
// snippet from Settings, a user identified with a JWT, and a whisper a
// marketer builds in the dashboard.
test.describe.configure({ mode: 'serial' });

const HOST_PORT = Number(process.env.E2E_HOST_PORT ?? 3108);
const hostOrigin = `http://localhost:${HOST_PORT}`;
let host: http.Server;
let appId = '';
let identitySecret = '';
let snippet = '';
let auth: Record<string, string> = {};
let marketer: Page;
let murmurURL = '';
const errors: string[] = [];

// Aggressive host styles: none of them may change the widget.
const HOSTILE_CSS = `
  * { font-family: "Comic Sans MS", cursive !important; color: #f0f !important; box-sizing: content-box !important; }
  iframe { display: none !important; width: 1px !important; height: 1px !important; opacity: 0 !important; }
  div, button, span, section { background: lime !important; padding: 40px !important; border: 9px dashed red !important; }
  body > * { position: static !important; transform: scale(0.3) !important; }
  murmur-widget, [class*="murmur"] { display: none !important; visibility: hidden !important; }
  h1 { color: rgb(1, 2, 3) !important; }
`;

function b64url(s: string | Buffer) {
  return Buffer.from(s).toString('base64url');
}

function jwt(userId: string, secret: string, expIn = 3600) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ scope: 'appUser', userId, exp: Math.floor(Date.now() / 1000) + expIn }));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// The customer's page: their styles, the snippet from Settings with the init
// line carrying the user's identity, and a log of the widget's events.
function hostPage(user: string, token: string) {
  const init = `Murmur.init(${JSON.stringify({ appId, userId: user, jwt: token })});`;
  const withIdentity = snippet.replace(/Murmur\.init\(\{[^}]*\}\);/, init);
  expect(withIdentity).toContain(token);
  return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title><style>${HOSTILE_CSS}</style></head>
<body><h1 id="title">Shop</h1><p>Products</p>
<script>window.widgetEvents = [];</script>
${withIdentity}
<script>
  ['ready', 'message:received', 'widget:opened', 'widget:closed', 'error'].forEach(function (n) {
    Murmur.on(n, function (d) { window.widgetEvents.push(n + (d && d.code ? ':' + d.code : '')); });
  });
</script>
</body></html>`;
}

test.beforeAll(async ({ browser, request, baseURL }) => {
  murmurURL = baseURL!;
  const headers = await ownerSession(request, baseURL!);
  const app = await (await request.post('/api/apps/create', { form: { 'input[name]': 'Widget shop' }, headers })).json();
  appId = app.app.id;
  identitySecret = app.identity_secret;
  const key = await (
    await request.post('/api/apps/keys/create', { form: { 'input[app_id]': appId, 'input[name]': 'e2e' }, headers })
  ).json();
  auth = { Authorization: 'Basic ' + Buffer.from(`${key.id}:${key.secret}`).toString('base64') };
  for (const u of [
    { userId: 'ada', givenName: 'Ada <img src=x onerror=alert(1)>', properties: { plan: 'gold' } },
    { userId: 'grace', givenName: 'Grace', properties: { plan: 'gold' } },
  ]) {
    expect((await request.post('/v1.1/appusers', { data: u, headers: auth })).status()).toBe(201);
  }
  host = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', hostOrigin);
    if (url.pathname === '/shop') {
      const user = url.searchParams.get('user') ?? 'ada';
      const secret = url.searchParams.get('forged') ? 'not-the-secret' : identitySecret;
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(hostPage(user, jwt(user, secret)));
    } else if (url.pathname === '/evil') {
      // Another origin (127.0.0.1, not localhost) embedding murmur's frame
      // directly, claiming to be the shop, and trying to drive it.
      const hash = encodeURIComponent(JSON.stringify({ app: appId, origin: hostOrigin }));
      const init = JSON.stringify({ t: 'init', o: { appId, userId: 'ada', jwt: jwt('ada', identitySecret) } });
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>Evil</title><script>window.got = [];
        addEventListener('message', function (e) { window.got.push(e.data); });</script>
        <iframe id="f" src="${murmurURL}/widget/frame#${hash}"></iframe>
        <script>document.getElementById('f').onload = function () {
          var w = document.getElementById('f').contentWindow;
          w.postMessage(${init}, '*');
          w.postMessage({ t: 'track', name: 'evil-event' }, '*');
          window.posted = true;
        };</script>`);
    } else if (url.pathname === '/checkout') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!doctype html><title>Checkout</title><h1>Checkout</h1>');
    } else if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((ok) => host.listen(HOST_PORT, '127.0.0.1', ok));
  marketer = await ownerPage(browser, errors);
});

test.afterAll(async () => {
  host?.close();
  expect(errors).toEqual([]);
});

async function shopper(browser: { newPage(): Promise<Page> }, user: string, extra = '') {
  const page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(`host page: ${e.message}`));
  page.on('dialog', async (d) => {
    errors.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });
  await page.goto(`${hostOrigin}/shop?user=${user}${extra}`);
  return page;
}

async function events(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as any).widgetEvents);
}

async function whisperRow() {
  await marketer.goto(`/apps/${appId}/whispers`);
  await hydrated(marketer);
  return marketer.getByRole('row', { name: /Cart nudge/ });
}

test('settings show the snippet; a marketer builds the cart whisper', async () => {
  snippet = await installSnippet(marketer, appId);
  expect(snippet).toContain('/widget/loader.js');
  await expect(marketer.getByTestId('identity-status')).toContainText('Required');

  await marketer.goto(`/apps/${appId}/whispers/new`);
  await hydrated(marketer);
  await marketer.getByLabel('Name', { exact: true }).fill('Cart nudge');
  await marketer.getByLabel('Users who match conditions').check();
  await marketer.getByRole('button', { name: 'Add condition' }).click();
  const cond = marketer.getByRole('group', { name: 'Condition 1' });
  await cond.getByLabel('Property').selectOption('plan');
  await cond.getByLabel('Value').fill('gold');
  await cond.getByLabel('Value').press('Tab');
  await expect(marketer.getByRole('status').filter({ hasText: 'match now' })).toHaveText('2 users match now');
  await marketer.getByLabel('Send it').selectOption('event');
  await marketer.getByLabel('Event name').fill('item-in-cart');
  await marketer.getByLabel('Text', { exact: true }).fill('{{ firstName || there }}, your **cart** misses you.');
  await marketer.getByRole('button', { name: 'Add button' }).click();
  const b1 = marketer.getByRole('group', { name: 'Button 1' });
  await b1.getByLabel('Label').fill('Checkout');
  await b1.getByLabel('Label').press('Tab');
  await b1.getByLabel('Link URL').fill(`${hostOrigin}/checkout`);
  await b1.getByLabel('Link URL').press('Tab');
  await marketer.getByRole('button', { name: 'Save and activate' }).click();
  await expect(marketer).toHaveURL(/whispers\/[0-9a-f]{24}$/);
  await hydrated(marketer);
  await expect(marketer.locator('.status')).toHaveText('active');
});

test('track() on the host page shows the personalised card, once; clicks, replies and stats', async ({ browser, request }) => {
  const page = await shopper(browser, 'ada');
  const frame = await widgetFrame(page);
  await expect.poll(() => events(page)).toContain('ready');
  const titleColor = await page.locator('#title').evaluate((e) => getComputedStyle(e).color);
  expect(titleColor).toBe('rgb(1, 2, 3)'); // the host's own styles are untouched

  await page.evaluate(() => (window as any).Murmur.track('item-in-cart'));
  const card = frame.locator('.card');
  await expect(card).toHaveCount(1);
  await expect(card.locator('.body')).toHaveText('Ada <img src=x onerror=alert(1)>, your cart misses you.');
  await expect(card.locator('.body strong')).toHaveText('cart');
  expect(await frame.locator('.card img').count()).toBe(0);
  await expect(card.locator('.sender')).toHaveText('Olive Owner');
  await expect.poll(() => events(page)).toContain('message:received');
  // The hostile CSS did not hide or shrink the frame, nor restyle its content.
  const box = await (await frame.frameElement()).boundingBox();
  expect(box && box.width >= 300 && box.height >= 150).toBeTruthy();
  expect(await card.evaluate((e) => getComputedStyle(e).backgroundColor)).toBe('rgb(255, 255, 255)');
  await expect(frame.locator('#badge')).toHaveText('1');

  // The link button opens the link.
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    card.getByRole('link', { name: 'Checkout' }).click(),
  ]);
  await expect(popup).toHaveURL(`${hostOrigin}/checkout`);
  await popup.close();

  // The card opens the messenger; the user replies.
  await card.locator('.body').click();
  await expect(frame.getByRole('dialog', { name: 'Conversation' })).toBeVisible();
  await expect(frame.locator('#badge')).toBeHidden();
  await expect.poll(() => events(page)).toContain('widget:opened');
  const thread = frame.locator('#thread');
  await expect(thread).toContainText('your cart misses you.');
  await frame.getByLabel('Your reply').fill('Do you ship <b>to Mars</b>?');
  await frame.getByLabel('Your reply').press('Enter');
  await expect(thread.locator('.item.mine')).toHaveText('Do you ship <b>to Mars</b>?');

  // Tracking again shows nothing new.
  await page.evaluate(() => (window as any).Murmur.track('item-in-cart'));
  await page.waitForTimeout(1000);
  await expect(thread.locator('.item')).toHaveCount(2);
  await expect(frame.locator('.card')).toHaveCount(0);

  // The reply is in the conversation, for the REST API too.
  const msgs = await (await request.get('/v1.1/appusers/ada/messages', { headers: auth })).json();
  expect(msgs.messages.map((m: any) => m.text)).toEqual(['Do you ship <b>to Mars</b>?']);

  // A team message arrives live; closed, the launcher counts it.
  await frame.getByRole('button', { name: 'Close' }).click();
  await expect(frame.getByRole('dialog', { name: 'Conversation' })).toBeHidden();
  const r = await request.post('/v1.1/appusers/ada/messages', {
    data: { role: 'appMaker', type: 'text', text: 'Yes! <script>alert(3)</script>', name: 'Olive' },
    headers: auth,
  });
  expect(r.status()).toBe(201);
  await expect(frame.locator('#badge')).toHaveText('1');
  await page.evaluate(() => (window as any).Murmur.open());
  await expect(thread.locator('.item.theirs').last()).toHaveText(/Yes! <script>alert\(3\)<\/script>/);
  await page.close();

  // The dashboard shows the conversation as text.
  await marketer.goto(`/apps/${appId}/users/ada`);
  await hydrated(marketer);
  const conv = marketer.locator('.conversation');
  await expect(conv).toContainText('Do you ship <b>to Mars</b>?');
  await expect(conv).toContainText('Yes! <script>alert(3)</script>');
  expect(await conv.locator('b, script').count()).toBe(0);

  const row = await whisperRow();
  await expect(row).toContainText('active');
  await expect(row.getByRole('cell', { name: '1', exact: true })).toHaveCount(4); // exposed, seen, clicked, replied
});

test('paused: another user gets nothing; resumed: they get it', async ({ browser }) => {
  await (await whisperRow()).getByRole('button', { name: 'Pause Cart nudge' }).click();
  await expect(marketer.getByRole('row', { name: /Cart nudge/ })).toContainText('paused');

  const page = await shopper(browser, 'grace');
  const frame = await widgetFrame(page);
  await expect.poll(() => events(page)).toContain('ready');
  await page.evaluate(() => (window as any).Murmur.track('item-in-cart'));
  await page.waitForTimeout(1000);
  await expect(frame.locator('.card')).toHaveCount(0);

  await marketer.getByRole('button', { name: 'Resume Cart nudge' }).click();
  await expect(marketer.getByRole('row', { name: /Cart nudge/ })).toContainText('active');
  await page.evaluate(() => (window as any).Murmur.track('item-in-cart'));
  await expect(frame.locator('.card .body')).toHaveText('Grace, your cart misses you.');
  await page.close();
});

test('on a 360 px phone the messenger opens full screen', async ({ browser }) => {
  const page = await browser.newPage({ viewport: { width: 360, height: 640 } });
  page.on('pageerror', (e) => errors.push(`host page: ${e.message}`));
  await page.goto(`${hostOrigin}/shop?user=grace`);
  const frame = await widgetFrame(page);
  await expect.poll(() => events(page)).toContain('ready');
  const launcher = await (await frame.frameElement()).boundingBox();
  expect(launcher && launcher.width <= 96 && launcher.height <= 96).toBeTruthy(); // closed: the launcher only
  await frame.getByRole('button', { name: /Open messages/ }).click();
  await expect(frame.getByRole('dialog', { name: 'Conversation' })).toBeVisible();
  await expect.poll(async () => (await (await frame.frameElement()).boundingBox())?.width).toBe(360);
  const box = (await (await frame.frameElement()).boundingBox())!;
  expect(box.height).toBe(640);
  await expect(frame.getByLabel('Your reply')).toBeVisible();
  await expect(frame.locator('#thread')).toContainText('Grace, your cart misses you.');
  await frame.getByRole('button', { name: 'Close' }).click();
  await expect.poll(async () => (await (await frame.frameElement()).boundingBox())?.width).toBe(96);
  await page.close();
});

test('a forged identity token is refused', async ({ browser }) => {
  const page = await shopper(browser, 'ada', '&forged=1');
  const frame = await widgetFrame(page);
  await expect.poll(() => events(page)).toContain('error:invalid_jwt');
  expect(await events(page)).not.toContain('ready');
  await expect(frame.locator('.card')).toHaveCount(0);
  await page.close();
});

test('a page of another origin cannot drive the messenger frame', async ({ browser, request, baseURL }) => {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${HOST_PORT}/evil`);
  await expect.poll(() => page.evaluate(() => (window as any).posted)).toBe(true);
  await page.waitForTimeout(1500);
  expect(await page.evaluate(() => (window as any).got)).toEqual([]);
  const headers = await ownerSession(request, baseURL!);
  const catalog = await (await request.post('/api/users/catalog', { form: { 'input[app_id]': appId }, headers })).json();
  expect(JSON.stringify(catalog.events)).not.toContain('evil-event');
  expect(JSON.stringify(catalog.events)).toContain('item-in-cart');
  await page.close();
});

test('the loader is at most 5 KB with brotli, as served', async ({ baseURL }) => {
  const body = await new Promise<{ encoding?: string; size: number }>((ok, fail) => {
    http
      .get(`${baseURL}/widget/loader.js`, { headers: { 'Accept-Encoding': 'br' } }, (res) => {
        let size = 0;
        res.on('data', (c) => (size += c.length));
        res.on('end', () => ok({ encoding: res.headers['content-encoding'], size }));
      })
      .on('error', fail);
  });
  expect(body.encoding).toBe('br');
  expect(body.size).toBeGreaterThan(100);
  expect(body.size).toBeLessThanOrEqual(5 * 1024);
});
