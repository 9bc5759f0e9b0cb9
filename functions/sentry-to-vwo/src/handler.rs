//! The kill switch's request handler: the route decided once, its handler run, the answer built
//! and logged as one line.

use lambda_http::{Body, Request, Response};

use bridge_platform::telemetry;

use crate::alert;
use crate::answer::{self, Handled, Report};
use crate::app::App;
use crate::routes::{drop_down, rule_save, Route};

/// Function name used in metrics.
pub const FUNCTION: &str = "sentry-to-vwo";

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut report = Report::default();
    let route = Route::of(&req);
    let result = match route {
        Route::Alert => alert::run(app, &req, &mut report).await,
        Route::DropDown(list) => drop_down::choices(app, &req, list)
            .await
            .map(Handled::Options),
        Route::RuleSave => rule_save::check(app, &req).await.map(Handled::Checked),
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
