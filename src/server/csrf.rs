//! Requests from elsewhere are refused before anything runs.
//!
//! **Host names (DNS rebinding).** A page on `evil.example` whose name is
//! made to resolve to murmur's address is, to the browser, same-origin with
//! murmur: it could read murmur's pages and call its server functions. Such
//! requests carry `Host: evil.example`, so every request must name the host
//! murmur answers as: `PUBLIC_URL`'s (or, with `TRUST_PROXY`, a proxy's
//! `X-Forwarded-Host`); without a `PUBLIC_URL`, an IP address or `localhost`
//! (a rebinding attack needs a name). Exempt: `/healthz` and `/metrics` (load
//! balancers and scrapers use internal names; metrics need a token) and the
//! REST API (`/v1.1/…`), which backends call by internal names and which
//! authenticates with a key, never a cookie.
//!
//! **Cross-site requests.** Leptos server functions check nothing by
//! themselves, so every state-changing request (any method but GET, HEAD,
//! OPTIONS) must come from a page of murmur's own origin. Browsers label
//! each request: `Sec-Fetch-Site` (all current browsers) and `Origin` (on
//! every cross-origin and every non-GET request), compared with
//! `PUBLIC_URL`'s origin when it is set. A request with neither is not from
//! a browser page and cannot carry a victim's cookies on an attacker's
//! behalf, so it is let through.

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, Method, Request, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use url::{Host, Url};

use super::AppState;

/// The name and origin this instance answers as.
#[derive(Debug, Clone)]
pub struct PublicHost {
    /// `PUBLIC_URL` parsed, when it is set.
    public: Option<Url>,
}

impl PublicHost {
    pub fn new(public_url: Option<&str>) -> Self {
        PublicHost { public: public_url.and_then(|u| Url::parse(u).ok()) }
    }

    /// Whether a request naming `host` (a `Host` header's value) is for
    /// this instance.
    pub fn allows(&self, host: &str) -> bool {
        // A Host header is `name[:port]`, nothing more.
        if host.is_empty() || host.contains(|c: char| matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace()) {
            return false;
        }
        match &self.public {
            Some(public) => {
                let Ok(asked) = Url::parse(&format!("{}://{host}/", public.scheme())) else { return false };
                asked.host() == public.host() && asked.port_or_known_default() == public.port_or_known_default()
            }
            None => {
                let Ok(asked) = Url::parse(&format!("http://{host}/")) else { return false };
                match asked.host() {
                    Some(Host::Ipv4(_) | Host::Ipv6(_)) => true,
                    Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                    None => false,
                }
            }
        }
    }

    /// Whether `url` (an `Origin` or `Referer`) is a page of this instance,
    /// for a request that named `host`.
    pub fn is_own_page(&self, url: &str, host: Option<&str>) -> bool {
        match &self.public {
            Some(public) => Url::parse(url).is_ok_and(|u| {
                u.scheme() == public.scheme()
                    && u.host() == public.host()
                    && u.port_or_known_default() == public.port_or_known_default()
            }),
            None => same_host(url, host),
        }
    }

    /// What a refused request is told.
    fn refusal(&self) -> String {
        match &self.public {
            Some(public) => format!(
                "This murmur answers only as {} (PUBLIC_URL). A reverse proxy in front of it must pass the Host header on \
                 (or X-Forwarded-Host, with TRUST_PROXY=true).",
                public.host_str().unwrap_or_default()
            ),
            None => "This murmur has no PUBLIC_URL, so it answers only to an IP address or localhost. Set PUBLIC_URL \
                     to the address people use to reach it."
                .to_string(),
        }
    }
}

/// The host a request names: a trusted proxy's `X-Forwarded-Host`, else `Host`.
pub fn requested_host(headers: &HeaderMap, trust_proxy: bool) -> Option<&str> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded = trust_proxy.then(|| text("x-forwarded-host")).flatten();
    forwarded.and_then(|f| f.split(',').next()).map(str::trim).or_else(|| text(header::HOST.as_str()))
}

fn host_exempt(path: &str) -> bool {
    path == "/healthz" || path == "/metrics" || path.starts_with("/v1.1/")
}

pub async fn refuse_foreign_requests(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let public = &state.config.public_host;
    let host = requested_host(req.headers(), state.config.trust_proxy);
    if !host_exempt(req.uri().path()) && !host.is_some_and(|h| public.allows(h)) {
        tracing::warn!(host = ?host, path = %req.uri().path(), "refused a request for another host name");
        let body = serde_json::json!({ "error": { "code": "wrong_host", "description": public.refusal() } });
        return (StatusCode::MISDIRECTED_REQUEST, axum::Json(body)).into_response();
    }
    if is_cross_site(&req, public, host) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "refused a cross-site request");
        let body = serde_json::json!({
            "error": { "code": "cross_site_request", "description": "Cross-site requests are refused." }
        });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

