//! Apps: one customer product each. Name validation and the install snippet
//! (the exact text a customer pastes into their site).

use super::{parse_name, Invalid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppName(String);

impl AppName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        parse_name("name", "an app name", raw, 80).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Public app ids are 24 lowercase hex characters.
pub fn is_app_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The install snippet for an app. It defines a queue-backed `Murmur` object
/// at once (so `Murmur.track(...)` calls made before the loader arrives are
/// kept), then loads the loader asynchronously from murmur itself.
///
/// `base_url` and `app_id` are server-controlled (origin from configuration,
/// id generated as hex), and are JSON-encoded into the script so that neither
/// can break out of the string literal.
pub fn install_snippet(base_url: &str, app_id: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let loader = js_string(&format!("{base}/widget/loader.js"));
    let app = js_string(app_id);
    format!(
        r#"<script>
  (function (w, d) {{
    var m = (w.Murmur = w.Murmur || {{ _q: [] }});
    ["init", "login", "logout", "track", "updateUser", "open", "close", "on"].forEach(function (k) {{
      m[k] = m[k] || function () {{ m._q.push([k, [].slice.call(arguments)]); }};
    }});
    var s = d.createElement("script");
    s.async = true;
    s.src = {loader};
    d.head.appendChild(s);
  }})(window, document);
  Murmur.init({{ appId: {app} }});
</script>"#
    )
}

/// A JavaScript string literal that is also safe inside an HTML `<script>`.
fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_required() {
        assert_eq!(AppName::parse(" Shop ").unwrap().as_str(), "Shop");
        assert_eq!(AppName::parse("").unwrap_err().message, "Enter an app name.");
    }

    #[test]
    fn app_ids_are_24_hex() {
        assert!(is_app_id("0123456789abcdef01234567"));
        assert!(!is_app_id("0123456789abcdef0123456"));
        assert!(!is_app_id("0123456789abcdef0123456G"));
    }

    #[test]
    fn snippet_names_loader_and_app() {
        let s = install_snippet("https://murmur.example.com/", "0123456789abcdef01234567");
        assert!(s.contains(r#"s.src = "https://murmur.example.com/widget/loader.js";"#));
        assert!(s.contains(r#"Murmur.init({ appId: "0123456789abcdef01234567" });"#));
        assert!(s.starts_with("<script>") && s.ends_with("</script>"));
    }

    #[test]
    fn snippet_cannot_be_broken_out_of() {
        let s = install_snippet("https://x\"</script><script>alert(1)//", "a");
        assert_eq!(s.matches("</script>").count(), 1, "{s}");
    }
}
