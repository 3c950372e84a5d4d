//! Any input, as template and as property value: parsing and rendering never
//! panic, and the output holds only the engine's own few tags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use murmur::domain::template::{parse, render_html, render_text};

const ALLOWED: &[&str] =
    &["p>", "/p>", "br>", "strong>", "/strong>", "em>", "/em>", "ul>", "/ul>", "li>", "/li>", "a href=\"http", "/a>"];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (src, value) = s.split_at(s.char_indices().nth(s.chars().count() / 2).map_or(s.len(), |(i, _)| i));
    if let Ok(segs) = parse(src) {
        let html = render_html(&segs, |_| Some(value.to_string()));
        assert!(html.split('<').skip(1).all(|t| ALLOWED.iter().any(|ok| t.starts_with(ok))), "{html}");
        let _ = render_text(&segs, |_| None);
    }
});
