import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import base, { murmurServer } from './playwright.config';
import { hashFile, site } from './budget/site';

// The dashboard's weight on the wire, measured on the release build of its
// files (`scripts/test` builds them with `cargo leptos build --release
// --split --frontend-only` into target/site-release, and writes their hash
// file to target/release/hash.txt). The server binary only renders the pages
// and sends these files as they are, compressed once at start: the debug
// binary the other tests use serves them here, so the test needs no second
// (release) server build.
const port = Number(process.env.BUDGET_PORT ?? 3108);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'murmur-budget-'));

export default defineConfig({
  ...base,
  testDir: './budget',
  use: { ...base.use, baseURL: `http://127.0.0.1:${port}` },
  webServer: murmurServer(port, dataDir, { LEPTOS_SITE_ROOT: site, LEPTOS_HASH_FILE: hashFile }),
});
