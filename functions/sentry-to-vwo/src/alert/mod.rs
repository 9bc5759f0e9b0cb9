//! The alert pipeline: a Sentry alert webhook from the request to VWO's toggle, as named stages
//! in the order they run.
//!
//! 1. [`verify`]: the body, Sentry's signature and timestamp, the envelope.
//! 2. [`decide`]: which flag (or rule), in which environment, on or off; for `feature=@suspect`,
//!    [`suspect`] finds the flag from the event and the changes change tracking kept.
//! 3. [`guard`]: test notification, guard rails, dry run, restore budget: anything that answers
//!    before a flag may be switched.
//! 4. [`record`]: accepted from here on: the replay record, the flag's decision and lease, the
//!    token's request slot.
//! 5. [`dispatch`]: apply on the fast path (shared with the worker), or queue what is left.
//!
//! The answer is built from what the last stage returns, in [`crate::answer`].

mod decide;
mod dispatch;
mod guard;
mod record;
mod suspect;
mod verify;

use bridge_platform::{Error, Result};
use lambda_http::Request;

use crate::answer::{self, Handled, Report};
use crate::app::App;
use guard::Guarded;

/// Runs one alert through every stage; `report` collects what the log line says.
pub async fn run(app: &App, req: &Request, report: &mut Report) -> Result<Handled> {
    let alert = verify::verify(app, req, report).await?;
    let decided = decide::decide(app, req, &alert, report)?;
    let mut decisions = suspect::resolve(app, req, &alert, decided, report).await?;
    if decisions.len() <= 1 {
        let decided = decisions
            .pop()
            .ok_or_else(|| Error::Config("no decision".into()))?;
        return switch(app, req, &alert, decided, 0).await;
    }
    // `SUSPECTS=all`: each suspect in turn, most recent change first, each through every stage.
    let mut results = Vec::with_capacity(decisions.len());
    for (part, decided) in decisions.into_iter().enumerate() {
        results.push(switch(app, req, &alert, decided, part).await);
    }
    answer::several(results)
}

/// Guards, records and applies (or queues) one decision; `part` numbers the decisions of one
/// alert (each has its own replay record).
async fn switch(
    app: &App,
    req: &Request,
    alert: &verify::Alert<'_>,
    decided: decide::Decided,
    part: usize,
) -> Result<Handled> {
    let accepted = match guard::guard(app, alert, decided).await? {
        Guarded::Pass(accepted) => accepted,
        Guarded::Answer(handled) => return Ok(handled),
    };
    let recorded = record::record(app, req, alert, accepted, part).await?;
    dispatch::apply_or_queue(app, recorded).await
}
