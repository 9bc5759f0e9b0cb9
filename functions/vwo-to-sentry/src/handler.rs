//! Change tracking's request handler: the delivery run through its stages ([`crate::delivery`]),
//! the answer built ([`crate::answer`]) and logged as one line.

use bridge_platform::request::error_response;
use bridge_platform::telemetry;
use lambda_http::{Body, Request, Response};

use crate::answer::{self, Delivered, Report};
use crate::app::App;
use crate::delivery;

/// Function name used in metrics.
pub const FUNCTION: &str = "vwo-to-sentry";

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut report = Report::default();
    let result = delivery::run(app, &req, &mut report).await;
    let (outcome, response, detail) = match result {
        Ok(Delivered {
            handled,
            flags,
            listing,
        }) => answer::respond(handled, flags, listing),
        Err(error) => (error.kind(), error_response(&error), error.to_string()),
    };
    tracing::info!(
        outcome,
        status = response.status().as_u16(),
        environment = report.environment.as_deref(),
        action = report.action.as_deref(),
        flags = report.flags,
        changes = report.changes,
        by_kill_switch = report.by_kill_switch,
        detail = detail.as_str(),
        "vwo webhook handled"
    );
    telemetry::emit_outcome_metric(FUNCTION, outcome);
    response
}
