import * as fs from 'node:fs';
import * as path from 'node:path';

// Where the release build of the dashboard's files is (scripts/test builds it).
const root = path.resolve(__dirname, '..', '..');
export const site = process.env.BUDGET_SITE_ROOT ?? path.join(root, 'target', 'site-release');
export const hashFile = process.env.BUDGET_HASH_FILE ?? path.join(root, 'target', 'release', 'hash.txt');

// True once the server has written the brotli twin of every file in the
// pkg directory and in its `bundled` directory (each lazy page's files in
// one, `server::bundles`) that it compresses (those of 1 KiB or more;
// `server::assets`), which it does in the background after it starts.
export function twinsWritten(): boolean {
  const pkg = path.join(site, 'pkg');
  return [pkg, path.join(pkg, 'bundled')].every((dir) => {
    if (!fs.existsSync(dir) || fs.existsSync(path.join(dir, '.compressing'))) return false;
    return fs
      .readdirSync(dir)
      .filter((f) => !/\.(br|gz)$/.test(f) && !f.startsWith('.') && !f.includes('.tmp-'))
      .filter((f) => fs.statSync(path.join(dir, f)).isFile() && fs.statSync(path.join(dir, f)).size >= 1024)
      .every((f) => fs.existsSync(path.join(dir, `${f}.br`)));
  });
}
