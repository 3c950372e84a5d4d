import { test, expect, Browser, Page } from '@playwright/test';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import { hydrated, ownerPage, ownerSession, installSnippet } from './accounts';

// Manual messages as a support team sends them: three users selected in the
// users list get an in-app chat live in their widgets; an email to a
// segment arrives in an SMTP sink (started here) with a working
// unsubscribe link; a message is stopped; the list finds a message by part
// of its sender's name.
test.describe.configure({ mode: 'serial' });

const HOST_PORT = Number(process.env.E2E_MESSAGES_PORT ?? 3111);
const hostOrigin = `http://localhost:${HOST_PORT}`;
let host: http.Server;
let smtp: net.Server;
let smtpPort = 0;
const mails: string[] = [];
let appId = '';
let identitySecret = '';
let snippet = '';
let auth: Record<string, string> = {};
let owner: Page;
const errors: string[] = [];

function jwt(userId: string) {
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(JSON.stringify({ scope: 'appUser', userId, exp: Math.floor(Date.now() / 1000) + 3600 }));
  const sig = crypto.createHmac('sha256', identitySecret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// A minimal SMTP server that keeps every message it is given.
function startSmtpSink(): Promise<number> {
  smtp = net.createServer((socket) => {
    let data = false;
    let buf = '';
    let message = '';
    socket.write('220 sink ESMTP\r\n');
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (data) {
          if (line === '.') {
            data = false;
            mails.push(message);
            message = '';
            socket.write('250 queued\r\n');
          } else {
            message += (line.startsWith('..') ? line.slice(1) : line) + '\r\n';
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-sink\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') socket.write('250 sink\r\n');
        else if (verb === 'DATA') {
          data = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          socket.write('221 bye\r\n');
          socket.end();
        } else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((ok) => smtp.listen(0, '127.0.0.1', () => ok((smtp.address() as net.AddressInfo).port)));
}

test.beforeAll(async ({ browser, request, baseURL }) => {
  const headers = await ownerSession(request, baseURL!);
  const app = await (await request.post('/api/apps/create', { form: { 'input[name]': 'Messages shop' }, headers })).json();
  appId = app.app.id;
  identitySecret = app.identity_secret;
  const key = await (
    await request.post('/api/apps/keys/create', { form: { 'input[app_id]': appId, 'input[name]': 'e2e' }, headers })
  ).json();
  auth = { Authorization: 'Basic ' + Buffer.from(`${key.id}:${key.secret}`).toString('base64') };
  for (const u of [
    { userId: 'ann', givenName: 'Ann', properties: { plan: 'gold' } },
    { userId: 'bob', givenName: 'Bob', properties: { plan: 'gold' } },
    { userId: 'cyd', givenName: 'Cyd <b>x</b>', properties: { plan: 'free' } },
    { userId: 'dee', givenName: 'Dee', email: 'dee@example.com', properties: { plan: 'gold' } },
    { userId: 'eve', givenName: 'Eve', email: 'eve@example.com', properties: { plan: 'free' } },
  ]) {
    expect((await request.post('/v1.1/appusers', { data: u, headers: auth })).status()).toBe(201);
  }
  smtpPort = await startSmtpSink();
  host = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', hostOrigin);
    if (url.pathname === '/shop') {
      const user = url.searchParams.get('user') ?? 'ann';
      const init = `Murmur.init(${JSON.stringify({ appId, userId: user, jwt: jwt(user) })});`;
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body><h1>Shop</h1>${snippet.replace(/Murmur\.init\(\{[^}]*\}\);/, init)}</body></html>`);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((ok) => host.listen(HOST_PORT, '127.0.0.1', ok));
  owner = await ownerPage(browser, errors);
  snippet = await installSnippet(owner, appId);
});

test.afterAll(async () => {
  host?.close();
  smtp?.close();
  expect(errors).toEqual([]);
});

// The widget on the customer's page, as `user`, in a browser context of its own.
async function widgetOf(browser: Browser, user: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`host page (${user}): ${e.message}`));
  await page.goto(`${hostOrigin}/shop?user=${user}`);
  await expect.poll(() => page.frames().some((f) => f.url().includes('/widget/frame'))).toBe(true);
  const frame = page.frames().find((f) => f.url().includes('/widget/frame'))!;
  await expect.poll(() => page.evaluate(() => (window as any).Murmur !== undefined)).toBe(true);
  return { context, page, frame };
}

test('three users selected in the users list get an in-app chat live in their widgets', async ({ browser }) => {
  const widgets = [];
  for (const u of ['ann', 'bob', 'cyd']) widgets.push(await widgetOf(browser, u));
  // Let each widget's socket be welcomed before the send.
  for (const w of widgets) await expect(w.frame.locator('body')).toBeAttached();

  await owner.goto(`/apps/${appId}/users`);
  await hydrated(owner);
  for (const name of ['Ann', 'Bob', 'Cyd <b>x</b>']) {
    await owner.getByRole('checkbox', { name: `Select ${name}` }).check();
  }
  await owner.getByRole('link', { name: 'Message 3 users' }).click();
  await expect(owner).toHaveURL(/\/messages\/new\?users=/);
  await expect(owner.getByRole('list', { name: 'Selected users' }).locator('li')).toHaveCount(3);
  await owner.getByLabel('Title').fill('Spring hello');
  await owner.getByLabel('Text').fill('Hi {{ firstName || there }}, **new** things!');
  await owner.getByRole('button', { name: 'Send now' }).click();
  await expect(owner).toHaveURL(/\/messages\/[0-9a-f]{24}$/);
  await expect(owner.getByTestId('message-stats')).toContainText('3 recipients');

  const names = ['Ann', 'Bob', 'Cyd <b>x</b>'];
  for (const [i, w] of widgets.entries()) {
    const card = w.frame.locator('.card .body');
    await expect(card).toHaveText(`Hi ${names[i]}, new things!`);
    await expect(card.locator('strong')).toHaveText('new');
  }
  expect(await widgets[2].frame.locator('.card .body b').count()).toBe(0);
  await expect(owner.getByTestId('message-stats')).toContainText('3 sent');
  for (const w of widgets) await w.context.close();
});

test('an email to a segment arrives over SMTP with a working unsubscribe link', async ({ request }) => {
  await owner.goto(`/apps/${appId}/settings`);
  await hydrated(owner);
  const panel = owner.getByRole('region', { name: 'Email (SMTP)' });
  await panel.getByLabel('Server host').fill('127.0.0.1');
  await panel.getByLabel('Port').fill(String(smtpPort));
  await panel.getByLabel('Security').selectOption('none');
  await panel.getByLabel('From address').fill('team@example.com');
  await panel.getByRole('button', { name: 'Save email settings' }).click();
  await expect(panel.getByTestId('smtp-status')).toContainText('127.0.0.1');

  await owner.goto(`/apps/${appId}/messages/new`);
  await hydrated(owner);
  await owner.getByLabel('Kind').selectOption('email');
  await owner.getByLabel('Subject').fill('Gold news');
  await owner.getByRole('button', { name: 'Add condition' }).click();
  const row = owner.getByRole('group', { name: 'Condition 1' });
  await row.getByLabel('Property').selectOption('plan');
  await row.getByLabel('Operator').selectOption('is');
  await row.getByLabel('Value').fill('gold');
  await row.getByLabel('Value').press('Tab');
  await expect(owner.getByText('3 users match now')).toBeVisible();
  await owner.getByLabel('Text').fill('Dear {{ firstName || customer }}, see our [offers](https://shop.example/offers).');
  await owner.getByRole('button', { name: 'Send now' }).click();
  await expect(owner).toHaveURL(/\/messages\/[0-9a-f]{24}$/);
  // Only Dee is gold with an address.
  await expect(owner.getByTestId('message-stats')).toContainText('1 recipient ·');
  await expect.poll(() => mails.length, { timeout: 20_000 }).toBe(1);
  const mail = mails[0];
  expect(mail).toMatch(/^Subject: Gold news/m);
  expect(mail).toMatch(/^To: .*dee@example\.com/m);
  expect(mail).toContain('Dear Dee');
  const unfolded = mail.replace(/\r\n[ \t]+/g, ' ');
  const link = /^List-Unsubscribe: <([^>]+)>/m.exec(unfolded)?.[1];
  expect(link).toBeTruthy();

  // The link works: its page asks, the button confirms, the property is set.
  const page = await owner.context().browser()!.newPage();
  await page.goto(link!);
  await page.getByRole('button', { name: /unsubscribe/i }).click();
  await expect(page.getByText(/unsubscribed/i).first()).toBeVisible();
  await page.close();
  const dee = await (await request.get('/v1.1/appusers/dee', { headers: auth })).json();
  expect(dee.appUser.properties.unsubscribedFromEmails).toBe(true);
  await expect(owner.getByTestId('message-stats')).toContainText('1 sent');
});

test('a message is stopped for good, and found by part of its sender name', async () => {
  await owner.goto(`/apps/${appId}/messages/new`);
  await hydrated(owner);
  await owner.getByLabel('Title').fill('Free plan promo');
  await owner.getByRole('button', { name: 'Add condition' }).click();
  const row = owner.getByRole('group', { name: 'Condition 1' });
  await row.getByLabel('Property').selectOption('plan');
  await row.getByLabel('Operator').selectOption('is');
  await row.getByLabel('Value').fill('free');
  await row.getByLabel('Value').press('Tab');
  await owner.getByLabel('Text').fill('Upgrade today!');
  await owner.getByRole('button', { name: 'Send now' }).click();
  await expect(owner).toHaveURL(/\/messages\/[0-9a-f]{24}$/);
  // Nobody on the free plan is online: both deliveries wait.
  await expect(owner.getByTestId('message-stats')).toContainText('2 waiting for their next visit');
  await owner.getByRole('button', { name: 'Stop', exact: true }).click();
  await owner.getByRole('button', { name: 'Stop for good' }).click();
  await expect(owner.getByTestId('message-state')).toHaveText('stopped');
  await expect(owner.getByTestId('message-stats')).toContainText('2 cancelled by the stop');
  await expect(owner.getByRole('button', { name: 'Stop', exact: true })).toHaveCount(0);

  await owner.goto(`/apps/${appId}/messages?tab=stopped`);
  await hydrated(owner);
  await expect(owner.getByRole('link', { name: 'Free plan promo' })).toBeVisible();
  await owner.goto(`/apps/${appId}/messages`);
  await hydrated(owner);
  await owner.getByLabel('Search by title or sender').fill('live O');
  await expect(owner.getByRole('link', { name: 'Spring hello' })).toBeVisible();
  await expect(owner.getByRole('link', { name: 'Gold news' })).toBeVisible();
  await owner.getByLabel('Search by title or sender').fill('nobody by this name');
  await expect(owner.getByText('No messages here.')).toBeVisible();
});
