//! Cross-site request refusal. Leptos server functions check nothing by
//! themselves, so every state-changing request (any method but GET, HEAD,
//! OPTIONS) must come from a page of this same origin.
//!
//! Browsers label each request: `Sec-Fetch-Site` (all current browsers) and
//! `Origin` (on every cross-origin and every non-GET request). A request
//! with neither is not from a browser page and cannot carry a victim's
//! cookies on an attacker's behalf, so it is let through.

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

pub async fn refuse_cross_site(req: Request<Body>, next: Next) -> Response {
    if is_cross_site(&req) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "refused a cross-site request");
        let body = serde_json::json!({
            "error": { "code": "cross_site_request", "description": "Cross-site requests are refused." }
        });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(req).await
}

pub fn is_cross_site(req: &Request<Body>) -> bool {
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
        return !matches!(site, "same-origin" | "none");
    }
    let host = text(header::HOST.as_str());
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        return !same_host(origin, host);
    }
    if let Some(referer) = text(header::REFERER.as_str()) {
        return !same_host(referer, host);
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

    #[test]
    fn same_origin_passes_and_other_origins_do_not() {
        let host = ("host", "127.0.0.1:3000");
        assert!(!is_cross_site(&req(Method::POST, &[host, ("origin", "http://127.0.0.1:3000")])));
        assert!(is_cross_site(&req(Method::POST, &[host, ("origin", "http://evil.example")])));
        assert!(is_cross_site(&req(Method::POST, &[host, ("origin", "http://127.0.0.1:3001")])));
        assert!(is_cross_site(&req(Method::POST, &[host, ("origin", "null")])));
        assert!(is_cross_site(&req(Method::POST, &[host, ("sec-fetch-site", "cross-site")])));
        assert!(is_cross_site(&req(Method::POST, &[host, ("sec-fetch-site", "same-site")])));
        assert!(!is_cross_site(&req(Method::POST, &[host, ("sec-fetch-site", "same-origin")])));
        assert!(is_cross_site(&req(Method::POST, &[host, ("referer", "https://evil.example/page")])));
        assert!(!is_cross_site(&req(Method::POST, &[host])));
        assert!(!is_cross_site(&req(Method::GET, &[host, ("origin", "http://evil.example")])));
    }
}
