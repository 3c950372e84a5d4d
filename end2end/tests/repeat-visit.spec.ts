import { test, expect } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hydrated, ownerSession } from './accounts';
import { Load, recordLoads } from './wire';

// The dashboard's files (WASM, JS glue, style sheet) have content-hashed
// names and are sent `Cache-Control: immutable`, so a repeat visit asks for
// none of them again: only the page itself crosses the wire. Bytes are what
// chromium received from the network (CDP `encodedDataLength`: headers and
// body as sent, compressed), nothing for what came from its cache.
//
// A browser profile of its own, with a disk cache like a returning visitor's:
// the default (incognito) context caches in memory only, and does not keep
// a debug build's WASM (17 MB when sent before its brotli twin is written).
const LIMIT = 5 * 1024;

test('a repeat visit to a dashboard page downloads less than 5 KB', async ({ playwright, request, baseURL }, testInfo) => {
  // A signed-in page (the sign-in page itself loads no WASM: ARCHITECTURE.md,
  // "Pages without the client"): the teammate's own account page.
  await ownerSession(request, baseURL!);
  const cookies = (await request.storageState()).cookies;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'murmur-e2e-profile-'));
  const context = await playwright.chromium.launchPersistentContext(profile, {
    ...testInfo.project.use.launchOptions,
    baseURL,
  });
  await context.addCookies(cookies);
  const page = context.pages()[0] ?? (await context.newPage());

  const loads = await recordLoads(page);

  async function visit(): Promise<{ total: number; loads: Load[] }> {
    loads.clear();
    await page.goto('/account');
    await expect(page).toHaveURL(/\/account$/);
    await hydrated(page);
    await page.waitForLoadState('networkidle');
    const all = [...loads.values()].filter((l) => l.url.startsWith('http'));
    return { total: all.reduce((n, l) => n + l.bytes, 0), loads: all };
  }
  const show = (v: { loads: Load[] }) =>
    v.loads.map((l) => `  ${l.bytes} B ${l.fromCache ? '(cache) ' : ''}${new URL(l.url).pathname}`).join('\n');

  const first = await visit();
  console.log(`first visit: ${first.total} bytes\n${show(first)}`);
  const pkg = first.loads.filter((l) => new URL(l.url).pathname.startsWith('/pkg/'));
  // The script, the WASM and the style sheet by their hashed names (and,
  // from a split build, the chunk loader and any chunk the page needs).
  const names = pkg.map((l) => new URL(l.url).pathname);
  for (const ext of ['css', 'js', 'wasm']) {
    expect(names, ext).toContainEqual(expect.stringMatching(new RegExp(`^/pkg/murmur\\.[A-Za-z0-9_-]{22}\\.${ext}$`)));
  }
  for (const name of names) expect(name).toMatch(/\.[A-Za-z0-9_-]{22}\.(css|js|wasm)$/);
  // The files came over the network the first time (the measure measures).
  expect(first.total).toBeGreaterThan(20 * 1024);

  await page.goto('about:blank');
  const second = await visit();
  console.log(`repeat visit: ${second.total} bytes\n${show(second)}`);
  // No request for the files reached murmur: each came from the cache.
  // (Revalidating them, three 304s, would still total under 5 KB.)
  for (const l of second.loads.filter((l) => new URL(l.url).pathname.startsWith('/pkg/'))) {
    expect(l.bytes, l.url).toBe(0);
  }
  expect(second.total).toBeLessThan(LIMIT);
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
});
