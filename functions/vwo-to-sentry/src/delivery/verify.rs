//! Stage 1, verify: nothing of a delivery is read before `x-vwo-auth` is checked (the current
//! secret or, while it rotates, the previous one); then the payload and the webhook URL's target.

use bridge_platform::frame::Frame;
use bridge_platform::request;
use bridge_platform::{clock, Result};
use bridge_vwo::webhook::{self, VwoWebhook};
use bridge_vwo::webhook_url;
use lambda_http::Request;

use super::{Deadline, Delivery};
use crate::app::{App, AUTH_REREAD};

/// Verifies `req` as VWO's webhook for the environment its URL names.
pub async fn verify<'a>(app: &'a App, req: &'a Request) -> Result<Delivery<'a>> {
    let config = &app.config;
    request::require_post(req)?;
    request::require_json(req)?;
    let body = request::body_bytes(req, config.max_body_bytes)?;
    let given = request::header_text(req, webhook::AUTH_HEADER)?;
    let (current, previous) = (
        config.webhook_secret_param.as_str(),
        config.previous_webhook_secret_param.as_str(),
    );
    app.secrets
        .use_rotating(&[current, previous], AUTH_REREAD, |values| async move {
            webhook::verify_auth(given, values.require(current)?, values.get(previous))
        })
        .await?;
    let hook = VwoWebhook::parse(body)?;
    let frame = Frame::new(req, body);
    let target = webhook_url::Target::from_query(|name| frame.query.first(name))?;
    let timestamp = hook.timestamp().unwrap_or_else(|| {
        tracing::warn!("VWO webhook without a usable timestamp; using the time of receipt");
        clock::unix_secs() as i64
    });
    Ok(Delivery {
        app,
        deadline: Deadline::new(&frame, None),
        // VWO's payload names no flag: every action (campaign_* included, since a flag's rules
        // are campaigns) may have changed this environment's flags.
        action: hook.action.as_ref().map(|a| a.chars().take(64).collect()),
        frame,
        target,
        timestamp,
    })
}
