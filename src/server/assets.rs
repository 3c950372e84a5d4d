//! The dashboard's built files under `/pkg` (the WASM, its JS glue, the
//! style sheet): served compressed, and cached for good when their name
//! carries their content's hash.
//!
//! - **Hashed names.** cargo-leptos builds with `hash-files = true`
//!   (Cargo.toml): `murmur.<hash>.js`, `.wasm`, `.css`, the hash being 22
//!   base64url characters of the file's MD5, and a `hash.txt` beside the
//!   server binary listing the three hashes. Leptos links the files by the
//!   names in that file (`HydrationScripts`, `HashedStylesheet` in the
//!   shell). [`with_hashed_names`] finds it when the server starts: beside
//!   the binary (`target/release/murmur`, `target/debug/murmur`) or one
//!   directory up (a test binary in `target/debug/deps`), or where
//!   `hash-file` in Leptos.toml (`LEPTOS_HASH_FILE`) says if that is an
//!   absolute path; and uses it only if the three files it names are in the
//!   site's pkg directory. Else
//!   (no hashed build, or a hash file from another build than the site's)
//!   the pages link cargo-leptos' fixed names (`murmur.js`, ...).
//! - **Cache policy.** A file whose name carries a hash is
//!   `Cache-Control: public, max-age=31536000, immutable`: a new build has
//!   new names, so a browser never asks again, and a repeat visit costs no
//!   request at all for these files. (cargo-leptos hashes the JS glue before
//!   writing the WASM's hashed name into it, so a new WASM with unchanged
//!   glue keeps the glue's name; the name written there is unused, as the
//!   hydration script passes the WASM's URL itself.) Anything else (fixed
//!   names, a 404 for an old build's name) is `no-cache`: a browser keeps
//!   it and asks again with `If-Modified-Since`, and `ServeDir` answers 304
//!   with no body while the build is unchanged.
//! - **Compressed once, on disk.** When the server starts, every file in the
//!   site's pkg directory gets a brotli (`.br`, quality 11) and a gzip
//!   (`.gz`, level 9) twin beside it, unless a twin newer than the file is
//!   already there (so a new build is compressed again, and a restart is
//!   free). A twin carries its file's modification time, so
//!   `Last-Modified` is the same whichever is served. Each twin is
//!   written to a temporary name and renamed, so
//!   servers starting together never serve half a file. `ServeDir` then
//!   answers `Accept-Encoding: br` or `gzip` with the twin
//!   (`Content-Encoding`, `Vary: Accept-Encoding`), and anything else
//!   with the file itself. Until the twins exist, the plain file is served.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::SystemTime,
};

use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
    Router,
};
use leptos::config::LeptosOptions;

type Compressor = fn(&[u8]) -> std::io::Result<Vec<u8>>;

/// The encodings written beside each file: extension and compressor.
const TWINS: [(&str, Compressor); 2] = [("br", brotli_bytes), ("gz", gzip_bytes)];

/// Files larger than this (a debug build's WASM, ~16 MB) get a quicker
/// brotli level: quality 11 takes minutes on them.
const BEST_UP_TO: usize = 4 << 20;

fn brotli_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3);
    let quality = if data.len() <= BEST_UP_TO { 11 } else { 5 };
    let params = brotli::enc::BrotliEncoderParams { quality, lgwin: 22, ..Default::default() };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
    Ok(out)
}

fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::best());
    e.write_all(data)?;
    e.finish()
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Whether a file is one of the twins (or a temporary one) rather than a source.
fn is_twin(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.ends_with(".br") || name.ends_with(".gz") || name.contains(".tmp-") || name == LOCK_NAME
}

/// Removes the twins older than their file (a new build): until they are
/// written again the plain file is served, never an old build's twin.
/// Run before the server answers.
pub fn drop_stale_twins(dir: &Path) -> std::io::Result<usize> {
    let mut dropped = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() || is_twin(&path) {
            continue;
        }
        let Some(source_time) = modified(&path) else { continue };
        for (ext, _) in TWINS {
            let twin = PathBuf::from(format!("{}.{ext}", path.display()));
            if modified(&twin).is_some_and(|t| t < source_time) {
                std::fs::remove_file(&twin)?;
                dropped += 1;
            }
        }
    }
    Ok(dropped)
}

