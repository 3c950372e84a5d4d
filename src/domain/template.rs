//! The personalisation template engine, shared by the editor's live preview
//! (in the browser) and real delivery (on the server).
//!
//! Grammar: `{{ name }}` or `{{ name || fallback text }}` (spaces optional),
//! where `name` is any built-in or custom property; `\{{` writes a literal
//! `{{`. An unset property renders its fallback (or nothing).
//!
//! Styling is a small markdown subset: `**bold**`, `*italic*`,
//! `[label](https://…)`, line breaks, and lists (lines starting `- `).
//! The output is HTML built only from `<p> <br> <strong> <em> <a> <ul> <li>`;
//! every piece of text (template and property values alike) is escaped, and
//! links are kept only for http(s) URLs. Property values are substituted
//! after the markdown pass, so a value can never add markup.

/// One parsed piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Placeholder { name: String, fallback: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Character offset of the problem.
    pub at: usize,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Parses a template, reporting the first malformed placeholder.
pub fn parse(src: &str) -> Result<Vec<Segment>, TemplateError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'{') && chars.get(i + 2) == Some(&'{') {
            text.push_str("{{");
            i += 3;
            continue;
        }
        if chars[i] == '{' && chars.get(i + 1) == Some(&'{') {
            let start = i;
            let close = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == '}' && chars[j + 1] == '}');
            let Some(close) = close else {
                return Err(TemplateError { at: start, message: "A placeholder is not closed: add }}.".into() });
            };
            let inner: String = chars[i + 2..close].iter().collect();
            if inner.contains("{{") {
                return Err(TemplateError {
                    at: start,
                    message: "A placeholder is not closed before the next {{.".into(),
                });
            }
            let (name, fallback) = match inner.split_once("||") {
                Some((n, f)) => (n.trim().to_string(), Some(f.trim().to_string())),
                None => (inner.trim().to_string(), None),
            };
            if !valid_name(&name) {
                let message = if name.is_empty() {
                    "A placeholder needs a property name, like {{ firstName }}.".to_string()
                } else {
                    format!("{name:?} is not a property name (letters, digits, _ and -).")
                };
                return Err(TemplateError { at: start, message });
            }
            if !text.is_empty() {
                out.push(Segment::Text(std::mem::take(&mut text)));
            }
            out.push(Segment::Placeholder { name, fallback });
            i = close + 2;
            continue;
        }
        text.push(chars[i]);
        i += 1;
    }
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
    Ok(out)
}

