//! GraphQL over HTTP (<https://graphql.github.io/graphql-over-http/>): the request's
//! parameters, the media types of request and response, and the response's status.
//!
//! `application/graphql-response+json` answers an operation that was not run (it does
//! not parse or validate, or its variables do not fit) with 400 and no `data`;
//! `application/json` answers every well-formed request with 200. A client gets the
//! former by asking for it by name, the latter by asking for it, by wildcards only, or
//! by sending no `Accept` (which the spec leaves to the server; legacy clients do).

use async_graphql::Variables;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::errors::Refused;

/// The parameters of a GraphQL request, from a POST body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    query: String,
    operation_name: Option<String>,
    variables: Option<Map<String, Json>>,
    /// Checked to be a map; no extension of this BFF reads them.
    #[serde(rename = "extensions")]
    _extensions: Option<Map<String, Json>>,
}

/// The parameters of a GraphQL GET request, from its query string.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

impl Params {
    pub fn from_body(body: &[u8]) -> Result<Params, Refused> {
        let value: Json =
            serde_json::from_slice(body).map_err(|e| Refused::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(Refused::BadParameters(
                "the body is not a JSON object".into(),
            ));
        }
        serde_json::from_value(value).map_err(|e| Refused::BadParameters(e.to_string()))
    }

    pub fn from_get(get: GetParams) -> Result<Params, Refused> {
        let map = |what: &str, text: Option<String>| match text {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| Refused::BadParameters(format!("`{what}` is not a JSON map: {e}"))),
        };
        Ok(Params {
            query: get.query,
            operation_name: get.operation_name,
            variables: map("variables", get.variables)?,
            _extensions: map("extensions", get.extensions)?,
        })
    }

    pub fn into_request(self) -> async_graphql::Request {
        let variables = Variables::from_json(Json::Object(self.variables.unwrap_or_default()));
        let request = async_graphql::Request::new(self.query).variables(variables);
        match self.operation_name {
            Some(name) => request.operation_name(name),
            None => request,
        }
    }
}

/// Whether a request body is declared JSON: `application/json`, UTF-8 if a charset is
/// given. `application/graphql-response+json` is a response type only.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|p| match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// The media type of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    pub const fn as_str(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json",
            Media::Json => "application/json",
        }
    }

    /// The type `headers` accept best; `application/graphql-response+json` on a tie of
    /// two named types, `application/json` on a tie of wildcards.
    pub fn negotiate(headers: &HeaderMap) -> Result<Media, Refused> {
        let accept: Vec<&str> = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let accept = accept.join(",");
        if accept.trim().is_empty() {
            return Ok(Media::Json);
        }
        let (graphql, json) = (
            rank(&accept, Media::GraphqlResponse),
            rank(&accept, Media::Json),
        );
        match (graphql, json) {
            (None, None) => Err(Refused::NotAcceptable),
            (Some(g), Some(j)) if g < j || (g == j && g.1 < EXACT) => Ok(Media::Json),
            (Some(_), _) => Ok(Media::GraphqlResponse),
            (None, Some(_)) => Ok(Media::Json),
        }
    }
}

const EXACT: u8 = 2;

/// `(quality in thousandths, specificity)` of the most specific range of `accept`
/// matching `media`; none when no range matches or it has quality 0.
fn rank(accept: &str, media: Media) -> Option<(u16, u8)> {
    let (kind, _) = media.as_str().split_once('/')?;
    let ranges = accept.split(',').filter_map(|range| {
        let mut parts = range.split(';');
        let name = parts.next()?.trim().to_ascii_lowercase();
        let specificity = if name == media.as_str() {
            EXACT
        } else if name.strip_suffix("/*") == Some(kind) {
            1
        } else if name == "*/*" {
            0
        } else {
            return None;
        };
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        Some(((quality.clamp(0.0, 1.0) * 1000.0) as u16, specificity))
    });
    let (quality, specificity) = ranges.max_by_key(|(_, s)| *s)?;
    (quality > 0).then_some((quality, specificity))
}