pub fn is_cross_site(req: &Request<Body>, public: &PublicHost, host: Option<&str>) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    // The REST API authenticates every call with an app key in the
    // Authorization header, never with cookies: a cross-site page cannot
    // borrow anyone's credentials there.
    if req.uri().path().starts_with("/v1.1/") {
        return false;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        // "none" is a request the user made directly (typed URL, bookmark).
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        return !public.is_own_page(origin, host);
    }
    if let Some(referer) = text(header::REFERER.as_str()) {
        return !public.is_own_page(referer, host);
    }
    false
}

/// Whether the URL's `host[:port]` is the request's `Host`.
pub fn same_host(url: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Ok(url) = url::Url::parse(url) else { return false };
    let Some(url_host) = url.host_str() else { return false };
    let authority = match url.port() {
        Some(p) => format!("{url_host}:{p}"),
        None => url_host.to_string(),
    };
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::builder().method(method).uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    fn cross(method: Method, public: &PublicHost, headers: &[(&str, &str)]) -> bool {
        let r = req(method, headers);
        let host = requested_host(r.headers(), false);
        is_cross_site(&r, public, host)
    }

    #[test]
    fn same_origin_passes_and_other_origins_do_not() {
        let p = PublicHost::new(None);
        let host = ("host", "127.0.0.1:3000");
        assert!(!cross(Method::POST, &p, &[host, ("origin", "http://127.0.0.1:3000")]));
        assert!(cross(Method::POST, &p, &[host, ("origin", "http://evil.example")]));
        assert!(cross(Method::POST, &p, &[host, ("origin", "http://127.0.0.1:3001")]));
        assert!(cross(Method::POST, &p, &[host, ("origin", "null")]));
        assert!(cross(Method::POST, &p, &[host, ("sec-fetch-site", "cross-site")]));
        assert!(cross(Method::POST, &p, &[host, ("sec-fetch-site", "same-site")]));
        assert!(!cross(Method::POST, &p, &[host, ("sec-fetch-site", "same-origin")]));
        assert!(cross(Method::POST, &p, &[host, ("referer", "https://evil.example/page")]));
        assert!(!cross(Method::POST, &p, &[host]));
        assert!(!cross(Method::GET, &p, &[host, ("origin", "http://evil.example")]));
    }

    #[test]
    fn with_a_public_url_only_its_origin_is_own() {
        let p = PublicHost::new(Some("https://murmur.example.com"));
        let host = ("host", "murmur.example.com");
        assert!(!cross(Method::POST, &p, &[host, ("origin", "https://murmur.example.com")]));
        assert!(!cross(Method::POST, &p, &[host, ("origin", "https://murmur.example.com:443")]));
        assert!(cross(Method::POST, &p, &[host, ("origin", "http://murmur.example.com")]));
        assert!(cross(Method::POST, &p, &[host, ("origin", "https://evil.example")]));
        // A rebound name: the browser sees its own origin, murmur does not.
        let rebound = [("host", "evil.example"), ("origin", "http://evil.example"), ("sec-fetch-site", "same-origin")];
        assert!(cross(Method::POST, &p, &rebound));
    }

    #[test]
    fn host_names_are_checked_against_the_public_url() {
        let p = PublicHost::new(Some("https://murmur.example.com"));
        assert!(p.allows("murmur.example.com"));
        assert!(p.allows("MURMUR.example.com:443"));
        assert!(!p.allows("murmur.example.com:8443"));
        assert!(!p.allows("evil.example"));
        assert!(!p.allows("127.0.0.1:3000"));
        assert!(!p.allows("murmur.example.com/x"));
        assert!(!p.allows(""));
        let local = PublicHost::new(Some("http://127.0.0.1:3000"));
        assert!(local.allows("127.0.0.1:3000"));
        assert!(!local.allows("127.0.0.1:3001"));
    }

    #[test]
    fn without_a_public_url_only_addresses_and_localhost_pass() {
        let p = PublicHost::new(None);
        for ok in ["127.0.0.1:3000", "[::1]:3000", "10.0.0.5", "localhost:3000", "LOCALHOST"] {
            assert!(p.allows(ok), "{ok}");
        }
        for no in ["evil.example:3000", "localhost.evil.example", "", "a b"] {
            assert!(!p.allows(no), "{no}");
        }
    }

    #[test]
    fn a_trusted_proxy_names_the_host() {
        let r = req(Method::GET, &[("host", "10.0.0.2:3000"), ("x-forwarded-host", "murmur.example.com, other")]);
        assert_eq!(requested_host(r.headers(), true), Some("murmur.example.com"));
        assert_eq!(requested_host(r.headers(), false), Some("10.0.0.2:3000"));
    }
}
