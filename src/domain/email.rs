//! Email: an app's SMTP settings (validated here, for the settings form
//! and the server alike) and the plain-text part of an email made from
//! the sanitised HTML the template engine renders (`template::render_html`).
//! Pure: sending is `engine::email`.

use serde::{Deserialize, Serialize};

use super::{teammate::Email, Invalid};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain text (a relay on the same host or network only).
    None,
    /// STARTTLS, required (usually port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

impl SmtpSecurity {
    pub const ALL: [SmtpSecurity; 3] = [SmtpSecurity::StartTls, SmtpSecurity::Tls, SmtpSecurity::None];

    /// The form's and the stored JSON's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::None => "none",
            SmtpSecurity::StartTls => "start_tls",
            SmtpSecurity::Tls => "tls",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SmtpSecurity::None => "None (unencrypted)",
            SmtpSecurity::StartTls => "STARTTLS",
            SmtpSecurity::Tls => "TLS (SMTPS)",
        }
    }

    /// The port servers usually take this on.
    pub fn usual_port(self) -> u16 {
        match self {
            SmtpSecurity::None => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        SmtpSecurity::ALL
            .into_iter()
            .find(|s| s.as_str() == raw.trim())
            .ok_or_else(|| Invalid::new("security", "Choose how the connection is secured."))
    }
}

/// An app's SMTP server, stored as JSON beside the app (`apps.smtp_settings`;
/// the password is sealed apart, never in here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// None: the server takes mail without signing in.
    pub username: Option<String>,
    pub from_address: String,
}

pub const MAX_HOST_CHARS: usize = 253;
pub const MAX_USERNAME_CHARS: usize = 254;
pub const MAX_SMTP_PASSWORD_CHARS: usize = 1024;

fn check_host(raw: &str) -> Result<String, Invalid> {
    let host = raw.trim();
    if host.is_empty() {
        return Err(Invalid::new("host", "Enter the SMTP server's host name, like smtp.example.com."));
    }
    if host.contains("://") || host.contains('/') || host.contains('@') {
        return Err(Invalid::new("host", "Enter the host name only, like smtp.example.com (no scheme, user or path)."));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::new("host", "A host name cannot contain spaces or control characters."));
    }
    if host.chars().count() > MAX_HOST_CHARS {
        return Err(Invalid::new("host", format!("A host name has at most {MAX_HOST_CHARS} characters.")));
    }
    Ok(host.to_string())
}

fn check_port(raw: &str) -> Result<u16, Invalid> {
    let bad = || Invalid::new("port", "Enter a port from 1 to 65535 (usually 587, 465 or 25).");
    match raw.trim().parse::<u32>() {
        Ok(p @ 1..=65_535) => u16::try_from(p).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn check_username(raw: &str) -> Result<Option<String>, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new("username", "A user name cannot contain control characters."));
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(Invalid::new("username", format!("A user name has at most {MAX_USERNAME_CHARS} characters.")));
    }
    Ok(Some(name.to_string()))
}

fn check_from(raw: &str) -> Result<String, Invalid> {
    Email::parse(raw).map(|e| e.as_str().to_string()).map_err(|e| {
        Invalid::new("from_address", e.message.replace("an email address", "the address emails come from"))
    })
}

/// A new SMTP password as typed: empty means "keep the stored one".
pub fn check_password(raw: &str) -> Result<Option<String>, Invalid> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().any(char::is_control) {
        return Err(Invalid::new("password", "A password cannot contain control characters."));
    }
    if raw.chars().count() > MAX_SMTP_PASSWORD_CHARS {
        return Err(Invalid::new("password", format!("A password has at most {MAX_SMTP_PASSWORD_CHARS} characters.")));
    }
    Ok(Some(raw.to_string()))
}

impl SmtpSettings {
    /// The settings form's fields, each checked (every problem at once,
    /// by field: `host`, `port`, `security`, `username`, `from_address`).
    pub fn parse(
        host: &str,
        port: &str,
        security: &str,
        username: &str,
        from_address: &str,
    ) -> Result<SmtpSettings, Vec<Invalid>> {
        let (host, port, security, username, from) = (
            check_host(host),
            check_port(port),
            SmtpSecurity::parse(security),
            check_username(username),
            check_from(from_address),
        );
        match (host, port, security, username, from) {
            (Ok(host), Ok(port), Ok(security), Ok(username), Ok(from_address)) => {
                Ok(SmtpSettings { host, port, security, username, from_address })
            }
            (h, p, s, u, f) => Err([h.err(), p.err(), s.err(), u.err(), f.err()].into_iter().flatten().collect()),
        }
    }

