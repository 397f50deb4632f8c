//! Cross-origin access: only the origins of [`super::Limits::cors_allowed_origins`],
//! none by default. A listed origin gets preflight answers for GET and POST with the
//! headers a client sends (`authorization`, `content-type`, `x-request-id`) and
//! `access-control-allow-origin: <origin>`; never credentials (tokens travel in
//! `Authorization`). A preflight from any other origin is refused with 403.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::errors::Refused;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The origins allowed cross-origin access, as browsers send them in `Origin`
/// (`scheme://host[:port]`, lowercase).
///
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origins(Arc<[HeaderValue]>);

impl Origins {
    /// A comma-separated list; empty means none.
    pub fn parse(list: &str) -> Result<Origins, String> {
        let origins = list
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(origin)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Origins(origins.into()))
    }

    pub fn allows(&self, origin: &HeaderValue) -> bool {
        self.0.contains(origin)
    }

    pub fn as_slice(&self) -> &[HeaderValue] {
        &self.0
    }
}

fn origin(text: &str) -> Result<HeaderValue, String> {
    let lower = text.to_ascii_lowercase();
    let host = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains('/') => {
            HeaderValue::from_str(&lower).map_err(|_| format!("`{text}` is not a valid origin"))
        }
        _ => Err(format!(
            "`{text}` is not an origin: expected scheme://host[:port], without a path"
        )),
    }
}

/// The CORS answers for the listed origins.
pub fn layer(origins: &Origins) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.as_slice().iter().cloned()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE, REQUEST_ID])
        .expose_headers([REQUEST_ID])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Refuses a preflight (any OPTIONS request) from an origin that is not listed, before
/// [`layer`] would answer it with the allowed methods and headers.
pub async fn refuse_unlisted_preflight(
    State(origins): State<Origins>,
    req: Request,
    next: Next,
) -> Response {
    let listed = req.headers().get(ORIGIN).is_some_and(|o| origins.allows(o));
    if req.method() == Method::OPTIONS && !listed {
        return Refused::Origin.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_from_a_comma_separated_list() {
        let o = Origins::parse(" https://Shop.example , http://localhost:5173,").expect("parses");
        let listed: Vec<&str> = o
            .as_slice()
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(listed, ["https://shop.example", "http://localhost:5173"]);
        assert!(o.allows(&HeaderValue::from_static("http://localhost:5173")));
        assert!(!o.allows(&HeaderValue::from_static("http://localhost:5174")));
        assert_eq!(Origins::parse(""), Ok(Origins::default()));
        assert_eq!(
            Origins::parse("https://a.example"),
            Origins::parse("https://a.example")
        );
        for bad in ["*", "shop.example", "https://shop.example/", "https://"] {
            assert!(Origins::parse(bad).is_err(), "{bad}");
        }
    }
}
