//! Each lazy page's WASM in one download (`server::bundles`), on the real
//! split build (`cargo leptos build --split`, which `scripts/test` runs
//! first). A test binary of its own: Leptos reads the split manifest once
//! per process, at the first page it renders, and other tests' servers
//! serve sites without one.

mod support;

use support::{spawn_app, Backend, TestDb};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A lazy page preloads its one bundle (no chunk of its own); the loader
/// served under cargo-leptos' name is the one that reads bundles, and says
/// which files each page's bundle holds; the bundle holds exactly those
/// files, byte for byte as they are served alone.
#[tokio::test]
async fn a_lazy_page_loads_its_files_in_one_bundle() {
    if !std::path::Path::new("target/site/pkg").is_dir() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "no target/site/pkg: run `cargo leptos build --split` first"
        );
        eprintln!("skipped: no target/site/pkg (run `cargo leptos build --split`)");
        return;
    }
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db, &[]).await;
    assert!(app.state.leptos_options.hash_file.contains("bundled"), "{}", app.state.leptos_options.hash_file);
    let owner = app.setup_owner().await;
    let page = app.get("/account", Some(&owner)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let links: Vec<&str> =
        page.body.match_indices("/pkg/").map(|(i, _)| page.body[i..].split('"').next().unwrap()).collect();
    let bundles: Vec<&str> = links.iter().copied().filter(|l| l.starts_with("/pkg/bundled/bundle_")).collect();
    assert_eq!(bundles.len(), 1, "{links:?}");
    assert!(bundles[0].contains("_account_route_view_"), "{links:?}");
    assert!(!links.iter().any(|l| l.contains("/chunk_")), "a chunk preloaded alone: {links:?}");

    // The bundle: cached for good (its name says what it holds).
    let (status, headers, bundle) = app.get_raw(bundles[0], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some(murmur::server::assets::IMMUTABLE));
    // Its header: "MWB1", the count, then each file's place among the
    // loader's fetches and its length; then the files.
    let word = |i: usize| u32::from_le_bytes(bundle[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    assert_eq!(&bundle[..4], b"MWB1");
    let count = word(1);
    let files: Vec<(usize, usize)> = (0..count).map(|k| (word(2 + 2 * k), word(3 + 2 * k))).collect();
    assert_eq!(8 + 8 * count + files.iter().map(|(_, len)| len).sum::<usize>(), bundle.len());
    assert!(count > 1, "a page with no chunk: {count}");

    // The loader under its original name (the glue imports it by that name).
    let loader_link = links.iter().find(|l| l.contains("/__wasm_split.")).expect("the loader is preloaded");
    let (status, headers, loader) = app.get_raw(loader_link, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some(murmur::server::assets::IMMUTABLE));
    let loader = String::from_utf8(loader).unwrap();
    assert!(!loader.contains("fetch(new URL(\"./chunk_"), "a chunk fetched alone");
    let table = loader.lines().find_map(|l| l.strip_prefix("const __murmurBundles = ")).expect("the bundles' table");
    let table: serde_json::Value = serde_json::from_str(table.trim_end_matches(';')).unwrap();
    let (page_name, file) = table
        .as_object()
        .unwrap()
        .iter()
        .find(|(page, _)| page.contains("_account_route_view_"))
        .expect("the account page in the table");
    assert!(loader.contains(&format!("__murmurBundle(\"{page_name}\")")));
    assert_eq!(format!("/pkg/{}", file.as_str().unwrap().trim_start_matches("./")), bundles[0]);
    // Each file in the bundle is, byte for byte, the file the loader's
    // fetch number `i` would get alone: cargo-leptos' own loader (in the
    // site's pkg, under the same name) says which file that is.
    let original = std::fs::read_to_string(format!("target/site{loader_link}")).unwrap();
    let names: Vec<&str> =
        original.split("fetch(new URL(\"./").skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
    let mut at = 8 + 8 * count;
    for (i, len) in files {
        assert_eq!(
            loader.matches(&format!("__murmurFetch({i})")).count(),
            1,
            "fetch number {i} is not through the bundles"
        );
        let path = format!("/pkg/{}", names[i]);
        let (status, _, alone) = app.get_raw(&path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(alone == bundle[at..at + len], "{path} differs in the bundle");
        at += len;
    }
}
