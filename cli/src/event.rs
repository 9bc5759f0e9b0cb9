//! `bridge event`: a ready-to-invoke Lambda Function URL event (payload format 2.0) for a sample
//! body, signed now, for `cargo lambda invoke --data-file` (or any Runtime API emulator).
//!
//! The kill switch refuses a `Sentry-Hook-Timestamp` older than its window, so a signed event
//! cannot be a file in the repository: it is made at invoke time with the secret of the stack it
//! goes to.

use serde_json::Value;

use crate::send::Sender;

/// The Function URL event Lambda would hand the function for this delivery.
///
/// `query` is the raw query string (`feature=...&environment=...`), `resource` the
/// `Sentry-Hook-Resource` (ignored for VWO), `now` the Unix time it is signed at.
pub fn function_url_event(
    payload: &[u8],
    sender: Sender,
    query: &str,
    resource: &str,
    secret: &str,
    now: u64,
) -> Value {
    let signature;
    let timestamp = now.to_string();
    let request_id = format!("{now:032x}");
    let headers: Vec<(&str, &str)> = match sender {
        Sender::Sentry => {
            signature = bridge_platform::signature::sign_hex(secret.as_bytes(), payload);
            vec![
                ("content-type", "application/json"),
                ("sentry-hook-resource", resource),
                ("sentry-hook-timestamp", &timestamp),
                ("sentry-hook-signature", &signature),
                ("request-id", &request_id),
            ]
        }
        Sender::Vwo => vec![("content-type", "application/json"), ("x-vwo-auth", secret)],
    };
    testkit::function_url_event("POST", query, &headers, payload, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentry_event_carries_the_signature_of_the_exact_body_and_the_query() {
        let body = br#"{"action":"critical"}"#;
        let event = function_url_event(
            body,
            Sender::Sentry,
            "feature=f&environment=production",
            "metric_alert",
            "s3cret",
            1_795_416_000,
        );
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["body"], r#"{"action":"critical"}"#);
        assert_eq!(event["rawQueryString"], "feature=f&environment=production");
        assert_eq!(event["queryStringParameters"]["feature"], "f");
        assert_eq!(event["headers"]["sentry-hook-timestamp"], "1795416000");
        assert_eq!(
            event["headers"]["sentry-hook-signature"],
            testkit::hmac_hex("s3cret", body)
        );
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
    }

    #[test]
    fn a_vwo_event_carries_the_shared_secret_and_no_signature() {
        let event = function_url_event(b"{}", Sender::Vwo, "environment=production", "", "w", 1);
        assert_eq!(event["headers"]["x-vwo-auth"], "w");
        assert!(event["headers"].get("sentry-hook-signature").is_none());
    }
}