/// The property names a template uses (for the editor and validation).
pub fn placeholders(segments: &[Segment]) -> Vec<&str> {
    segments
        .iter()
        .filter_map(|s| match s {
            Segment::Placeholder { name, .. } => Some(name.as_str()),
            Segment::Text(_) => None,
        })
        .collect()
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

// Private-use characters mark where placeholder values go during the
// markdown pass; any such characters in the source are dropped first.
const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

/// Renders a template to sanitised HTML; `value` gives a property's text
/// (None when unset).
pub fn render_html(segments: &[Segment], value: impl Fn(&str) -> Option<String>) -> String {
    let mut marked = String::new();
    let mut values = Vec::new();
    for s in segments {
        match s {
            Segment::Text(t) => marked.extend(t.chars().filter(|c| *c != MARK_OPEN && *c != MARK_CLOSE)),
            Segment::Placeholder { name, fallback } => {
                let v = value(name).filter(|v| !v.is_empty()).or_else(|| fallback.clone()).unwrap_or_default();
                marked.push(MARK_OPEN);
                marked.push_str(&values.len().to_string());
                marked.push(MARK_CLOSE);
                values.push(v);
            }
        }
    }
    let html = markdown(&marked);
    // Substitute the escaped values for their marks.
    let mut out = String::with_capacity(html.len());
    let mut rest = html.as_str();
    while let Some(open) = rest.find(MARK_OPEN) {
        out.push_str(&rest[..open]);
        let after = &rest[open + MARK_OPEN.len_utf8()..];
        match after.find(MARK_CLOSE) {
            Some(close) => {
                let idx: usize = after[..close].parse().unwrap_or(usize::MAX);
                if let Some(v) = values.get(idx) {
                    let clean: String = v.chars().filter(|c| *c != MARK_OPEN && *c != MARK_CLOSE).collect();
                    out.push_str(&escape_html(&clean));
                }
                rest = &after[close + MARK_CLOSE.len_utf8()..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Renders to plain text (for notifications and emails without HTML):
/// markdown markers stay as typed, values are substituted.
pub fn render_text(segments: &[Segment], value: impl Fn(&str) -> Option<String>) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text(t) => t.clone(),
            Segment::Placeholder { name, fallback } => {
                value(name).filter(|v| !v.is_empty()).or_else(|| fallback.clone()).unwrap_or_default()
            }
        })
        .collect()
}

/// Paragraphs (blank lines), lists (`- ` lines), line breaks, then inline.
fn markdown(src: &str) -> String {
    let src = src.replace("\r\n", "\n");
    let mut out = String::new();
    for block in src.split("\n\n").map(|b| b.trim_matches('\n')).filter(|b| !b.trim().is_empty()) {
        let lines: Vec<&str> = block.lines().collect();
        if lines.iter().all(|l| l.trim_start().starts_with("- ")) {
            out.push_str("<ul>");
            for l in lines {
                out.push_str("<li>");
                out.push_str(&inline(l.trim_start()[2..].trim()));
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        } else {
            out.push_str("<p>");
            out.push_str(&lines.iter().map(|l| inline(l)).collect::<Vec<_>>().join("<br>"));
            out.push_str("</p>");
        }
    }
    out
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == MARK_OPEN || c == '"' || c == '<' || c == '>')
}

/// Bold, italic and links within one line; everything else escaped.
fn inline(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**").filter(|&e| e > 0) {
                out.push_str("<strong>");
                out.push_str(&inline(&after[..end]));
                out.push_str("</strong>");
                rest = &after[end + 2..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix('*') {
            if let Some(end) = after.find('*').filter(|&e| e > 0 && !after.starts_with(' ')) {
                out.push_str("<em>");
                out.push_str(&inline(&after[..end]));
                out.push_str("</em>");
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix('[') {
            if let Some(mid) = after.find("](") {
                if let Some(end) = after[mid + 2..].find(')') {
                    let label = &after[..mid];
                    let url = &after[mid + 2..mid + 2 + end];
                    if safe_url(url) && !label.is_empty() {
                        out.push_str(&format!(
                            "<a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">{}</a>",
                            escape_html(url.trim()),
                            inline(label)
                        ));
                        rest = &after[mid + 2 + end + 1..];
                        continue;
                    }
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push_str(&escape_html(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(src: &str, first_name: Option<&str>) -> String {
        let segs = parse(src).unwrap();
        render_html(&segs, |n| if n == "firstName" { first_name.map(String::from) } else { None })
    }

    #[test]
    fn placeholders_with_and_without_fallbacks() {
        assert_eq!(html("Hi {{ firstName || there }}!", Some("Ada")), "<p>Hi Ada!</p>");
        assert_eq!(html("Hi {{firstName||there}}!", None), "<p>Hi there!</p>");
        assert_eq!(html("Hi {{ firstName }}!", None), "<p>Hi !</p>");
        assert_eq!(html("Hi {{ plan || }}.", None), "<p>Hi .</p>");
        assert_eq!(html(r"Use \{{ like this", None), "<p>Use {{ like this</p>");
    }

    #[test]
    fn values_are_escaped_and_never_markup() {
        assert_eq!(html("Hi {{ firstName }}", Some("<script>x</script>")), "<p>Hi &lt;script&gt;x&lt;/script&gt;</p>");
        assert_eq!(
            html("Hi {{ firstName }}", Some("**bold** [x](https://e.com)")),
            "<p>Hi **bold** [x](https://e.com)</p>"
        );
        assert_eq!(html("**{{ firstName }}**", Some("Ada")), "<p><strong>Ada</strong></p>");
        assert_eq!(html("Hi {{ firstName || <b>you</b> }}", None), "<p>Hi &lt;b&gt;you&lt;/b&gt;</p>");
    }

    #[test]
    fn markdown_subset() {
        assert_eq!(html("**b** and *i*", None), "<p><strong>b</strong> and <em>i</em></p>");
        assert_eq!(html("a\nb\n\nc", None), "<p>a<br>b</p><p>c</p>");
        assert_eq!(html("- one\n- two", None), "<ul><li>one</li><li>two</li></ul>");
        assert_eq!(
            html("[rate us](https://example.com/r?a=1&b=2)", None),
            "<p><a href=\"https://example.com/r?a=1&amp;b=2\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">rate us</a></p>"
        );
        assert_eq!(html("[x](javascript:alert(1))", None), "<p>[x](javascript:alert(1))</p>");
        assert_eq!(html("<img src=x onerror=alert(1)>", None), "<p>&lt;img src=x onerror=alert(1)&gt;</p>");
        assert_eq!(html("2 * 3 * 4", None), "<p>2 * 3 * 4</p>");
    }

    #[test]
    fn malformed_placeholders_are_explained() {
        assert_eq!(parse("Hi {{ firstName").unwrap_err().message, "A placeholder is not closed: add }}.");
        assert_eq!(
            parse("Hi {{ }}").unwrap_err().message,
            "A placeholder needs a property name, like {{ firstName }}."
        );
        assert!(parse("Hi {{ first name }}").unwrap_err().message.contains("is not a property name"));
        assert!(parse("{{ a {{ b }}").is_err());
        assert_eq!(parse("Hi {{ firstName").unwrap_err().at, 3);
    }

    #[test]
    fn text_rendering() {
        let segs = parse("Hi {{ firstName || there }}, **welcome**").unwrap();
        assert_eq!(render_text(&segs, |_| None), "Hi there, **welcome**");
        assert_eq!(placeholders(&segs), ["firstName"]);
    }

    /// Random inputs built from the characters that matter: rendering never
    /// panics and never lets markup, handlers or script URLs through.
    #[test]
    fn random_templates_render_safely() {
        let alphabet: Vec<&str> = vec![
            "{{",
            "}}",
            "||",
            "\\",
            "*",
            "**",
            "[",
            "](",
            ")",
            "- ",
            "\n",
            "\n\n",
            "<",
            ">",
            "\"",
            "'",
            "&",
            "a",
            " ",
            "firstName",
            "javascript:",
            "https://x.io",
            "onerror=",
            "<script>",
            "\u{E000}",
            "\u{E001}",
            "é",
            "0",
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let src: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let value =
                (0..(next() % 6)).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect::<String>();
            if let Ok(segs) = parse(&src) {
                let out = render_html(&segs, |_| Some(value.clone()));
                assert!(!out.contains("<script"), "{src:?} → {out}");
                assert!(!out.contains("<img"), "{src:?} → {out}");
                assert!(!out.to_ascii_lowercase().contains("href=\"javascript"), "{src:?} → {out}");
                let tags_ok = out.split('<').skip(1).all(|t| {
                    [
                        "p>",
                        "/p>",
                        "br>",
                        "strong>",
                        "/strong>",
                        "em>",
                        "/em>",
                        "ul>",
                        "/ul>",
                        "li>",
                        "/li>",
                        "a href=\"http",
                        "/a>",
                    ]
                    .iter()
                    .any(|ok| t.starts_with(ok))
                });
                assert!(tags_ok, "{src:?} → {out}");
                assert!(!out.contains('\u{E000}') && !out.contains('\u{E001}'));
            }
        }
    }
}