/// Writes the missing or stale twins of every file under `dir` (not
/// recursing); how many it wrote. Files smaller than 1 KiB are left alone.
pub fn precompress(dir: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() || is_twin(&path) {
            continue;
        }
        let Some(source_time) = modified(&path) else { continue };
        let mut data = None;
        for (ext, compress) in TWINS {
            let twin = PathBuf::from(format!("{}.{ext}", path.display()));
            if modified(&twin).is_some_and(|t| t >= source_time) {
                continue;
            }
            let bytes = match &data {
                Some(b) => b,
                None => data.insert(std::fs::read(&path)?),
            };
            if bytes.len() < 1024 {
                break;
            }
            let packed = compress(bytes)?;
            let tmp = PathBuf::from(format!("{}.tmp-{}-{ext}", path.display(), std::process::id()));
            std::fs::write(&tmp, packed)?;
            // The twin carries its file's time: `Last-Modified` (and so a
            // browser's `If-Modified-Since`) is the same whichever is served.
            std::fs::File::options().write(true).open(&tmp)?.set_modified(source_time)?;
            std::fs::rename(&tmp, &twin)?;
            written += 1;
        }
    }
    Ok(written)
}

/// Held while one process compresses a directory: servers started together
/// (tests, several instances on one host) do the work once. A lock left by
/// a process that died is taken over after `LOCK_STALE`.
const LOCK_NAME: &str = ".compressing";
const LOCK_STALE: std::time::Duration = std::time::Duration::from_secs(600);

fn take_lock(dir: &Path) -> Option<PathBuf> {
    let lock = dir.join(LOCK_NAME);
    let stale = modified(&lock).is_some_and(|t| t.elapsed().unwrap_or_default() > LOCK_STALE);
    if stale {
        let _ = std::fs::remove_file(&lock);
    }
    std::fs::File::options().write(true).create_new(true).open(&lock).ok().map(|_| lock)
}

/// Drops stale twins now, then compresses the pkg directory in the
/// background (the server answers meanwhile, with plain files until the
/// twins are there), unless another server is already at it. A missing
/// directory (no front end built) is fine.
pub fn prepare(dir: PathBuf) {
    if !dir.is_dir() {
        return;
    }
    if let Err(e) = drop_stale_twins(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove stale compressed files");
    }
    let Some(lock) = take_lock(&dir) else { return };
    tokio::task::spawn_blocking(move || {
        match precompress(&dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(dir = %dir.display(), files = n, "compressed the dashboard's files"),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "could not compress the dashboard's files"),
        }
        let _ = std::fs::remove_file(lock);
    });
}

/// The length of cargo-leptos' hashes: an MD5 in unpadded base64url.
const HASH_LEN: usize = 22;

