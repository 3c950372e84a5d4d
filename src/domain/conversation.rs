//! Conversations' pure rules: the light styling of the team's messages.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_and_escapes() {
        assert_eq!(team_html("**Yes**"), "<p><strong>Yes</strong></p>");
        let h = team_html("<script>alert(1)</script> {{ name }}");
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("{{ name }}"), "{h}");
    }
}
