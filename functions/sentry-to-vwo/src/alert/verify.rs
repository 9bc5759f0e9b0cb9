//! Stage 1, verify: nothing of an alert is read before its signature is checked; then its age,
//! then its envelope.

use std::time::SystemTime;

use bridge_platform::request;
use bridge_platform::{Error, Result};
use lambda_http::Request;

use crate::answer::Report;
use crate::app::App;
use bridge_sentry::webhook::{self, Envelope};

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

/// Verifies `req` as a Sentry alert webhook.
pub async fn verify<'r>(app: &App, req: &'r Request, report: &mut Report) -> Result<Alert<'r>> {
    let config = &app.config;
    request::require_post(req)?;
    request::require_json(req)?;
    let body = request::body_bytes(req, config.max_body_bytes)?;
    let resource_header = request::header_text(req, webhook::RESOURCE_HEADER)?;
    let signature = request::header_text(req, webhook::SIGNATURE_HEADER)?;
    app.verify_signature(body, signature).await?;
    // Logged only once the sender is known to be Sentry, and bounded.
    report.resource = resource_header.map(|r| r.chars().take(64).collect());
    webhook::verify_timestamp(
        request::header_text(req, webhook::TIMESTAMP_HEADER)?,
        config.max_webhook_age,
        SystemTime::now(),
    )?;
    let envelope = Envelope::parse(body)?;
    let resource = report
        .resource
        .clone()
        .ok_or_else(|| Error::BadRequest("missing Sentry-Hook-Resource".into()))?;
    report.action = Some(envelope.action.chars().take(64).collect());
    Ok(Alert {
        resource,
        envelope,
        signature,
    })
}
