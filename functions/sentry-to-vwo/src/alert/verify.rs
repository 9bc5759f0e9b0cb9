//! Stage 1, verify: the alert's envelope, read only once [`crate::routes::Route::check`] found
//! the delivery signed by Sentry and recent.

use bridge_platform::{Error, Result};
use sha2::{Digest, Sha256};

use crate::routes::Inbound;
use bridge_sentry::webhook::Envelope;

/// A verified alert: signed by Sentry, recent, and parsed.
#[derive(Debug)]
pub struct Alert {
    /// `Sentry-Hook-Resource` (`event_alert`, `metric_alert`, …).
    pub resource: String,
    /// The webhook's envelope.
    pub envelope: Envelope,
    /// The delivery's replay key: a hash of `Sentry-Hook-Signature` (the signature itself is
    /// never stored or logged).
    pub replay: String,
    /// Sentry's request, or a decision the worker resumed.
    pub pass: Pass,
}

/// Reads the verified `inbound` request as a Sentry alert webhook.
pub fn verify(inbound: &Inbound<'_>) -> Result<Alert> {
    let envelope = Envelope::parse(inbound.frame.body)?;
    let resource = inbound
        .resource
        .clone()
        .ok_or_else(|| Error::BadRequest("missing Sentry-Hook-Resource".into()))?;
    Ok(Alert {
        resource,
        envelope,
        replay: replay_key(inbound.signature.unwrap_or_default()),
        pass: Pass::Request,
    })
}

/// The replay key of a delivery signed `signature`: 16 bytes of its SHA-256, hex.
pub fn replay_key(signature: &str) -> String {
    hex::encode(&Sha256::digest(signature.as_bytes())[..16])
}

/// How an alert reached the stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Sentry's request, answered within its second: no read that may not fit.
    Request,
    /// A deferred decision, run by the worker after Sentry was answered.
    Resumed {
        /// When Sentry's request arrived (Unix milliseconds).
        arrived_ms: u64,
        /// How many times the decision has waited.
        attempt: u32,
    },
}

impl Pass {
    /// Whether Sentry has been answered already (reads may take their time).
    pub fn answered(self) -> bool {
        matches!(self, Pass::Resumed { .. })
    }
}
