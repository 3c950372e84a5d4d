// Reports what a browser downloads for the widget before its first card:
// each file as murmur serves it (identity, gzip, brotli), plus the best
// offline compression for reference. Usage: node scripts/widget-size.mjs [base-url]
import http from 'node:http';
import zlib from 'node:zlib';

const base = process.argv[2] ?? 'http://127.0.0.1:3000';

function get(path, encoding) {
  return new Promise((resolve, reject) => {
    const req = http.get(base + path, { headers: { 'Accept-Encoding': encoding } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, encoding: res.headers['content-encoding'] ?? 'identity', body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
  });
}

const frame = await get('/widget/frame', 'identity');
const v = /messenger\.js\?v=([0-9a-f]+)/.exec(frame.body.toString())?.[1] ?? '';
const files = ['/widget/loader.js', '/widget/frame', `/widget/messenger.js?v=${v}`, `/widget/messenger.css?v=${v}`];
const rows = [];
const total = { raw: 0, gzip: 0, br: 0, gzip9: 0, br11: 0 };
for (const f of files) {
  const raw = await get(f, 'identity');
  const gz = await get(f, 'gzip');
  const br = await get(f, 'br');
  if (raw.status !== 200 || gz.encoding !== 'gzip' || br.encoding !== 'br') throw new Error(`${f}: ${raw.status} ${gz.encoding} ${br.encoding}`);
  const gzip9 = zlib.gzipSync(raw.body, { level: 9 }).length;
  const br11 = zlib.brotliCompressSync(raw.body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  rows.push([f.replace(/\?v=.*/, ''), raw.body.length, gz.body.length, br.body.length, gzip9, br11]);
  total.raw += raw.body.length; total.gzip += gz.body.length; total.br += br.body.length; total.gzip9 += gzip9; total.br11 += br11;
}
console.log('| File | Raw | gzip (served) | brotli (served) | gzip -9 | brotli q11 |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| \`${r[0]}\` | ${r.slice(1).join(' | ')} |`);
console.log(`| **Total before the first card** | ${total.raw} | ${total.gzip} | ${total.br} | ${total.gzip9} | ${total.br11} |`);
