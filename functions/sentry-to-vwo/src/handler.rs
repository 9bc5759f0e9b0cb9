//! The kill switch's request handler: the route decided once, the request checked once as that
//! route expects, its handler run, the answer built and logged as one line.

use bridge_platform::Result;
use lambda_http::{Body, Request, Response};

use bridge_platform::telemetry;

use crate::alert;
use crate::answer::{self, Handled, Report};
use crate::app::App;
use crate::routes::{Inbound, Route};
use crate::rule_form::{drop_down, save};

/// Function name used in metrics.
pub const FUNCTION: &str = "sentry-to-vwo";

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let arrived = tokio::time::Instant::now();
    let route = Route::of(&req);
    let (result, mut report) = match route.check(app, &req, arrived).await {
        Ok(inbound) => run(app, route, &inbound).await,
        Err(error) => (Err(error), Report::default()),
    };
    let answer = answer::respond(route, result, &mut report);
    tracing::info!(
        outcome = answer.outcome,
        status = answer.response.status().as_u16(),
        resource = report.resource.as_deref(),
        action = report.action.as_deref(),
        rule = report.rule.as_deref(),
        feature = report.feature.as_deref(),
        environment = report.environment.as_deref(),
        vwo_status = report.vwo_status,
        attempts = report.attempts,
        suspects = report.suspects,
        detail = answer.detail.as_str(),
        "sentry webhook handled"
    );
    telemetry::emit_outcome_metric(FUNCTION, answer.outcome);
    answer.response
}

/// Runs the handler of `route` on its checked request; only the alert has more to log.
async fn run(app: &App, route: Route, inbound: &Inbound<'_>) -> (Result<Handled>, Report) {
    let result = match route {
        Route::Alert => return alert::run(app, inbound).await,
        Route::DropDown(list) => drop_down::choices(app, &inbound.frame, list)
            .await
            .map(Handled::Options),
        Route::RuleSave => save::check(app, inbound.frame.body)
            .await
            .map(Handled::Checked),
    };
    (result, Report::default())
}
