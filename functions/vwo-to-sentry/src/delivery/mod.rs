//! A VWO delivery from the webhook to Sentry's change log, as named stages in the order they run:
//!
//! 1. [`verify`]: the request's shape, `x-vwo-auth`, the payload and the webhook URL's target;
//! 2. [`lease`]: the environment's lease on its stored snapshot (the first delivery records a
//!    baseline instead: nothing is sent);
//! 3. [`read`]: the environment's SDK settings file as VWO's SDKs read it, and the rest of the
//!    workspace's flag list;
//! 4. [`diff`]: the changes since the stored snapshot, as Sentry's actions;
//! 5. [`send`]: who made each change, and the batch posted to Sentry, signed;
//! 6. [`remember`]: the kill switch's records consumed, each change kept for its suspect, the
//!    snapshot committed with the lease.
//!
//! Every stage reads one [`Delivery`]; what the log line needs is noted here, from what each
//! stage returns.

pub mod diff;
pub mod lease;
pub mod read;
pub mod remember;
pub mod send;
pub mod verify;

use std::time::Duration;

use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};
use lambda_http::Request;
use tokio::time::Instant;

use crate::answer::{self, Delivered, Handled, Report};
use crate::app::App;
use crate::state::Acquired;
use bridge_vwo::settings_file::snapshot::{self, Snapshot};
use bridge_vwo::webhook_url::Target;

/// One delivery: the app, the verified request, what it is about, and how far it may go.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The warm state.
    pub app: &'a App,
    /// The checked request: body, query, request id, deadline.
    pub frame: Frame<'a>,
    /// Which environment, and how its flags are named in Sentry.
    pub target: Target,
    /// VWO's `action` (bounded): every action may have changed the environment's flags.
    pub action: Option<String>,
    /// When VWO says the change happened (Unix seconds; the time of receipt when it does not).
    pub timestamp: i64,
    /// The earlier of the invocation's deadline and, once taken, the lease's end.
    pub deadline: Deadline,
}

/// Runs one delivery through every stage; `report` collects what the log line says.
pub(crate) async fn run(app: &App, req: &Request, report: &mut Report) -> Result<Delivered> {
    let mut delivery = verify::verify(app, req).await?;
    report.action = delivery.action.clone();
    report.environment = Some(delivery.target.environment.clone());
    let lease = match lease::take(&delivery).await? {
        Acquired::Lease(lease) => lease,
        Acquired::Empty => {
            let (delivered, flags) = lease::record_baseline(&delivery).await?;
            report.flags = flags;
            return Ok(delivered);
        }
    };
    delivery.deadline = Deadline::new(&delivery.frame, Some(lease.ends_at()));
    let stored = &lease.stored().snapshot;
    let mut current = match stages(&delivery, stored, report).await {
        Ok(staged) => staged,
        Err(e) => {
            // Whatever failed, free the environment for VWO's retry.
            lease.abandon().await;
            return Err(e);
        }
    };
    // What was sent is committed with the list's progress: a failed page stops only the list.
    let progress = read::rest_of_list(&delivery, &mut current.1).await;
    lease.finish(&current.1).await?;
    Ok(answer::delivered(current.0, &current.1, progress))
}

/// Read, diff, send and remember under the lease on `stored`; a snapshot of an earlier layout is
/// only recorded anew. Returns the outcome and the snapshot to commit.
async fn stages(
    delivery: &Delivery<'_>,
    stored: &Snapshot,
    report: &mut Report,
) -> Result<(Handled, Snapshot)> {
    let outdated = stored.format != snapshot::FORMAT;
    // A snapshot of an earlier layout is read anew, keeping what it knew of flags that are off
    // here and of the flag list (fingerprints of another layout are not compared).
    let known_key = stored.sdk_key.as_deref().filter(|_| !outdated);
    let current = read::environment(delivery, known_key, stored).await?;
    report.flags = current.flags.len();
    if outdated {
        tracing::info!("stored snapshot has an earlier layout; recording a new baseline");
        return Ok((Handled::Baseline, current));
    }
    let changes = diff::reportable(delivery, stored, &current);
    report.changes = changes.reportable.len();
    if changes.reportable.is_empty() {
        return Ok((changes.unreported(), current));
    }
    let sent = send::send(delivery, stored, &current, &changes.reportable).await?;
    report.by_kill_switch = sent.kills.len();
    remember::remember(delivery, &current, &changes.reportable, &sent).await?;
    let handled = Handled::Sent {
        sent: sent.changes,
        skipped: changes.skipped,
    };
    Ok((handled, current))
}

/// How far one delivery may go: the lease it holds and the invocation's own deadline.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    /// The earlier of both ends, if either is known.
    pub at: Option<Instant>,
}

impl Deadline {
    /// The earlier of the invocation's deadline (if the request carries one) and `lease_end`.
    pub fn new(frame: &Frame<'_>, lease_end: Option<Instant>) -> Self {
        let at = match (frame.deadline_instant(), lease_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Deadline { at }
    }

    /// Fails unless `needed` still fits before the deadline.
    pub fn require(&self, needed: Duration, before: &str) -> Result<()> {
        match self.at {
            Some(at) if Instant::now() + needed > at => Err(Error::Busy(format!(
                "too little time left to {before}; VWO will deliver again"
            ))),
            _ => Ok(()),
        }
    }
}
