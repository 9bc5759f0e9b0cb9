//! Sentry's generic feature-flag change-tracking payload, and a client that signs and sends it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use bridge_platform::secrets::Secret;
use bridge_platform::{capped_body, signature, Error, Result};

use crate::{failed, unanswered};

/// Header carrying the HMAC-SHA256 of the body sent to Sentry.
pub const CHANGE_SIGNATURE_HEADER: &str = "x-sentry-signature";

/// Longest flag name (and `created_by.id`) Sentry accepts.
pub const MAX_FLAG_LEN: usize = 100;

/// What happened to a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagAction {
    /// The flag appeared.
    Created,
    /// Its state, rules or variations changed.
    Updated,
    /// It is gone.
    Deleted,
}

impl FlagAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagAction::Created => "created",
            FlagAction::Updated => "updated",
            FlagAction::Deleted => "deleted",
        }
    }
}

/// How `created_by.id` identifies the actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// An e-mail address.
    Email,
    /// An opaque id.
    Id,
    /// A display name.
    Name,
}

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// At most [`MAX_FLAG_LEN`] characters.
    pub id: String,
    /// What `id` is.
    #[serde(rename = "type")]
    pub kind: ActorKind,
}

impl Actor {
    /// `{"type": "name", "id": "vwo"}`: used when VWO does not say who acted.
    pub fn vwo() -> Self {
        Actor {
            id: "vwo".into(),
            kind: ActorKind::Name,
        }
    }
}

/// One flag change, as Sentry expects it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagChange {
    /// What happened.
    pub action: FlagAction,
    /// Stable id of this change (see [`change_id`]).
    pub change_id: u64,
    /// ISO-8601 time with an offset.
    pub created_at: String,
    /// Who made it.
    pub created_by: Actor,
    /// The flag's key, at most [`MAX_FLAG_LEN`] characters.
    pub flag: String,
}

/// The `meta` object of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Always 1.
    pub version: u32,
}

/// The whole request body: `{"data": [...], "meta": {"version": 1}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagBatch {
    /// The changes.
    pub data: Vec<FlagChange>,
    /// Payload version.
    pub meta: Meta,
}

impl FlagBatch {
    /// A batch of `changes`, version 1.
    pub fn new(data: Vec<FlagChange>) -> Self {
        FlagBatch {
            data,
            meta: Meta { version: 1 },
        }
    }

    /// The exact bytes to send and their signature.
    pub fn signed(&self, secret: &Secret) -> Result<(Vec<u8>, String)> {
        let body = serde_json::to_vec(self)
            .map_err(|e| Error::BadRequest(format!("cannot encode flag changes: {e}")))?;
        let signature = signature::sign_hex(secret.expose().as_bytes(), &body);
        Ok((body, signature))
    }
}

/// A stable id for the change of `flag` in `environment` by `action` at `timestamp`.
///
/// The same inputs always give the same id, so a redelivered webhook produces the same
/// `change_id`. The value fits in 53 bits, so any JSON reader keeps it exact.
pub fn change_id(environment: &str, flag: &str, action: FlagAction, timestamp: i64) -> u64 {
    let mut hash = Sha256::new();
    for part in [environment, flag, action.as_str(), &timestamp.to_string()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) & ((1 << 53) - 1)
}

/// `timestamp` (Unix seconds) as ISO-8601 with an explicit `+00:00` offset.
pub fn iso8601(timestamp: i64) -> Result<String> {
    let at = OffsetDateTime::from_unix_timestamp(timestamp)
        .map_err(|_| Error::BadRequest(format!("timestamp {timestamp} is out of range")))?;
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    at.format(format)
        .map_err(|e| Error::BadRequest(format!("cannot format timestamp: {e}")))
}

/// Sends signed batches to Sentry's generic change-tracking endpoint.
#[derive(Debug, Clone)]
pub struct SentryFlagClient {
    http: reqwest::Client,
    url: url::Url,
}

impl SentryFlagClient {
    /// A client posting to `url` (the organisation's generic provider URL).
    pub fn new(url: url::Url, timeout: Duration) -> Result<Self> {
        let http =
            bridge_platform::tls::build(bridge_platform::tls::client_builder()?.timeout(timeout))?;
        Ok(SentryFlagClient { http, url })
    }

    /// Opens the connection (TLS included) ahead of the first batch with a `HEAD` of the
    /// host's root: nothing reaches the change-tracking endpoint.
    pub async fn warm_up(&self) {
        let mut root = self.url.clone();
        root.set_path("/");
        root.set_query(None);
        if let Err(e) = self.http.head(root).send().await {
            tracing::debug!(error = %e, "Sentry warm-up failed; the first send will connect");
        }
    }

    /// Posts `batch`, signed with `secret`. Only 200 with an empty body counts as accepted:
    /// Sentry answers validation failures with 200 and a JSON body.
    pub async fn send(&self, batch: &FlagBatch, secret: &Secret) -> Result<()> {
        let (body, signature) = batch.signed(secret)?;
        let response = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header(CHANGE_SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| failed(None, unanswered(&e).into()))?;
        let status = response.status().as_u16();
        let bytes = capped_body::read_capped(response, capped_body::MAX_UPSTREAM_BODY_BYTES)
            .await
            .map_err(|e| failed(Some(status), e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let excerpt: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        match status {
            // Sentry's docs say 201, its server answers 200: any 2xx with an empty body accepts.
            200..=299 if text.trim().is_empty() => Ok(()),
            200..=299 => Err(failed(
                Some(status),
                format!("rejected the payload: {excerpt}"),
            )),
            _ => Err(failed(Some(status), format!("HTTP {status}: {excerpt}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_are_stable_and_distinct() {
        let a = change_id("prod", "checkout", FlagAction::Updated, 1_700_000_000);
        assert_eq!(
            a,
            change_id("prod", "checkout", FlagAction::Updated, 1_700_000_000)
        );
        assert_ne!(
            a,
            change_id("prod", "checkout", FlagAction::Created, 1_700_000_000)
        );
        assert_ne!(
            a,
            change_id("stage", "checkout", FlagAction::Updated, 1_700_000_000)
        );
        assert_ne!(
            a,
            change_id("prod", "checkout", FlagAction::Updated, 1_700_000_001)
        );
        // Length-prefixed parts: moving a character between parts changes the id.
        assert_ne!(
            change_id("ab", "c", FlagAction::Updated, 1),
            change_id("a", "bc", FlagAction::Updated, 1)
        );
        assert!(a < (1 << 53));
    }

    #[test]
    fn timestamps_format_with_an_offset() {
        assert_eq!(iso8601(1606482285).unwrap(), "2020-11-27T13:04:45+00:00");
        assert_eq!(iso8601(0).unwrap(), "1970-01-01T00:00:00+00:00");
        assert!(iso8601(i64::MAX).is_err());
    }

    #[test]
    fn batches_serialise_to_sentrys_shape() {
        let batch = FlagBatch::new(vec![FlagChange {
            action: FlagAction::Deleted,
            change_id: 7,
            created_at: "2024-12-12T00:00:00+00:00".into(),
            created_by: Actor::vwo(),
            flag: "checkout.new-flow".into(),
        }]);
        let (body, signature) = batch.signed(&Secret::new("s")).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"data": [{"action": "deleted", "change_id": 7,
                "created_at": "2024-12-12T00:00:00+00:00",
                "created_by": {"id": "vwo", "type": "name"},
                "flag": "checkout.new-flow"}], "meta": {"version": 1}})
        );
        assert!(signature::verify_hex(b"s", &body, &signature));
    }
}
