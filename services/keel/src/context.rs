use tonic::metadata::MetadataMap;
use uuid::Uuid;

/// Who asked, for logs and event metadata. Envoy sets `x-request-id` on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    /// Ties together everything one client action caused; the request id if none given.
    pub correlation_id: String,
}

impl RequestContext {
    pub fn from_metadata(m: &MetadataMap) -> RequestContext {
        let get = |k: &str| {
            m.get(k)
                .and_then(|v| v.to_str().ok())
                .filter(|s| !s.is_empty() && s.len() <= 128)
                .map(str::to_string)
        };
        let request_id = get("x-request-id").unwrap_or_else(|| Uuid::new_v4().to_string());
        let correlation_id = get("x-correlation-id").unwrap_or_else(|| request_id.clone());
        RequestContext {
            request_id,
            correlation_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_envoy_request_id() {
        let mut m = MetadataMap::new();
        m.insert("x-request-id", "abc".parse().expect("ascii"));
        let c = RequestContext::from_metadata(&m);
        assert_eq!(c.request_id, "abc");
        assert_eq!(c.correlation_id, "abc");
    }

    #[test]
    fn makes_one_up_without() {
        let c = RequestContext::from_metadata(&MetadataMap::new());
        assert!(Uuid::parse_str(&c.request_id).is_ok());
    }
}
