//! The kill switch's request handler: the route decided once, the request checked once as that
//! route expects, its handler run, the answer built and logged as one line.

use lambda_http::{Body, Request, Response};

use bridge_platform::telemetry;

use crate::alert;
use crate::answer::{self, Handled, Report};
use crate::app::App;
use crate::routes::Route;
use crate::rule_form::{drop_down, save};

/// Function name used in metrics.
pub const FUNCTION: &str = "sentry-to-vwo";

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let arrived = tokio::time::Instant::now();
    let route = Route::of(&req);
    // Only the alert has more to log than its answer.
    let (result, mut report) = match (route, route.check(app, &req, arrived).await) {
        (_, Err(error)) => (Err(error), Report::default()),
        (Route::Alert, Ok(inbound)) => alert::run(app, &inbound).await,
        (Route::DropDown(list), Ok(inbound)) => {
            let choices = drop_down::choices(app, &inbound.frame, list).await;
            (choices.map(Handled::Options), Report::default())
        }
        (Route::RuleSave, Ok(inbound)) => {
            let checked = save::check(app, inbound.frame.body).await;
            (checked.map(Handled::Checked), Report::default())
        }
    };
    let answer = answer::respond(route, result, &mut report);
    answer.log(&report, "sentry webhook handled");
    telemetry::emit_outcome_metric(FUNCTION, answer.outcome);
    answer.response
}
