//! The alert pipeline: a Sentry alert webhook from the request to VWO's toggle, as named stages
//! in the order they run.
//!
//! 1. [`verify`]: the envelope, once the request's signature and age were checked before routing
//!    ([`crate::routes::Route::check`]).
//!    [`note`]: an issue webhook is answered here; `issue.created` keeps when the issue began.
//! 2. [`decide`]: which flag (or rule), in which environment, on or off (the rule's settings and
//!    what they mean are [`decide::decision`]'s); for `feature=@suspect`,
//!    [`suspect`] finds the flag from the event and the changes change tracking kept.
//! 3. [`guard`]: test notification, guard rails, dry run, restore budget: anything that answers
//!    before a flag may be switched (each in its own module under `guard/`).
//! 4. [`record`]: accepted from here on: the replay record, the flag's decision and lease, the
//!    token's request slot.
//! 5. [`dispatch`]: apply on the fast path, or queue what is left; both through
//!    [`crate::toggle`], which the queue worker shares.
//!
//! An `@suspect` decision whose evidence is not there within Sentry's second waits on the queue
//! ([`deferred`]): answered 202 at once, its stages from decide on run again by the worker
//! ([`resume`]).
//!
//! The answer is built from what the last stage returns, in [`crate::answer`].

pub mod decide;
pub mod deferred;
mod dispatch;
pub mod guard;
mod note;
mod record;
mod suspect;
pub mod verify;

use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};

use crate::answer::{self, Handled, Report};
use crate::app::App;
use crate::routes::Inbound;
use guard::Guarded;
use suspect::Resolution;

/// Runs one alert through every stage; the report says what the log line says of it, as far as
/// the stages got.
pub async fn run(app: &App, inbound: &Inbound<'_>) -> (Result<Handled>, Report) {
    let mut report = Report {
        resource: inbound.resource.clone(),
        ..Report::default()
    };
    let result = stages(app, inbound, &mut report).await;
    (result, report)
}

/// The stages in order; each returns what the next needs, and what the log line needs of it is
/// noted here.
async fn stages(app: &App, inbound: &Inbound<'_>, report: &mut Report) -> Result<Handled> {
    let alert = verify::verify(inbound)?;
    report.action = Some(alert.envelope.action.chars().take(64).collect());
    if let Some(noted) = note::note(app, &alert).await? {
        return Ok(noted);
    }
    decided(app, &inbound.frame, &alert, report).await
}

/// Runs a deferred alert's stages again, after Sentry was answered (the worker's pass): the
/// report says what the log line says of it.
pub async fn resume(
    app: &App,
    frame: &Frame<'_>,
    alert: &verify::Alert,
) -> (Result<Handled>, Report) {
    let mut report = Report {
        resource: Some(alert.resource.clone()),
        action: Some(alert.envelope.action.chars().take(64).collect()),
        ..Report::default()
    };
    let result = decided(app, frame, alert, &mut report).await;
    (result, report)
}

/// The stages from decide on.
async fn decided(
    app: &App,
    frame: &Frame<'_>,
    alert: &verify::Alert,
    report: &mut Report,
) -> Result<Handled> {
    let decided = decide::decide(app, frame, alert)?;
    report.rule = decided.facts.rule.clone();
    if let Some(target) = decided.decision.target() {
        report.feature = Some(target.feature.clone());
        report.environment = Some(target.environment.clone());
    }
    let resolved = match suspect::resolve(app, frame, alert, decided).await? {
        Resolution::Now(resolved) => resolved,
        Resolution::Later(wait) => return deferred::defer(app, frame, alert, wait).await,
    };
    if resolved.suspects.is_some() {
        report.suspects = resolved.suspects;
        if let Some(target) = resolved.decisions.first().and_then(|d| d.decision.target()) {
            report.feature = Some(target.feature.clone());
        }
    }
    let mut decisions = resolved.decisions;
    if decisions.len() <= 1 {
        let decided = decisions
            .pop()
            .ok_or_else(|| Error::Config("no decision".into()))?;
        return switch(app, frame, alert, decided, 0).await;
    }
    // `SUSPECTS=all`: each suspect in turn, most recent change first, each through every stage.
    let mut results = Vec::with_capacity(decisions.len());
    for (part, decided) in decisions.into_iter().enumerate() {
        results.push(switch(app, frame, alert, decided, part).await);
    }
    answer::several(results)
}

/// Guards, records and applies (or queues) one decision; `part` numbers the decisions of one
/// alert (each has its own replay record).
async fn switch(
    app: &App,
    frame: &Frame<'_>,
    alert: &verify::Alert,
    decided: decide::Decided,
    part: usize,
) -> Result<Handled> {
    let accepted = match guard::guard(app, alert, decided).await? {
        Guarded::Pass(accepted) => accepted,
        Guarded::Answer(handled) => return Ok(handled),
    };
    let recorded = record::record(app, frame, alert, accepted, part).await?;
    dispatch::apply_or_queue(app, recorded).await
}
