//! Dry runs: an alert rule with `dryRun=true` (or the whole function with `DRY_RUN=true`) is
//! verified and decided as usual, and VWO is asked only whether it has the flag in the
//! environment (a read, never a toggle). Nothing is recorded — no replay record, no generation,
//! no kill record — and the answer says what a real alert would have done.

use bridge_platform::request::{json_response, with_hook_error};
use bridge_platform::Result;
use bridge_vwo::api::{TokenSource, VwoClient};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

use crate::alert::decide::decision::Decision;

/// What a dry run answers.
#[derive(Debug)]
pub struct Rehearsal {
    /// "dry run: would turn checkout-new-flow off in production (VWO has the flag there)".
    pub message: String,
    /// 200 with the message and the toggle that would be made; the message in `Sentry-Hook-Error`.
    pub response: Response<Body>,
}

/// The toggle a decision would make, as the answers show it (`null` for none).
pub fn would_toggle(decision: &Decision) -> Value {
    match decision {
        Decision::Toggle {
            target,
            enabled,
            restore,
            ..
        } => json!({
            "account": target.account,
            "environment": target.environment,
            "feature": target.feature,
            "isEnabled": enabled,
            "restore": restore,
        }),
        Decision::Ignore(_) => Value::Null,
    }
}

/// Checks with VWO that `decision`'s flag and environment exist, and says what would be done. A
/// flag or environment VWO does not know fails as the real toggle would (VWO's message, 502).
pub async fn rehearse(
    vwo: &VwoClient,
    token: TokenSource<'_>,
    decision: &Decision,
) -> Result<Rehearsal> {
    let mut checked = Value::Null;
    if let Decision::Toggle { target, .. } = decision {
        let reply = vwo.check_target(token, target).await?;
        checked = json!(reply.status);
    }
    let message = format!(
        "dry run: would {} (VWO has the flag there; nothing was switched)",
        decision.describe()
    );
    let body = json!({
        "dryRun": {"message": message, "wouldToggle": would_toggle(decision), "vwoStatus": checked}
    });
    let response = with_hook_error(json_response(StatusCode::OK, &body), &message);
    Ok(Rehearsal { message, response })
}
