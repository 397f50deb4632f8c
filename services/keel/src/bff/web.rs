//! The pages the BFF serves to browsers, same origin as `/graphql`, every byte compiled
//! into the binary (nothing from a CDN, nothing built at run time):
//!
//! | path | what |
//! |---|---|
//! | `/` | the system's storefront (`bff.storefront`: its `index.html`), else a page of links |
//! | `/assets/app/…` | the storefront's files |
//! | `/assets/gen/client.js`, `/assets/gen/backoffice.js` | generated from the spec (`generated/web/`) |
//! | `/assets/keel/…` | keel's own: the back-office screens, the GraphQL console, their CSS |
//! | `/back-office/` | the back-office, generic over `backoffice.js` |
//! | `/graphiql` | the GraphQL console |
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline script, no framing), `nosniff` and no referrer; pages are
//! revalidated on each load (`no-cache`), so a new build shows at once.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};

use super::Bff;

/// keel's web files (`services/keel/web`).
static KEEL: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// The system's web files: what the generated BFF crate compiles in.
#[derive(Clone, Copy, Default)]
pub struct Web {
    /// `generated/web/` by file name: `client.js`, `backoffice.js`.
    pub generated: &'static [(&'static str, &'static str)],
    /// The hand-written storefront, if the spec names one.
    pub storefront: Option<&'static Dir<'static>>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field(
                "generated",
                &self.generated.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("storefront", &self.storefront.is_some())
            .finish()
    }
}

/// The policy of every page: only this origin's scripts, styles, images and requests.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn media_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// A file as an answer, with the page headers.
fn file(path: &str, body: &'static [u8]) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(media_type(path)));
    secure(h);
    res
}

fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn not_found() -> Response {
    let mut res = (StatusCode::NOT_FOUND, "not found\n").into_response();
    secure(res.headers_mut());
    res
}

/// A file of `dir` by its relative path; none for anything that is not plainly one.
fn lookup(dir: &'static Dir<'static>, path: &str) -> Option<&'static [u8]> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\'))
    {
        return None;
    }
    dir.get_file(path).map(|f| f.contents())
}

/// `/`: the storefront's `index.html`, or keel's page of links.
pub async fn index(State(bff): State<Bff>) -> Response {
    let page = bff
        .web
        .storefront
        .and_then(|d| lookup(d, "index.html"))
        .or_else(|| lookup(&KEEL, "landing.html"));
    match page {
        Some(body) => file("index.html", body),
        None => not_found(),
    }
}

/// `/back-office/` (and below: the screens route in the page).
pub async fn back_office() -> Response {
    match lookup(&KEEL, "back-office/index.html") {
        Some(body) => file("index.html", body),
        None => not_found(),
    }
}

/// `/back-office` without its slash.
pub async fn back_office_slash() -> Response {
    let mut res = StatusCode::PERMANENT_REDIRECT.into_response();
    res.headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/back-office/"));
    res
}

/// `/graphiql`: the GraphQL console.
pub async fn console() -> Response {
    match lookup(&KEEL, "console/index.html") {
        Some(body) => file("index.html", body),
        None => not_found(),
    }
}

/// `/assets/{area}/{path}`.
pub async fn asset(State(bff): State<Bff>, Path(path): Path<String>) -> Response {
    let Some((area, rest)) = path.split_once('/') else {
        return not_found();
    };
    let body = match area {
        "keel" => lookup(&KEEL, rest),
        "app" => bff.web.storefront.and_then(|d| lookup(d, rest)),
        "gen" => bff
            .web
            .generated
            .iter()
            .find(|(name, _)| *name == rest)
            .map(|(_, text)| text.as_bytes()),
        _ => None,
    };
    match body {
        Some(body) => file(rest, body),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_files() {
        assert!(lookup(&KEEL, "back-office/index.html").is_some());
        assert!(lookup(&KEEL, "console/index.html").is_some());
        for bad in [
            "",
            "/back-office/index.html",
            "back-office/../back-office/index.html",
            "./landing.html",
            "back-office//index.html",
            "back-office\\index.html",
            "nothing.js",
        ] {
            assert!(lookup(&KEEL, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type("a/b.JS"), "text/javascript; charset=utf-8");
        assert_eq!(media_type("x.css"), "text/css; charset=utf-8");
        assert_eq!(media_type("noext"), "application/octet-stream");
    }
}
