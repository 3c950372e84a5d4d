//! Each lazy page's WASM in one download.
//!
//! cargo-leptos' split mode (ARCHITECTURE.md, "Lazy pages") cuts the client
//! into the first file, one file per page and one `chunk_N` per set of pages
//! that share some code: ~180 files for 13 pages, and a page such as the
//! message composer needs 120 of them. Fetched one by one, each costs a
//! response's headers (~320 bytes) and compresses on its own (every chunk
//! repeats its imports and types): the composer's 121 files (its own and
//! 120 chunks) were 257 KB brotli apart and 136 KB as one stream
//! (BENCHMARKS.md).
//!
//! So when the server starts it packs, for every page of the split
//! manifest, the page's file and its chunks into one *bundle*
//! (`pkg/bundled/bundle_<page>.<hash>.wasm`, compressed on disk like every
//! other file), and:
//! - writes a manifest that lists the bundle alone for each page (Leptos
//!   preloads what it lists: one `<link rel=preload>` per page, not 120),
//!   and a hash file naming that manifest (`pkg/bundled/hash.txt`), which
//!   the server then uses;
//! - serves cargo-leptos' chunk loader (`__wasm_split.<hash>.js`, imported
//!   by the JS glue under that name) with a prelude: loading a page first
//!   starts its bundle's download, and each of the page's files is then
//!   taken from the bundle instead of fetched. A file the bundle does not
//!   hold, or every file when the bundle fails, is fetched alone as before.
//!
//! A *part* of a page (a `#[lazy]` function the page calls when it shows
//! that part, declared with its page in `pages::PAGE_PARTS`) gets a bundle
//! without the files its page's bundle holds: by the time the part loads,
//! its page's files are loaded (the loader loads each file once), so they
//! would be downloaded for nothing. A file a part needs that is nevertheless
//! not loaded yet is fetched again from a bundle that holds it.
//!
//! The build's own files are left as they are; everything derived goes to
//! `pkg/bundled/`, under names that carry the hash of what they hold, so
//! servers starting together write the same bytes, and a restart writes
//! nothing. A page's bundle also holds the chunks it shares with pages
//! already visited: going from page to page downloads those again (they
//! are not instantiated twice), the price of one request per page.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::assets::hash_lines;

/// Where the derived files go, under the pkg directory.
pub const DIR: &str = "bundled";

/// The first four bytes of a bundle ("MWB1" read as little-endian), then
/// the number of files, for each its place among the loader's fetches and
/// its length, and the files one after the other (all `u32`, little-endian).
const MAGIC: u32 = u32::from_le_bytes(*b"MWB1");

/// What the loader's fetch of one file looks like in cargo-leptos 0.3's
/// output: `fetch(new URL("./<file>", import.meta.url))`.
const FETCH_OPEN: &str = "fetch(new URL(\"";
const FETCH_CLOSE: &str = "\", import.meta.url))";
/// A page's loader, exported to the WASM: `export const <EXPORT><page> = …`.
const EXPORT: &str = "export const __wasm_split_load_";

/// 22 base64url characters of a SHA-256: the length of cargo-leptos' names
/// (`assets::carries_hash`).
fn name_hash(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&Sha256::digest(bytes)[..16])
}

