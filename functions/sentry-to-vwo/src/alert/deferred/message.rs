//! The queue message of a deferred alert: everything the worker needs to run the alert's
//! stages again — the verified body (gzipped, base64), the function URL's query, the resource,
//! the replay record's key (a hash of the signature: the signature itself is never stored) and
//! when Sentry's request arrived. The body stays in AWS (the queue is encrypted at rest).

use base64::Engine;
use bridge_platform::{Error, Result};
use bridge_state::gzip_json;
use serde::{Deserialize, Serialize};

/// SQS's largest message is 256 KiB; an alert whose compressed body does not fit is not
/// deferred (the answer says so).
pub const MAX_MESSAGE_BYTES: usize = 250 * 1024;

/// The body of a deferred alert's queue message: `{"deferred_alert": {...}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    /// The deferred alert.
    pub deferred_alert: DeferredAlert,
}

/// A verified alert whose decision waits.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeferredAlert {
    /// The verified body, gzipped and base64-encoded.
    pub body_gz: String,
    /// The function URL's query parameters, in order.
    pub query: Vec<(String, String)>,
    /// `Sentry-Hook-Resource`.
    pub resource: String,
    /// The replay record's key of the delivery (a hash of its signature).
    pub replay: String,
    /// When Sentry's request arrived (Unix milliseconds): every wait is counted from it.
    pub arrived_ms: u64,
    /// How many times the decision has waited so far.
    pub attempt: u32,
}

impl DeferredAlert {
    /// The alert of `body` (verified JSON, so UTF-8), `query`, `resource` and `replay`.
    pub fn new(
        body: &[u8],
        query: Vec<(String, String)>,
        resource: &str,
        replay: &str,
    ) -> Result<Self> {
        let text = std::str::from_utf8(body)
            .map_err(|e| Error::BadRequest(format!("the alert's body is not UTF-8: {e}")))?;
        let gz = gzip_json::encode(&text)
            .map_err(|e| Error::State(format!("deferred alert: body: {e}")))?;
        Ok(DeferredAlert {
            body_gz: base64::engine::general_purpose::STANDARD.encode(gz),
            query,
            resource: resource.to_owned(),
            replay: replay.to_owned(),
            arrived_ms: 0,
            attempt: 0,
        })
    }

    /// The verified body.
    pub fn body(&self, max_bytes: usize) -> Result<Vec<u8>> {
        let gz = base64::engine::general_purpose::STANDARD
            .decode(&self.body_gz)
            .map_err(|e| Error::State(format!("deferred alert: body: {e}")))?;
        // JSON escaping makes the text at most twice (and six times for control characters,
        // which a JSON body carries escaped already) the body's size.
        let body: String = gzip_json::decode(&gz, 2 * max_bytes as u64 + 2)
            .ok_or_else(|| Error::State("deferred alert: body does not read".into()))?;
        if body.len() > max_bytes {
            return Err(Error::State("deferred alert: body over the cap".into()));
        }
        Ok(body.into_bytes())
    }

    /// The queue message's body; an error when it is larger than SQS takes.
    pub fn encode(self) -> Result<String> {
        let text = serde_json::to_string(&Message {
            deferred_alert: self,
        })
        .map_err(|e| Error::State(format!("deferred alert: {e}")))?;
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::BadRequest(format!(
                "the alert is too large to wait for its evidence on the queue ({} KiB compressed, \
                 at most {} KiB)",
                text.len() / 1024,
                MAX_MESSAGE_BYTES / 1024
            )));
        }
        Ok(text)
    }

    /// The deferred alert in a queue message's `body`, if it is one.
    pub fn decode(body: &str) -> Option<Self> {
        serde_json::from_str::<Message>(body)
            .ok()
            .map(|m| m.deferred_alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_alert_survives_the_queue() {
        let body = br#"{"action":"triggered","data":{}}"#;
        let query = vec![("feature".to_owned(), "@suspect".to_owned())];
        let mut alert = DeferredAlert::new(body, query.clone(), "event_alert", "abc").unwrap();
        alert.arrived_ms = 7;
        let text = alert.encode().unwrap();
        assert!(!text.contains("triggered"), "the body travels compressed");
        let back = DeferredAlert::decode(&text).unwrap();
        assert_eq!(back.body(1024).unwrap(), body);
        assert_eq!(back.query, query);
        assert_eq!((back.arrived_ms, back.replay.as_str()), (7, "abc"));
        assert!(back.body(4).is_err(), "capped");
        // A toggle job is not a deferred alert.
        assert!(DeferredAlert::decode(r#"{"target":{}}"#).is_none());
    }
}