    /// Whether settings built elsewhere (read back from storage, say)
    /// would pass `parse` unchanged.
    pub fn check(&self) -> Result<(), Vec<Invalid>> {
        let username = self.username.as_deref().unwrap_or("");
        let parsed = SmtpSettings::parse(
            &self.host,
            &self.port.to_string(),
            self.security.as_str(),
            username,
            &self.from_address,
        )?;
        if parsed != *self {
            return Err(vec![Invalid::new("host", "The settings are not in their normal form.")]);
        }
        Ok(())
    }

    /// The domain of the from address (Message-IDs are made under it).
    pub fn from_domain(&self) -> &str {
        self.from_address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// The plain-text alternative of a sanitised HTML body (the template
/// engine's tags: `p`, `br`, `strong`/`b`, `em`/`i`, `a href`, `ul`/`ol`,
/// `li`). Paragraphs and lists are separated by blank lines, list items
/// become `- item` (`1. item` in an ordered list), a link becomes
/// `text (url)` (just the URL when the text is the URL), entities are
/// decoded, and runs of white space collapse as a browser shows them.
/// Unknown tags are dropped with their text kept, `script` and `style`
/// with their content.
pub fn html_to_text(html: &str) -> String {
    let mut t = TextWriter::default();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            t.text(&decode_entities(rest));
            break;
        };
        if open > 0 {
            t.text(&decode_entities(&rest[..open]));
        }
        let after = &rest[open + 1..];
        if let Some(comment) = after.strip_prefix("!--") {
            rest = comment.find("-->").map(|end| &comment[end + 3..]).unwrap_or("");
            continue;
        }
        let Some(close) = tag_end(after) else {
            // A lone '<' is text.
            t.text("<");
            rest = after;
            continue;
        };
        let inner = &after[..close];
        rest = &after[close + 1..];
        let (closing, name, attrs) = split_tag(inner);
        match (closing, name.as_str()) {
            (false, "script" | "style") => {
                // Drop everything up to the closing tag.
                let end = format!("</{name}");
                rest = match find_ci(rest, &end) {
                    Some(i) => rest[i..].find('>').map(|j| &rest[i + j + 1..]).unwrap_or(""),
                    None => "",
                };
            }
            (_, "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "blockquote" | "table" | "tr") => t.block(),
            (_, "br") => t.line_break(),
            (false, "ul" | "ol") => {
                // A nested list goes on the next line; a list starts a block.
                if t.lists.is_empty() {
                    t.block();
                } else {
                    t.line();
                }
                t.lists.push(if name == "ol" { Some(0) } else { None });
            }
            (true, "ul" | "ol") => {
                t.lists.pop();
                if t.lists.is_empty() {
                    t.block();
                } else {
                    t.line();
                }
            }
            (false, "li") => t.item(),
            (true, "li") => t.line(),
            (false, "a") => {
                t.links.push((attr(attrs, "href").map(|h| decode_entities(&h)), t.out.len()));
            }
            (true, "a") => t.end_link(),
            _ => {}
        }
    }
    t.finish()
}

/// Where a tag that starts after '<' ends (its '>', outside quotes).
fn tag_end(s: &str) -> Option<usize> {
    let first = s.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '/' || first == '!') {
        return None;
    }
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// (closing?, lower-case name, attributes) of a tag's inside.
fn split_tag(inner: &str) -> (bool, String, &str) {
    let inner = inner.trim_end_matches('/');
    let (closing, inner) = match inner.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let end = inner.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(inner.len());
    (closing, inner[..end].to_ascii_lowercase(), &inner[end..])
}

/// An attribute's raw value (quoted or not).
fn attr(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(rest.len());
        let key = rest[..end].to_ascii_lowercase();
        rest = rest[end..].trim_start();
        let value = if let Some(v) = rest.strip_prefix('=') {
            let v = v.trim_start();
            match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = v[1..].find(q).map(|i| i + 1).unwrap_or(v.len());
                    rest = v.get(close + 1..).unwrap_or("");
                    v[1..close].to_string()
                }
                _ => {
                    let e = v.find(char::is_whitespace).unwrap_or(v.len());
                    rest = &v[e..];
                    v[..e].to_string()
                }
            }
        } else {
            String::new()
        };
        if key == name {
            return Some(value);
        }
    }
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.to_ascii_lowercase();
    h.find(&needle.to_ascii_lowercase())
}