/// The HTTP response of an executed request in `media`.
pub fn respond(media: Media, response: async_graphql::Response) -> Response {
    // Errors before execution have no path; execution always gives `data` or a path.
    let not_run = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let mut body = match serde_json::to_value(&response) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "a GraphQL response does not serialize");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let status = if media == Media::GraphqlResponse && not_run {
        if let Some(o) = body.as_object_mut() {
            o.remove("data");
        }
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let content_type = HeaderValue::from_static(media.as_str());
    (status, [(CONTENT_TYPE, content_type)], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: axum::http::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn only_json_bodies_are_taken() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(&headers(CONTENT_TYPE, ok)), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/graphql-response+json",
            "application/json; charset=latin1",
        ] {
            assert!(!is_json(&headers(CONTENT_TYPE, refused)), "{refused}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn accept_picks_the_response_type() {
        let pick = |accept| Media::negotiate(&headers(ACCEPT, accept));
        use Media::*;
        for (accept, want) in [
            ("application/graphql-response+json", Ok(GraphqlResponse)),
            ("application/json", Ok(Json)),
            ("application/json; charset=utf-8", Ok(Json)),
            ("*/*", Ok(Json)),
            ("application/*", Ok(Json)),
            (
                "application/graphql-response+json, application/json;q=0.9",
                Ok(GraphqlResponse),
            ),
            (
                "application/json, application/graphql-response+json",
                Ok(GraphqlResponse),
            ),
            (
                "application/graphql-response+json;q=0.5, application/json",
                Ok(Json),
            ),
            ("application/json, */*;q=0.1", Ok(Json)),
            (
                "application/graphql-response+json, */*;q=0.1",
                Ok(GraphqlResponse),
            ),
            ("application/json;q=0, */*", Ok(GraphqlResponse)),
            ("text/html", Err(Refused::NotAcceptable)),
            ("application/json;q=0", Err(Refused::NotAcceptable)),
        ] {
            assert_eq!(pick(accept), want, "{accept}");
        }
        assert_eq!(Media::negotiate(&HeaderMap::new()), Ok(Json));
    }

    #[test]
    fn parameters_are_typed() {
        let ok = br#"{"query":"{ a }","operationName":null,"variables":{"x":1},"extensions":null}"#;
        assert!(Params::from_body(ok).is_ok());
        for bad in [
            r#"{"qeury":"{ a }"}"#,
            r#"{"query":1}"#,
            r#"{"query":"{ a }","variables":"x"}"#,
            r#"{"query":"{ a }","operationName":{}}"#,
            r#"{"query":"{ a }","extensions":[]}"#,
            "[]",
        ] {
            let e = Params::from_body(bad.as_bytes()).map(|_| ());
            assert!(matches!(e, Err(Refused::BadParameters(_))), "{bad}: {e:?}");
        }
        for not_json in ["", "{ \"not a JSON"] {
            let e = Params::from_body(not_json.as_bytes()).map(|_| ());
            assert!(matches!(e, Err(Refused::NotJson(_))), "{not_json}: {e:?}");
        }
    }

    #[test]
    fn errors_before_execution_are_400_without_data_in_graphql_response_json() {
        let mut e = async_graphql::ServerError::new("bad", None);
        let rejected = || async_graphql::Response::from_errors(vec![e.clone()]);
        let res = respond(Media::GraphqlResponse, rejected());
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static(
                "application/graphql-response+json"
            ))
        );
        assert_eq!(respond(Media::Json, rejected()).status(), StatusCode::OK);

        e.path = vec![async_graphql::PathSegment::Field("a".into())];
        let failed = async_graphql::Response::from_errors(vec![e]);
        assert_eq!(
            respond(Media::GraphqlResponse, failed).status(),
            StatusCode::OK
        );
    }
}
