//! Stage 1, verify: the alert's envelope, read only once [`crate::routes::Route::check`] found
//! the delivery signed by Sentry and recent.

use bridge_platform::{Error, Result};

use crate::routes::Inbound;
use bridge_sentry::webhook::Envelope;

/// A verified alert: signed by Sentry, recent, and parsed.
#[derive(Debug)]
pub struct Alert<'r> {
    /// `Sentry-Hook-Resource` (`event_alert`, `metric_alert`, …).
    pub resource: String,
    /// The webhook's envelope.
    pub envelope: Envelope,
    /// `Sentry-Hook-Signature` (the replay record's key is its hash; never logged).
    pub signature: Option<&'r str>,
}

/// Reads the verified `inbound` request as a Sentry alert webhook.
pub fn verify<'r>(inbound: &Inbound<'r>) -> Result<Alert<'r>> {
    let envelope = Envelope::parse(inbound.frame.body)?;
    let resource = inbound
        .resource
        .clone()
        .ok_or_else(|| Error::BadRequest("missing Sentry-Hook-Resource".into()))?;
    Ok(Alert {
        resource,
        envelope,
        signature: inbound.signature,
    })
}
