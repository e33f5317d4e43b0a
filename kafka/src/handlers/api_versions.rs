use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseKind};

use crate::apis::SUPPORTED;
use crate::errors;

/// Exactly the versions we implement. No optional tagged fields (supported
/// features...): Debian's kcat (librdkafka 2.0.2) fails to parse them.
pub fn handle() -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    r
}

pub fn unsupported() -> ResponseKind {
    let mut r = handle();
    r.error_code = errors::UNSUPPORTED_VERSION;
    ResponseKind::ApiVersions(r)
}
