//! Conversations' pure rules: the light styling of the team's messages,
//! and the plain words a list shows of them.

use super::template;

/// A team message's light styling (the whispers' markdown subset: bold,
/// italic, links, lists) as sanitised HTML. No placeholders: `{{` stays as
/// typed. Every piece of text is escaped.
pub fn team_html(text: &str) -> String {
    let literal = text.replace("{{", "\\{{");
    match template::parse(&literal) {
        Ok(segments) => template::render_html(&segments, |_| None),
        Err(_) => format!("<p>{}</p>", template::escape_html(text)),
    }
}

/// A team message as the inbox list and the widget's list preview it:
/// the words of its light styling without the markers (`**Yes**` reads
/// "Yes", a link its label), blocks and lines joined by spaces. Read off
/// `team_html`, so the preview and the message agree on what is styling.
pub fn team_preview(text: &str) -> String {
    let html = team_html(text);
    let mut words = String::with_capacity(html.len());
    let mut tag: Option<String> = None;
    for ch in html.chars() {
        match (&mut tag, ch) {
            (None, '<') => tag = Some(String::new()),
            (Some(t), '>') => {
                // Block ends and line breaks separate words; inline tags do not.
                if matches!(t.as_str(), "/p" | "br" | "/li") {
                    words.push(' ');
                }
                tag = None;
            }
            (Some(t), c) => t.push(c),
            (None, c) => words.push(c),
        }
    }
    let words = words
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    words.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_plain_words() {
        assert_eq!(team_preview("**Yes**, see [the docs](https://example.com/d)"), "Yes, see the docs");
        assert_eq!(team_preview("Two things:\n\n- *one*\n- two & <three>"), "Two things: one two & <three>");
        assert_eq!(team_preview("a {{ name }} b"), "a {{ name }} b");
        assert_eq!(team_preview("5 * 3 = 15"), "5 * 3 = 15");
    }

    #[test]
    fn styles_and_escapes() {
        assert_eq!(team_html("**Yes**"), "<p><strong>Yes</strong></p>");
        let h = team_html("<script>alert(1)</script> {{ name }}");
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("{{ name }}"), "{h}");
    }
}
