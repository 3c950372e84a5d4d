import * as fs from 'node:fs';
import * as path from 'node:path';

// Where the release build of the dashboard's files is (scripts/test builds it).
const root = path.resolve(__dirname, '..', '..');
export const site = process.env.BUDGET_SITE_ROOT ?? path.join(root, 'target', 'site-release');
export const hashFile = process.env.BUDGET_HASH_FILE ?? path.join(root, 'target', 'release', 'hash.txt');

// True once the server has written the brotli twin of every file in the
// pkg directory it compresses (those of 1 KiB or more; `server::assets`),
// which it does in the background after it starts.
export function twinsWritten(): boolean {
  const pkg = path.join(site, 'pkg');
  if (fs.existsSync(path.join(pkg, '.compressing'))) return false;
  return fs
    .readdirSync(pkg)
    .filter((f) => !/\.(br|gz)$/.test(f) && !f.startsWith('.') && !f.includes('.tmp-'))
    .filter((f) => fs.statSync(path.join(pkg, f)).size >= 1024)
    .every((f) => fs.existsSync(path.join(pkg, `${f}.br`)));
}