/// Whether the last segment of `path` is a name cargo-leptos gave a content
/// hash: `<stem>.<22 base64url characters>.<extension>`.
pub fn carries_hash(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.rsplitn(3, '.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !ext.is_empty()
        && !stem.is_empty()
        && hash.len() == HASH_LEN
        && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// For a file whose name carries its content's hash: a year, never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn cache_policy(req: Request, next: Next) -> Response {
    let hashed = carries_hash(req.uri().path());
    let mut response = next.run(req).await;
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let policy = if hashed && found { IMMUTABLE } else { "no-cache" };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    // The same URL answers with different bodies by Accept-Encoding: caches must key on it.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// `/{pkg}/…` from `dir`: the compressed twin the browser accepts, else the
/// file; `immutable` for a hashed name, else `no-cache` with
/// `Last-Modified` (304 when unchanged). `loader`: a file served under
/// another's name (the chunk loader that takes each page's files from its
/// bundle, `server::bundles::loader_override`).
pub fn router<S: Clone + Send + Sync + 'static>(
    pkg_url: &str,
    dir: &Path,
    loader: Option<(String, PathBuf)>,
) -> Router<S> {
    let files = tower_http::services::ServeDir::new(dir).precompressed_br().precompressed_gzip();
    let mut router = Router::new().nest_service(pkg_url, files);
    if let Some((name, path)) = loader {
        let file = tower_http::services::ServeFile::new(path).precompressed_br().precompressed_gzip();
        router = router.route_service(&format!("{pkg_url}/{name}"), file);
    }
    router.layer(axum::middleware::from_fn(cache_policy))
}

/// The `kind: hash` lines of a cargo-leptos hash file.
pub(super) fn hash_lines(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// The files a cargo-leptos hash file names (`js: …`, `wasm: …`, `css: …`,
/// and for a split build `split: …` and `manifest: …`, the chunk loader and
/// the list of chunks each lazy page needs), if they are all in `pkg_dir`.
fn hashed_files(hash_file: &Path, pkg_dir: &Path, output_name: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(hash_file).map_err(|e| e.to_string())?;
    let mut names = vec![];
    for (kind, hash) in hash_lines(&text) {
        match kind.as_str() {
            "js" | "wasm" | "css" => names.push(format!("{output_name}.{hash}.{kind}")),
            "split" => names.push(format!("__wasm_split.{hash}.js")),
            "manifest" => names.push(format!("__wasm_split_manifest.{hash}.json")),
            _ => {}
        }
    }
    if !names.iter().any(|n| n.ends_with(".js")) || !names.iter().any(|n| n.ends_with(".wasm")) {
        return Err("it names no JS or no WASM file".into());
    }
    match names.iter().find(|n| !pkg_dir.join(n).is_file()) {
        Some(missing) => Err(format!("{missing} is not in {} (another build's hash file?)", pkg_dir.display())),
        None => Ok(names),
    }
}

/// Where the hash file may be: `name` if absolute, else beside the running
/// binary (where cargo-leptos writes it and Leptos looks) and one directory
/// up (a test or bench binary in `target/<profile>/deps`).
fn hash_file_candidates(name: &str) -> Vec<PathBuf> {
    if Path::new(name).is_absolute() {
        return vec![PathBuf::from(name)];
    }
    let Some(exe_dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) else {
        return vec![];
    };
    let mut dirs = vec![exe_dir.clone()];
    if exe_dir.file_name().is_some_and(|n| n == "deps") {
        dirs.extend(exe_dir.parent().map(Path::to_path_buf));
    }
    dirs.into_iter().map(|d| d.join(name)).collect()
}

/// `options` with the built files' names settled: `hash_files` on and
/// `hash_file` an absolute path (Leptos joins it to the binary's directory,
/// which leaves an absolute path as it is) when a hash file matching the
/// site is found (module doc); else `hash_files` off, so the pages link the
/// fixed names. Called once, when the server starts.
pub fn with_hashed_names(options: LeptosOptions) -> LeptosOptions {
    let candidates = hash_file_candidates(&options.hash_file);
    settle_names(options, &candidates)
}

fn settle_names(mut options: LeptosOptions, candidates: &[PathBuf]) -> LeptosOptions {
    let pkg_dir = Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    for candidate in candidates.iter().filter(|c| c.is_file()) {
        match hashed_files(candidate, &pkg_dir, &options.output_name) {
            Ok(names) => {
                let mut path = std::path::absolute(candidate).unwrap_or_else(|_| candidate.clone());
                tracing::info!(hash_file = %path.display(), files = ?names, "the dashboard's files have hashed names");
                // A split build: each page's files in one bundle (`server::bundles`).
                match super::bundles::pack(&path, &pkg_dir, crate::pages::PAGE_PARTS) {
                    Ok(Some(packed)) => {
                        tracing::info!(pages = packed.pages, hash_file = %packed.hash_file.display(), "each lazy page's files bundled");
                        path = std::path::absolute(&packed.hash_file).unwrap_or(packed.hash_file);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the lazy pages' files are not bundled: each is fetched alone")
                    }
                }
                options.hash_file = path.display().to_string().into();
                options.hash_files = true;
                return options;
            }
            Err(e) => {
                tracing::warn!(hash_file = %candidate.display(), error = %e, "hash file not used");
            }
        }
    }
    if options.hash_files || candidates.iter().any(|c| c.is_file()) {
        tracing::warn!(
            pkg_dir = %pkg_dir.display(),
            "no usable hash file: the dashboard's files are linked by their fixed names (revalidated, not immutable)"
        );
    }
    options.hash_files = false;
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_are_written_once_and_decode_to_the_file() {
        let dir = std::env::temp_dir().join(format!("murmur-assets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        std::fs::write(dir.join("app.wasm"), &body).unwrap();
        std::fs::write(dir.join("tiny.js"), b"x").unwrap();
        assert_eq!(precompress(&dir).unwrap(), 2, "a .br and a .gz for the large file, none for the tiny one");
        assert_eq!(precompress(&dir).unwrap(), 0, "nothing is stale the second time");
        // A new build: its old twins go before the new ones are written.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(dir.join("app.wasm")).unwrap().set_modified(later).unwrap();
        assert_eq!(drop_stale_twins(&dir).unwrap(), 2);
        assert!(!dir.join("app.wasm.br").exists());
        assert_eq!(precompress(&dir).unwrap(), 2);
        let mut unpacked = vec![];
        brotli::BrotliDecompress(&mut &std::fs::read(dir.join("app.wasm.br")).unwrap()[..], &mut unpacked).unwrap();
        assert_eq!(unpacked, body);
        let mut gunzipped = vec![];
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&std::fs::read(dir.join("app.wasm.gz")).unwrap()[..]),
            &mut gunzipped,
        )
        .unwrap();
        assert_eq!(gunzipped, body);
        assert!(std::fs::metadata(dir.join("app.wasm.br")).unwrap().len() < body.len() as u64 / 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_names_with_a_content_hash_count_as_hashed() {
        assert!(carries_hash("/pkg/murmur.B5bXyrH2-k_9Qz0aT1cVmw.wasm"));
        assert!(carries_hash("murmur.B5bXyrH2-k_9Qz0aT1cVmw.css"));
        assert!(carries_hash("/pkg/__wasm_split.B5bXyrH2-k_9Qz0aT1cVmw.js"));
        for fixed in [
            "/pkg/murmur.js",
            "/pkg/murmur.wasm",
            "/pkg/murmur_bg.wasm",
            "/favicon.ico",
            // One character short, one too many, not base64url, no stem or extension.
            "/pkg/murmur.B5bXyrH2-k_9Qz0aT1cVm.js",
            "/pkg/murmur.B5bXyrH2-k_9Qz0aT1cVmwx.js",
            "/pkg/murmur.B5bXyrH2+k/9Qz0aT1cVmw.js",
            "/pkg/.B5bXyrH2-k_9Qz0aT1cVmw.js",
            "/pkg/murmur.B5bXyrH2-k_9Qz0aT1cVmw.",
            "/pkg/B5bXyrH2-k_9Qz0aT1cVmw.js",
        ] {
            assert!(!carries_hash(fixed), "{fixed}");
        }
    }

    #[tokio::test]
    async fn hashed_names_are_immutable_and_the_rest_revalidated() {
        use tower::ServiceExt;
        let dir = std::env::temp_dir().join(format!("murmur-assets-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hashed = "murmur.B5bXyrH2-k_9Qz0aT1cVmw.js";
        std::fs::write(dir.join(hashed), vec![b'x'; 4096]).unwrap();
        std::fs::write(dir.join("murmur.js"), vec![b'y'; 4096]).unwrap();
        precompress(&dir).unwrap();
        let app: Router = router("/pkg", &dir, None);
        let get = |path: String| {
            let app = app.clone();
            async move {
                let req =
                    axum::http::Request::get(path).header("accept-encoding", "br").body(axum::body::Body::empty());
                app.oneshot(req.unwrap()).await.unwrap()
            }
        };
        let res = get(format!("/pkg/{hashed}")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(res.headers()[header::VARY], "accept-encoding");
        for path in ["/pkg/murmur.js", "/pkg/murmur.AAAAAAAAAAAAAAAAAAAAAA.js"] {
            let res = get(path.into()).await;
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(res.headers()[header::VARY], "accept-encoding", "{path}");
        }
        assert_eq!(get("/pkg/murmur.AAAAAAAAAAAAAAAAAAAAAA.js".into()).await.status(), 404);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_hash_file_is_used_only_if_the_site_has_its_files() {
        let dir = std::env::temp_dir().join(format!("murmur-assets-hashfile-{}", std::process::id()));
        let pkg = dir.join("site").join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        let options =
            || LeptosOptions::builder().output_name("murmur").site_root(dir.join("site").display().to_string()).build();
        let hash_file = dir.join("hash.txt");
        let (js, wasm, css) = ("AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBB", "CCCCCCCCCCCCCCCCCCCCCC");
        std::fs::write(&hash_file, format!("js: {js}\nwasm: {wasm}\ncss: {css}\n")).unwrap();

        // None there: the fixed names.
        let none = settle_names(options(), &[dir.join("missing.txt")]);
        assert!(!none.hash_files);
        // A hash file whose files are not in the site (another build's): the fixed names.
        std::fs::write(pkg.join(format!("murmur.{js}.js")), "").unwrap();
        std::fs::write(pkg.join(format!("murmur.{wasm}.wasm")), "").unwrap();
        assert!(!settle_names(options(), std::slice::from_ref(&hash_file)).hash_files);
        // All three there: hashed names, the hash file by its absolute path.
        std::fs::write(pkg.join(format!("murmur.{css}.css")), "").unwrap();
        let found = settle_names(options(), &[dir.join("missing.txt"), hash_file.clone()]);
        assert!(found.hash_files);
        assert_eq!(&*found.hash_file, hash_file.display().to_string());
        // Leptos reads it at `<binary's directory>.join(hash_file)`: the same file.
        assert_eq!(Path::new("/some/bin/dir").join(&*found.hash_file), hash_file);

        // A split build's hash file also names the chunk loader and the
        // manifest: used only once both are there too.
        let (split, manifest) = ("DDDDDDDDDDDDDDDDDDDDDD", "EEEEEEEEEEEEEEEEEEEEEE");
        std::fs::write(
            &hash_file,
            format!("js: {js}\nwasm: {wasm}\ncss: {css}\nmanifest: {manifest}\nsplit: {split}\n"),
        )
        .unwrap();
        std::fs::write(pkg.join(format!("__wasm_split.{split}.js")), "").unwrap();
        assert!(!settle_names(options(), std::slice::from_ref(&hash_file)).hash_files);
        std::fs::write(pkg.join(format!("__wasm_split_manifest.{manifest}.json")), "").unwrap();
        assert!(settle_names(options(), std::slice::from_ref(&hash_file)).hash_files);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
