import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// murmur is started fresh for every run: its own data directory (so the
// first-run setup page shows), SQLite, a port of its own on loopback.
const port = Number(process.env.E2E_PORT ?? 3107);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'murmur-e2e-'));
const root = path.resolve(__dirname, '..');
const bin = process.env.MURMUR_BIN ?? path.join(root, 'target', 'debug', 'murmur');

// murmur as the tests start it: `bin` on loopback at `port`, SQLite in
// `dataDir`, plus any other settings in `env`.
export function murmurServer(port: number, dataDir: string, env: Record<string, string> = {}) {
  return {
    command: bin,
    cwd: root,
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe' as const,
    env: {
      DATA_DIR: dataDir,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      RUST_LOG: 'info',
      DATABASE_URL: '',
      ...env,
    },
  };
}

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'off',
    launchOptions: {
      // Debian's chromium, never a downloaded browser.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: murmurServer(port, dataDir),
});