/// Writes `bytes` at `path` unless a file is there already (its name says
/// what it holds), through a temporary name and a rename.
fn write_once(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    write_atomically(path, bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = PathBuf::from(format!("{}.tmp-{}-{n}", path.display(), std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The loader's shape, read from cargo-leptos' output: every fetched file
/// in order, and each page's own file (the fetch inside its export).
struct Loader<'a> {
    text: &'a str,
    /// (byte range of the whole `fetch(…)` call, the file as written, `./…`).
    fetches: Vec<(std::ops::Range<usize>, &'a str)>,
}

impl<'a> Loader<'a> {
    fn read(text: &'a str) -> Result<Self, String> {
        let mut fetches = vec![];
        let mut at = 0;
        while let Some(i) = text[at..].find(FETCH_OPEN) {
            let start = at + i;
            let name_at = start + FETCH_OPEN.len();
            let close = text[name_at..].find(FETCH_CLOSE).ok_or("a fetch without its URL's end")?;
            let name = &text[name_at..name_at + close];
            if !name.starts_with("./") || name.contains(['"', '\\', '\n']) || !name.ends_with(".wasm") {
                return Err(format!("an unexpected file in a fetch: {name:?}"));
            }
            let end = name_at + close + FETCH_CLOSE.len();
            fetches.push((start..end, name));
            at = end;
        }
        if fetches.is_empty() {
            return Err("no fetch of a WASM file".into());
        }
        Ok(Loader { text, fetches })
    }

    /// The page's own file: the first fetch after its export.
    fn page_file(&self, page: &str) -> Result<&'a str, String> {
        let export = format!("{EXPORT}{page} = ");
        let at = self.text.find(&export).ok_or_else(|| format!("no loader exported for {page}"))?;
        let next_export =
            self.text[at + export.len()..].find(EXPORT).map_or(self.text.len(), |i| at + export.len() + i);
        self.fetches
            .iter()
            .find(|(r, _)| r.start > at && r.start < next_export)
            .map(|(_, name)| *name)
            .ok_or_else(|| format!("no file fetched by {page}'s loader"))
    }

    /// The place of `name` among the fetches.
    fn index_of(&self, name: &str) -> Option<u32> {
        self.fetches.iter().position(|(_, n)| *n == name).and_then(|i| u32::try_from(i).ok())
    }

    /// The loader with the prelude: fetch number `i` goes through
    /// `__murmurFetch(i)` (with its file's name only when no bundle holds
    /// it: the names, each with its hash, were half the loader's bytes), and
    /// each page's export first starts its bundle (`bundles`: page → its
    /// bundle's file; `held`: page → the fetches its bundle holds).
    fn patched(&self, bundles: &BTreeMap<String, String>, held: &BTreeMap<String, Vec<u32>>) -> Result<String, String> {
        // Per fetch, the place in `bundles` of a page whose bundle holds it.
        let mut home: Vec<i64> = vec![-1; self.fetches.len()];
        for (p, page) in bundles.keys().enumerate() {
            for &i in held.get(page).into_iter().flatten() {
                let slot = home.get_mut(i as usize).ok_or_else(|| format!("{page} holds fetch {i}, past the last"))?;
                if *slot < 0 {
                    *slot = p as i64;
                }
            }
        }
        let mut body = String::with_capacity(self.text.len());
        let mut at = 0;
        for (i, (range, name)) in self.fetches.iter().enumerate() {
            body.push_str(&self.text[at..range.start]);
            if home[i] < 0 {
                body.push_str(&format!("__murmurFetch({i}, \"{name}\")"));
            } else {
                body.push_str(&format!("__murmurFetch({i})"));
            }
            at = range.end;
        }
        body.push_str(&self.text[at..]);
        let exports = body.matches(EXPORT).count();
        if exports != bundles.len() {
            return Err(format!("{exports} page loaders exported, {} pages in the manifest", bundles.len()));
        }
        let mut wrappers = String::new();
        for page in bundles.keys() {
            if !page.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("a page name that is not an identifier: {page:?}"));
            }
            let export = format!("{EXPORT}{page} = ");
            if body.matches(&export).count() != 1 {
                return Err(format!("{page}'s loader is not exported once"));
            }
            body = body.replacen(&export, &format!("const __murmur_load_{page} = "), 1);
            wrappers.push_str(&format!(
                "{EXPORT}{page} = (...args) => {{ __murmurBundle(\"{page}\"); return __murmur_load_{page}(...args); }};\n"
            ));
        }
        let table = serde_json::to_string(bundles).map_err(|e| e.to_string())?;
        let home = serde_json::to_string(&home).map_err(|e| e.to_string())?;
        // The glue's import stays the module's first statement.
        let (first, rest) = match body.split_once('\n') {
            Some((first, rest)) if first.starts_with("import ") => (first, rest),
            _ => ("", body.as_str()),
        };
        Ok(format!(
            "{first}\n{}\nconst __murmurBundles = {table};\nconst __murmurHome = {home};\n{PRELUDE}{rest}\n{wrappers}",
            "// murmur: each lazy page's files in one download (server::bundles).",
        ))
    }
}

/// Fetches through the bundles. A page's loader calls `__murmurBundle`
/// before its chunks' loaders run: it starts the page's bundle download
/// (once per page, again after a failure). `__murmurFetch(i)` waits for the
/// bundles in flight, then answers file `i` from one of them (as a
/// `Response`, for `instantiateStreaming`); when none of them has it (its
/// bundle failed, or a load retried after the file was taken) it downloads
/// again the bundle that holds it (`__murmurHome[i]`, a place in
/// `__murmurBundles`). A file no bundle holds comes with its name and is
/// fetched alone. A file is taken once: bundles arriving later do not keep
/// it again.
const PRELUDE: &str = r#"const __murmurPages = Object.keys(__murmurBundles);
const __murmurParts = new Map();
const __murmurTaken = new Set();
const __murmurStarted = new Set();
const __murmurPending = new Set();
function __murmurBundle(page, again) {
  const file = __murmurBundles[page];
  if (file === undefined || (__murmurStarted.has(page) && !again)) return;
  __murmurStarted.add(page);
  const load = fetch(new URL(file, import.meta.url))
    .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`${file}: ${r.status}`))))
    .then((buf) => {
      const v = new DataView(buf);
      const n = buf.byteLength >= 8 && v.getUint32(0, true) === 0x3142574d ? v.getUint32(4, true) : -1;
      if (n < 0 || buf.byteLength < 8 + 8 * n) throw new Error(`${file}: not a bundle`);
      const parts = [];
      let at = 8 + 8 * n;
      for (let k = 0; k < n; k++) {
        const i = v.getUint32(8 + 8 * k, true);
        const len = v.getUint32(12 + 8 * k, true);
        parts.push([i, at, len]);
        at += len;
      }
      if (at !== buf.byteLength) throw new Error(`${file}: ${buf.byteLength - at} bytes left over`);
      for (const [i, from, len] of parts) {
        if (!__murmurTaken.has(i)) __murmurParts.set(i, buf.slice(from, from + len));
      }
    })
    .catch((e) => {
      console.warn(e);
      __murmurStarted.delete(page);
    });
  __murmurPending.add(load);
  load.then(() => __murmurPending.delete(load));
}
function __murmurFetch(i, name) {
  const wait = () => Promise.all([...__murmurPending]);
  const take = () => {
    const bytes = __murmurParts.get(i);
    if (bytes === undefined) return undefined;
    __murmurTaken.add(i);
    __murmurParts.delete(i);
    return new Response(bytes, { headers: { "Content-Type": "application/wasm" } });
  };
  return wait().then(() => {
    const found = take();
    if (found !== undefined) return found;
    const home = __murmurHome[i];
    if (home < 0) {
      __murmurTaken.add(i);
      return fetch(new URL(name, import.meta.url));
    }
    __murmurTaken.delete(i);
    __murmurBundle(__murmurPages[home], true);
    return wait().then(() => take() ?? Promise.reject(new Error(`file ${i}: its bundle did not load`)));
  });
}
"#;