/// Decodes the named entities HTML email bodies use and every numeric one.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').filter(|&i| i <= 10);
        let decoded = semi.and_then(|i| {
            let name = &after[..i];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let n = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(dec) = name.strip_prefix('#') {
                        dec.parse::<u32>().ok()
                    } else {
                        None
                    };
                    n.map(|n| char::from_u32(n).filter(|c| *c != '\0').unwrap_or('\u{fffd}'))
                }
            };
            c.map(|c| (c, i))
        });
        match decoded {
            Some((c, i)) => {
                out.push(c);
                rest = &after[i + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Default)]
struct TextWriter {
    out: String,
    /// Open lists: `None` for `ul`, `Some(n)` for an `ol` at item n.
    lists: Vec<Option<u32>>,
    /// Open links: (href, where the link's text starts in `out`).
    links: Vec<(Option<String>, usize)>,
}

impl TextWriter {
    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    /// Text, its white space collapsed as HTML shows it.
    fn text(&mut self, s: &str) {
        for c in s.chars() {
            if c.is_ascii_whitespace() {
                if !self.at_line_start() && !self.out.ends_with(' ') {
                    self.out.push(' ');
                }
            } else if c == '\u{a0}' {
                self.out.push(' ');
            } else {
                self.out.push(c);
            }
        }
    }

    fn trim_trailing_spaces(&mut self) {
        let kept = self.out.trim_end_matches(' ').len();
        self.out.truncate(kept);
    }

    /// Ends the current line.
    fn line(&mut self) {
        self.trim_trailing_spaces();
        if !self.at_line_start() {
            self.out.push('\n');
        }
    }

    fn line_break(&mut self) {
        self.trim_trailing_spaces();
        self.out.push('\n');
    }

    /// Starts a block: a blank line after whatever came before.
    fn block(&mut self) {
        self.line();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn item(&mut self) {
        self.line();
        let depth = self.lists.len().saturating_sub(1);
        self.out.push_str(&"  ".repeat(depth));
        match self.lists.last_mut() {
            Some(Some(n)) => {
                *n += 1;
                let n = *n;
                self.out.push_str(&format!("{n}. "));
            }
            _ => self.out.push_str("- "),
        }
    }

    fn end_link(&mut self) {
        let Some((href, start)) = self.links.pop() else { return };
        let Some(href) = href.map(|h| h.trim().to_string()).filter(|h| !h.is_empty()) else { return };
        let start = start.min(self.out.len());
        let label = self.out[start..].trim();
        if label.is_empty() {
            self.out.push_str(&href);
        } else if label != href && label.trim_end_matches('/') != href.trim_end_matches('/') {
            self.trim_trailing_spaces();
            self.out.push_str(&format!(" ({href})"));
        }
    }

    fn finish(mut self) -> String {
        self.trim_trailing_spaces();
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        let mut out = String::with_capacity(self.out.len());
        let mut blank = 0;
        for l in lines {
            if l.is_empty() {
                blank += 1;
                continue;
            }
            if !out.is_empty() {
                out.push_str(if blank > 0 { "\n\n" } else { "\n" });
            }
            blank = 0;
            out.push_str(l);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template;

    fn rendered(src: &str) -> String {
        template::render_html(&template::parse(src).unwrap(), |_| None)
    }

    #[test]
    fn paragraphs_lines_and_styling() {
        assert_eq!(
            html_to_text("<p>Hello <strong>Ada</strong>,</p><p>second <em>one</em></p>"),
            "Hello Ada,\n\nsecond one"
        );
        assert_eq!(html_to_text(&rendered("a\nb\n\nc")), "a\nb\n\nc");
        assert_eq!(html_to_text("<p><b>x</b> <i>y</i></p>"), "x y");
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("plain   text\n here"), "plain text here");
    }

    #[test]
    fn links_show_their_url() {
        assert_eq!(
            html_to_text(&rendered("Please [rate us](https://example.com/r?a=1&b=2) today")),
            "Please rate us (https://example.com/r?a=1&b=2) today"
        );
        assert_eq!(html_to_text("<a href=\"https://x.io\">https://x.io</a>"), "https://x.io");
        assert_eq!(html_to_text("<a href='https://x.io/'></a>"), "https://x.io/");
        assert_eq!(html_to_text("<a>no href</a>"), "no href");
    }

    #[test]
    fn lists_become_dashes() {
        assert_eq!(html_to_text(&rendered("Intro\n\n- one\n- **two**\n\nOutro")), "Intro\n\n- one\n- two\n\nOutro");
        assert_eq!(html_to_text("<ol><li>a</li><li>b</li></ol>"), "1. a\n2. b");
        assert_eq!(html_to_text("<ul><li>a<ul><li>b</li></ul></li></ul>"), "- a\n  - b");
    }

    #[test]
    fn entities_are_decoded_once() {
        assert_eq!(
            html_to_text("<p>&lt;b&gt; &amp;amp; &quot;q&quot; &#39;s&#39; &#x263A; &#233;&nbsp;x</p>"),
            "<b> &amp; \"q\" 's' \u{263a} é x"
        );
        assert_eq!(html_to_text(&rendered("Tom & Jerry <3")), "Tom & Jerry <3");
        assert_eq!(decode_entities("a & b &unknown; &#0; &#xzz;"), "a & b &unknown; \u{fffd} &#xzz;");
    }

    #[test]
    fn scripts_styles_and_comments_vanish() {
        assert_eq!(html_to_text("<style>p{}</style><p>a<!-- hidden --></p><script>x<y</script>b"), "a\n\nb");
        assert_eq!(html_to_text("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
    }

    #[test]
    fn settings_are_checked_by_field() {
        let s = SmtpSettings::parse(" smtp.example.com ", "587", "start_tls", " mailer ", "Team@Example.com").unwrap();
        assert_eq!(
            s,
            SmtpSettings {
                host: "smtp.example.com".into(),
                port: 587,
                security: SmtpSecurity::StartTls,
                username: Some("mailer".into()),
                from_address: "team@example.com".into(),
            }
        );
        assert!(s.check().is_ok());
        assert_eq!(s.from_domain(), "example.com");
        assert_eq!(SmtpSettings::parse("h", "25", "none", "", "a@b.io").unwrap().username, None);
        let errs = SmtpSettings::parse("smtp example.com", "0", "ssl", "a\u{7}", "nope").unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["host", "port", "security", "username", "from_address"]);
        for bad in ["", "  ", "smtp://x.io", "x.io/path", "user@x.io", "a\tb"] {
            assert_eq!(SmtpSettings::parse(bad, "25", "tls", "", "a@b.io").unwrap_err()[0].field, "host", "{bad:?}");
        }
        for bad in ["", "x", "-1", "65536", "0", "1.5"] {
            assert_eq!(SmtpSettings::parse("h", bad, "tls", "", "a@b.io").unwrap_err()[0].field, "port", "{bad:?}");
        }
        assert_eq!(SmtpSettings::parse("h", "65535", "tls", "", "a@b.io").unwrap().port, 65535);
        assert!(SmtpSettings { port: 0, ..s.clone() }.check().is_err());
        assert!(SmtpSettings { host: " padded".into(), ..s }.check().is_err());
    }

    #[test]
    fn security_and_passwords() {
        for s in SmtpSecurity::ALL {
            assert_eq!(SmtpSecurity::parse(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(check_password("").unwrap(), None);
        assert_eq!(check_password(" s3cret ").unwrap().as_deref(), Some(" s3cret "));
        assert_eq!(check_password("a\nb").unwrap_err().field, "password");
    }

    #[test]
    fn stored_json_round_trips() {
        let s = SmtpSettings::parse("mail.x.io", "465", "tls", "", "hi@x.io").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"security\":\"tls\""), "{json}");
        assert_eq!(serde_json::from_str::<SmtpSettings>(&json).unwrap(), s);
    }
}
