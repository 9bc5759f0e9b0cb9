//! The alert rule's save check: Sentry posts the rule's action settings, signed, when the rule is
//! saved; a refusal's message is shown to the user in the rule's form.

use bridge_shared::http;
use bridge_shared::{Error, Result};
use lambda_http::Request;

use crate::app::App;
use crate::rule_action;
use crate::save_check::{self, Found, Listed};

/// Checks the rule's settings: well-formed, allowed by the guard rails, and naming a flag and an
/// environment VWO has. `Ok` carries the message Sentry shows on success.
pub async fn check(app: &App, req: &Request) -> Result<String> {
    let config = &app.config;
    http::require_post(req)?;
    http::require_json(req)?;
    let body = http::body_bytes(req, config.max_body_bytes)?;
    let signature = http::header_text(req, rule_action::SIGNATURE_HEADER)?;
    app.verify_signature(body, signature).await?;
    let checked =
        rule_action::check_fields(body, &config.common.vwo.default_account, config.dry_run)?;
    if let Some(reason) = app
        .guard_rails
        .refusal(app.lookup(), &checked.target, checked.enabled)
        .await
    {
        return Err(Error::BadRequest(reason));
    }
    let listed = match &app.catalog {
        Some(catalog) => {
            save_check::named(catalog, &app.background_vwo, app.token(), &checked.target).await
        }
        None => Listed::Unlisted,
    };
    match listed {
        Listed::Named { flag, environment } => {
            return Ok(checked.message_naming(Some((&flag, &environment))))
        }
        Listed::Missing(reason) => return Err(Error::BadRequest(reason)),
        Listed::Unlisted => {}
    }
    let found = save_check::existence(&app.background_vwo, app.token(), &checked.target).await;
    if let Found::Missing(reason) = found {
        return Err(Error::BadRequest(reason));
    }
    Ok(save_check::message(&checked.message, &found))
}