/// One page's bundle: the header (`MAGIC`, the count, each file's place
/// among the loader's fetches and its length) and the files.
fn bundle_bytes(files: &[(u32, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let total: usize = files.iter().map(|(_, f)| f.len()).sum();
    let mut out = Vec::with_capacity(8 + 8 * files.len() + total);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    let count = u32::try_from(files.len()).map_err(|_| "too many files")?;
    out.extend_from_slice(&count.to_le_bytes());
    for (i, f) in files {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&u32::try_from(f.len()).map_err(|_| "a file over 4 GiB")?.to_le_bytes());
    }
    for (_, f) in files {
        out.extend_from_slice(f);
    }
    Ok(out)
}

/// What [`pack`] made: the hash file to use instead of cargo-leptos' own,
/// and the loader to serve under the original loader's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub hash_file: PathBuf,
    /// The original loader's file name (`__wasm_split.<hash>.js`).
    pub loader_name: String,
    /// The patched loader, in `pkg/bundled/`.
    pub loader: PathBuf,
    pub pages: usize,
}

/// Packs each page's files of the split build that `hash_file` describes
/// (its files already checked to be in `pkg_dir`) into bundles, with the
/// manifest, hash file and loader that use them (module doc). `Ok(None)`
/// for a build that is not split; an error (nothing used) for a loader or
/// manifest of a shape this does not know.
pub fn pack(hash_file: &Path, pkg_dir: &Path, parts: &[(&str, &str)]) -> Result<Option<Packed>, String> {
    let hash_text = std::fs::read_to_string(hash_file).map_err(|e| format!("{}: {e}", hash_file.display()))?;
    let hashes = hash_lines(&hash_text);
    let (Some(split), Some(manifest)) = (hashes.get("split"), hashes.get("manifest")) else {
        return Ok(None);
    };
    let read = |name: &str| std::fs::read(pkg_dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let loader_name = format!("__wasm_split.{split}.js");
    let loader_text = String::from_utf8(read(&loader_name)?).map_err(|e| e.to_string())?;
    let pages: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&read(&format!("__wasm_split_manifest.{manifest}.json"))?)
            .map_err(|e| format!("the split manifest: {e}"))?;
    if pages.is_empty() {
        return Ok(None);
    }
    let loader = Loader::read(&loader_text)?;
    let dir = pkg_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    // Each page's files: its chunks (as the manifest lists them) and its own file.
    let files_of = |page: &str| -> Result<Vec<String>, String> {
        let mut files: Vec<String> = pages[page].iter().map(|c| format!("./{c}.wasm")).collect();
        files.push(loader.page_file(page)?.to_string());
        Ok(files)
    };
    // Each part's page, as manifest keys.
    let mut part_of = BTreeMap::new();
    for (part, page) in parts {
        part_of.insert(split_key(&pages, part)?, split_key(&pages, page)?);
    }
    let mut bundles = BTreeMap::new();
    let mut held = BTreeMap::new();
    let mut new_manifest = BTreeMap::new();
    for page in pages.keys() {
        let mut parts = files_of(page)?;
        if let Some(&home) = part_of.get(page.as_str()) {
            let loaded = files_of(home)?;
            parts.retain(|f| !loaded.contains(f));
        }
        let indexes = parts
            .iter()
            .map(|p| loader.index_of(p).ok_or_else(|| format!("{page} lists {p}, which the loader never fetches")))
            .collect::<Result<Vec<u32>, String>>()?;
        let stem = format!("bundle_{page}.{}", name_hash(format!("murmur-bundle-v2\n{}", parts.join("\n")).as_bytes()));
        let path = dir.join(format!("{stem}.wasm"));
        if !path.is_file() {
            let files = parts
                .iter()
                .zip(&indexes)
                .map(|(p, &i)| Ok((i, read(&p[2..])?)))
                .collect::<Result<Vec<_>, String>>()?;
            write_once(&path, &bundle_bytes(&files)?).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        new_manifest.insert(page.clone(), vec![format!("{DIR}/{stem}")]);
        held.insert(page.clone(), indexes);
        bundles.insert(page.clone(), format!("./{DIR}/{stem}.wasm"));
    }

    let patched = loader.patched(&bundles, &held)?;
    let loader_path = dir.join(&loader_name);
    if std::fs::read(&loader_path).ok().as_deref() != Some(patched.as_bytes()) {
        write_atomically(&loader_path, patched.as_bytes()).map_err(|e| format!("{}: {e}", loader_path.display()))?;
    }
    let manifest_text = serde_json::to_string(&new_manifest).map_err(|e| e.to_string())?;
    let manifest_hash = name_hash(manifest_text.as_bytes());
    let manifest_path = pkg_dir.join(format!("__wasm_split_manifest.{manifest_hash}.json"));
    write_once(&manifest_path, manifest_text.as_bytes()).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let new_hashes: String = hash_text
        .lines()
        .map(|l| match l.split_once(':') {
            Some((k, _)) if k.trim() == "manifest" => format!("manifest: {manifest_hash}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let new_hash_file = dir.join("hash.txt");
    if std::fs::read_to_string(&new_hash_file).ok().as_deref() != Some(new_hashes.as_str()) {
        write_atomically(&new_hash_file, new_hashes.as_bytes())
            .map_err(|e| format!("{}: {e}", new_hash_file.display()))?;
    }
    // An earlier build's bundles and loader (and their compressed twins) go.
    let current: std::collections::HashSet<String> = bundles
        .values()
        .map(|file| file.trim_start_matches(&format!("./{DIR}/")).to_string())
        .chain([loader_name.clone()])
        .collect();
    for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let source = name.trim_end_matches(".br").trim_end_matches(".gz");
        let ours = source.starts_with("bundle_") || source.starts_with("__wasm_split.");
        if ours && !name.contains(".tmp-") && !current.contains(source) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(Some(Packed { hash_file: new_hash_file, loader_name, loader: loader_path, pages: pages.len() }))
}

/// The manifest's key for the `#[lazy]` function or lazy route `name`: the
/// key is the name (without leading underscores) and `_<digits>`.
fn split_key<'k>(pages: &'k BTreeMap<String, Vec<String>>, name: &str) -> Result<&'k str, String> {
    let mut found = pages.keys().filter(|key| {
        key.trim_start_matches('_')
            .strip_prefix(name.trim_start_matches('_'))
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    match (found.next(), found.next()) {
        (Some(key), None) => Ok(key),
        (None, _) => Err(format!("no lazy function {name:?} in the split manifest")),
        (Some(_), Some(_)) => Err(format!("more than one lazy function {name:?} in the split manifest")),
    }
}

/// The patched loader to serve in place of the original, when `hash_file`
/// is the one [`pack`] wrote: (the original's name, the patched file).
pub fn loader_override(pkg_dir: &Path, hash_file: &Path) -> Option<(String, PathBuf)> {
    let dir = pkg_dir.join(DIR);
    if hash_file.parent().map(std::path::absolute).and_then(Result::ok) != std::path::absolute(&dir).ok() {
        return None;
    }
    let split = hash_lines(&std::fs::read_to_string(hash_file).ok()?).remove("split")?;
    let name = format!("__wasm_split.{split}.js");
    let path = dir.join(&name);
    path.is_file().then_some((name, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loader in the shape cargo-leptos 0.3 writes: two chunks, two pages.
    fn loader(glue: &str, a: &str, b: &str) -> String {
        format!(
            r#"import {{ initSync }} from "./{glue}";

function makeLoad(fetcher, deps) {{ return () => Promise.all(deps.map((d) => d())).then(() => fetcher()); }}
function wrapAsyncCb(callee) {{ return async (i, d) => callee(); }}
const __chunk_1 = makeLoad(() => {{
    const src = fetch(new URL("./chunk_1.AAAAAAAAAAAAAAAAAAAAAA.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}}
, []);
const __chunk_2 = makeLoad(() => {{
    const src = fetch(new URL("./chunk_2.BBBBBBBBBBBBBBBBBBBBBB.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}}
, []);
export const __wasm_split_load___a_view_1 = wrapAsyncCb(makeLoad(() => {{
    const src = fetch(new URL("./{a}", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}}
, [__chunk_1, __chunk_2]));
export const __wasm_split_load___b_view_1 = wrapAsyncCb(makeLoad(() => {{
    const src = fetch(new URL("./{b}", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}}
, [__chunk_2]));
"#
        )
    }

    fn site(tag: &str) -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("murmur-bundles-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pkg = root.join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        let (a, b) = ("split___a_view_1.CCCCCCCCCCCCCCCCCCCCCC.wasm", "split___b_view_1.DDDDDDDDDDDDDDDDDDDDDD.wasm");
        for (name, body) in [
            ("chunk_1.AAAAAAAAAAAAAAAAAAAAAA.wasm", b"one".as_slice()),
            ("chunk_2.BBBBBBBBBBBBBBBBBBBBBB.wasm", b"second"),
            (a, b"page a"),
            (b, b"b"),
        ] {
            std::fs::write(pkg.join(name), body).unwrap();
        }
        std::fs::write(pkg.join("__wasm_split.SSSSSSSSSSSSSSSSSSSSSS.js"), loader("murmur.JJ.js", a, b)).unwrap();
        std::fs::write(
            pkg.join("__wasm_split_manifest.MMMMMMMMMMMMMMMMMMMMMM.json"),
            r#"{"__a_view_1":["chunk_1.AAAAAAAAAAAAAAAAAAAAAA","chunk_2.BBBBBBBBBBBBBBBBBBBBBB"],"__b_view_1":["chunk_2.BBBBBBBBBBBBBBBBBBBBBB"]}"#,
        )
        .unwrap();
        let hash_file = root.join("hash.txt");
        std::fs::write(
            &hash_file,
            "js: JJ\nwasm: WW\ncss: CC\nmanifest: MMMMMMMMMMMMMMMMMMMMMM\nsplit: SSSSSSSSSSSSSSSSSSSSSS\n",
        )
        .unwrap();
        (root, hash_file)
    }

    /// A bundle's files: (place among the loader's fetches, bytes).
    fn unpack(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
        let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as usize;
        assert_eq!(word(0) as u32, MAGIC);
        let n = word(1);
        let mut at = 8 + 8 * n;
        let files = (0..n)
            .map(|k| {
                let f = bytes[at..at + word(3 + 2 * k)].to_vec();
                at += f.len();
                (word(2 + 2 * k), f)
            })
            .collect();
        assert_eq!(at, bytes.len(), "nothing after the last file");
        files
    }

    #[test]
    fn each_page_gets_one_bundle_and_the_loader_takes_its_files_from_it() {
        let (root, hash_file) = site("pack");
        let pkg = root.join("pkg");
        let packed = pack(&hash_file, &pkg, &[]).unwrap().unwrap();
        assert_eq!(packed.pages, 2);
        assert_eq!(packed.loader_name, "__wasm_split.SSSSSSSSSSSSSSSSSSSSSS.js");
        // The new hash file: the same files but the manifest, which lists one bundle per page.
        let hashes = hash_lines(&std::fs::read_to_string(&packed.hash_file).unwrap());
        assert_eq!(hashes["split"], "SSSSSSSSSSSSSSSSSSSSSS");
        assert_eq!(hashes["js"], "JJ");
        let manifest: BTreeMap<String, Vec<String>> = serde_json::from_slice(
            &std::fs::read(pkg.join(format!("__wasm_split_manifest.{}.json", hashes["manifest"]))).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest.len(), 2);
        let bundle_a = &manifest["__a_view_1"][0];
        assert!(bundle_a.starts_with("bundled/bundle___a_view_1."), "{bundle_a}");
        assert!(crate::server::assets::carries_hash(&format!("/pkg/{bundle_a}.wasm")), "{bundle_a}");
        // Page a's bundle: its chunks in the manifest's order, then its own file.
        let files = unpack(&std::fs::read(pkg.join(format!("{bundle_a}.wasm"))).unwrap());
        assert_eq!(files, [(0, b"one".to_vec()), (1, b"second".to_vec()), (2, b"page a".to_vec())]);
        let files = unpack(&std::fs::read(pkg.join(format!("{}.wasm", manifest["__b_view_1"][0]))).unwrap());
        assert_eq!(files, [(1, b"second".to_vec()), (3, b"b".to_vec())]);
        // The loader: the glue's import first, no direct fetch left, each
        // page's export starting its bundle.
        let js = std::fs::read_to_string(&packed.loader).unwrap();
        assert!(js.starts_with("import { initSync } from \"./murmur.JJ.js\";\n"), "{js}");
        assert!(!js.contains(FETCH_OPEN), "{js}");
        // Every file is in a bundle: fetched by its place alone, no name left.
        for i in 0..4 {
            assert_eq!(js.matches(&format!("__murmurFetch({i})")).count(), 1, "{js}");
        }
        assert!(!js.contains("AAAAAAAAAAAAAAAAAAAAAA") && !js.contains("DDDDDDDDDDDDDDDDDDDDDD"), "{js}");
        // Where each file comes from again: chunk 2 is in both pages' bundles, a's first.
        assert!(js.contains("const __murmurHome = [0,0,0,1];"), "{js}");
        assert_eq!(js.matches(EXPORT).count(), 2);
        assert!(js.contains("export const __wasm_split_load___a_view_1 = (...args) => { __murmurBundle(\"__a_view_1\"); return __murmur_load___a_view_1(...args); };"), "{js}");
        assert!(js.contains(&format!("\"__a_view_1\":\"./{bundle_a}.wasm\"")), "{js}");
        assert_eq!(loader_override(&pkg, &packed.hash_file), Some((packed.loader_name.clone(), packed.loader.clone())));
        assert_eq!(loader_override(&pkg, &hash_file), None, "cargo-leptos' own hash file: no override");

        // A second start writes nothing new and says the same; an earlier
        // build's bundle (and its twin) goes.
        let before: Vec<_> = std::fs::read_dir(pkg.join(DIR)).unwrap().map(|e| e.unwrap().path()).collect();
        std::fs::write(pkg.join(DIR).join("bundle___a_view_1.OOOOOOOOOOOOOOOOOOOOOO.wasm"), b"old").unwrap();
        std::fs::write(pkg.join(DIR).join("bundle___a_view_1.OOOOOOOOOOOOOOOOOOOOOO.wasm.br"), b"old").unwrap();
        assert_eq!(pack(&hash_file, &pkg, &[]).unwrap().unwrap(), packed);
        let after: Vec<_> = std::fs::read_dir(pkg.join(DIR)).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(after.len(), before.len(), "{after:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_part_of_a_page_leaves_out_what_its_page_holds() {
        let (root, hash_file) = site("part");
        let pkg = root.join("pkg");
        // Page b (chunk 2 and its file) declared a part of page a (chunks 1
        // and 2 and its file): b's bundle holds b's own file alone.
        let packed = pack(&hash_file, &pkg, &[("b_view", "__a_view")]).unwrap().unwrap();
        let hashes = hash_lines(&std::fs::read_to_string(&packed.hash_file).unwrap());
        let manifest: BTreeMap<String, Vec<String>> = serde_json::from_slice(
            &std::fs::read(pkg.join(format!("__wasm_split_manifest.{}.json", hashes["manifest"]))).unwrap(),
        )
        .unwrap();
        let bundle = |page: &str| unpack(&std::fs::read(pkg.join(format!("{}.wasm", manifest[page][0]))).unwrap());
        assert_eq!(bundle("__b_view_1"), [(3, b"b".to_vec())]);
        assert_eq!(bundle("__a_view_1"), [(0, b"one".to_vec()), (1, b"second".to_vec()), (2, b"page a".to_vec())]);
        // Chunk 2, if asked for again, comes from a's bundle; b's file from b's.
        let js = std::fs::read_to_string(&packed.loader).unwrap();
        assert!(js.contains("const __murmurHome = [0,0,0,1];"), "{js}");
        assert!(!js.contains(FETCH_OPEN), "{js}");

        // A part or a page the manifest does not name once: refused, with
        // the name (the server then serves the files unbundled).
        for parts in [[("c_view", "__a_view")], [("b_view", "a")], [("b", "a_view")]] {
            let e = pack(&hash_file, &pkg, &parts).unwrap_err();
            assert!(e.contains("no lazy function"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_lazy_function_is_found_by_its_name_and_number() {
        let pages: BTreeMap<String, Vec<String>> =
            ["__message_route_view_12", "message_results_345", "message_results_more_6", "x_view_7"]
                .into_iter()
                .map(|k| (k.to_string(), vec![]))
                .collect();
        assert_eq!(split_key(&pages, "message_route_view"), Ok("__message_route_view_12"));
        assert_eq!(split_key(&pages, "message_results"), Ok("message_results_345"));
        assert_eq!(split_key(&pages, "message_results_more"), Ok("message_results_more_6"));
        assert!(split_key(&pages, "message").is_err());
        assert!(split_key(&pages, "view_7").is_err());
        let twice: BTreeMap<String, Vec<String>> =
            ["a_1", "a_2"].into_iter().map(|k| (k.to_string(), vec![])).collect();
        assert!(split_key(&twice, "a").unwrap_err().contains("more than one"));
    }

    #[test]
    fn a_file_no_bundle_holds_is_fetched_by_its_name() {
        let text = loader("murmur.JJ.js", "split___a_view_1.CC.wasm", "split___b_view_1.DD.wasm");
        let read = Loader::read(&text).unwrap();
        let page = |p: &str| p.to_string();
        let bundles = BTreeMap::from([
            (page("__a_view_1"), page("./bundled/a.wasm")),
            (page("__b_view_1"), page("./bundled/b.wasm")),
        ]);
        let held = BTreeMap::from([(page("__a_view_1"), vec![0, 2]), (page("__b_view_1"), vec![3])]);
        let js = read.patched(&bundles, &held).unwrap();
        assert!(js.contains("__murmurFetch(1, \"./chunk_2.BBBBBBBBBBBBBBBBBBBBBB.wasm\")"), "{js}");
        assert!(js.contains("__murmurFetch(0)") && js.contains("__murmurFetch(2)") && js.contains("__murmurFetch(3)"));
        assert!(js.contains("const __murmurHome = [0,-1,0,1];"), "{js}");
        // A bundle said to hold a fetch the loader does not make: refused.
        let held = BTreeMap::from([(page("__a_view_1"), vec![0, 9])]);
        assert!(read.patched(&bundles, &held).is_err());
    }

    #[test]
    fn a_loader_of_another_shape_is_left_alone() {
        let (root, hash_file) = site("shape");
        let pkg = root.join("pkg");
        let loader = pkg.join("__wasm_split.SSSSSSSSSSSSSSSSSSSSSS.js");
        let good = std::fs::read_to_string(&loader).unwrap();
        // A page missing from the loader's exports, a fetch of another form.
        for bad in [
            good.replace("export const __wasm_split_load___b_view_1", "export const something_else"),
            good.replace(FETCH_OPEN, "fetch(\""),
            good.replace("\"./chunk_1.AAAAAAAAAAAAAAAAAAAAAA.wasm\"", "\"./chunk_1.AAAAAAAAAAAAAAAAAAAAAA.wasm?x\""),
        ] {
            std::fs::write(&loader, &bad).unwrap();
            assert!(pack(&hash_file, &pkg, &[]).is_err(), "{bad}");
        }
        // Not a split build: nothing to do.
        std::fs::write(&hash_file, "js: JJ\nwasm: WW\ncss: CC\n").unwrap();
        assert_eq!(pack(&hash_file, &pkg, &[]).unwrap(), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
