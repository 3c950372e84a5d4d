//! The dashboard's built files under `/pkg` (the WASM, its JS glue, the
//! style sheet), served compressed and revalidated cheaply.
//!
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
//! - **Cache policy.** The files keep cargo-leptos' fixed names, so they are
//!   `Cache-Control: no-cache`: a browser keeps them and asks again with
//!   `If-Modified-Since`, and `ServeDir` answers 304 with no body while the
//!   build is unchanged, so a repeat visit costs a few hundred bytes per
//!   file instead of the files.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::SystemTime,
};

use axum::{
    http::{header, HeaderValue},
    response::Response,
    Router,
};

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

async fn revalidate(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The same URL answers with different bodies by Accept-Encoding: caches must key on it.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// `/{pkg}/…` from `dir`: the compressed twin the browser accepts, else the
/// file; `Cache-Control: no-cache` with `Last-Modified` (304 when unchanged).
pub fn router<S: Clone + Send + Sync + 'static>(pkg_url: &str, dir: &Path) -> Router<S> {
    let files = tower_http::services::ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Router::new().nest_service(pkg_url, files).layer(axum::middleware::map_response(revalidate))
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
}
