//! Decisions that wait, carried by the queue: an `@suspect` alert whose evidence is not there
//! within Sentry's second is answered at once (202, `deferred`) and decided later by the worker,
//! which runs the alert's stages again from the queue message ([`message`]).
//!
//! Three things wait ([`Wait`]):
//! - the issue's `issue.created`, which Sentry sends in no fixed order with the alert of the
//!   issue's first event: up to [`ISSUE_START_WAIT`] after the alert arrived;
//! - Sentry's API, after a timeout, a 5xx or a 429 (or reads that do not fit in the answer's
//!   time): up to [`SENTRY_RETRY_WAIT`], as Sentry sends an alert once and never again;
//! - VWO's environments, when no cache knows the rule's environment: no VWO read happens before
//!   Sentry is answered.
//!
//! Nothing is guessed: a start that never came is a reason ("cannot tell when issue … began");
//! Sentry's API failing for 15 minutes is an error the worker keeps on the dead-letter queue.

pub mod message;
pub mod resume;

use std::time::Duration;

use bridge_platform::clock::unix_millis;
use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};

use super::verify::Alert;
pub use super::verify::Pass;
use crate::answer::Handled;
use crate::app::App;
use message::DeferredAlert;

/// How long an alert waits for its issue's `issue.created`, counted from its arrival.
pub const ISSUE_START_WAIT: Duration = Duration::from_secs(120);

/// How long a decision is retried while Sentry's API (or VWO's environments) fail, counted from
/// the alert's arrival.
pub const SENTRY_RETRY_WAIT: Duration = Duration::from_secs(900);

/// Why a decision waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The issue's `issue.created` has not come (and there is no Sentry token to ask).
    IssueStart {
        /// The issue's id.
        issue: String,
    },
    /// Sentry's API failed transiently, or its reads did not fit in the answer's time.
    Sentry {
        /// What happened (no secret: statuses and timings).
        reason: String,
        /// The wait Sentry asked for (`X-Sentry-Rate-Limit-Reset`), if any.
        after: Option<Duration>,
    },
    /// The rule's environment is known to no cache: VWO's environments are read after the
    /// answer.
    Environment {
        /// The environment as the rule names it.
        environment: String,
    },
}

impl Wait {
    /// How long after the alert's arrival the wait may last.
    fn limit(&self) -> Duration {
        match self {
            Wait::IssueStart { .. } => ISSUE_START_WAIT,
            Wait::Sentry { .. } | Wait::Environment { .. } => SENTRY_RETRY_WAIT,
        }
    }

    /// The delay before attempt `attempt + 1`.
    fn delay(&self, attempt: u32) -> Duration {
        let doubling = |first: u64, most: u64| {
            Duration::from_secs(first.saturating_mul(1 << attempt.min(10)).min(most))
        };
        match self {
            Wait::IssueStart { .. } => doubling(3, 30),
            Wait::Sentry {
                after: Some(after), ..
            } => *after,
            Wait::Sentry { .. } => doubling(5, 120),
            Wait::Environment { .. } => Duration::ZERO,
        }
    }

    /// `waiting for issue 1170820242's issue.created (up to 2 min)`.
    pub fn describe(&self) -> String {
        match self {
            Wait::IssueStart { issue } => format!(
                "waiting for issue {issue}'s issue.created to tell when it began (up to {} min)",
                ISSUE_START_WAIT.as_secs() / 60
            ),
            Wait::Sentry { reason, .. } => format!(
                "{reason}; retried from the queue for up to {} min",
                SENTRY_RETRY_WAIT.as_secs() / 60
            ),
            Wait::Environment { environment } => {
                format!("reading VWO's environment {environment} after the answer")
            }
        }
    }

    /// What becomes of the alert once the wait has lasted its limit: a start that never came is
    /// a reason; a failing API, an error (kept on the dead-letter queue by the worker).
    fn ended(self) -> Result<Handled> {
        match self {
            Wait::IssueStart { issue } => Ok(Handled::Ignored(format!(
                "cannot tell when issue {issue} began: no issue.created came within {} min of \
                 the alert — subscribe the integration to issue webhooks, or give the kill switch \
                 a Sentry token (SENTRY_API_TOKEN_PARAM)",
                ISSUE_START_WAIT.as_secs() / 60
            ))),
            Wait::Sentry { reason, .. } => Err(Error::Upstream {
                service: "Sentry",
                status: None,
                message: format!(
                    "{reason}; retried for {} min, nothing switched",
                    SENTRY_RETRY_WAIT.as_secs() / 60
                ),
            }),
            Wait::Environment { environment } => Err(Error::Upstream {
                service: "VWO",
                status: None,
                message: format!(
                    "environment {environment} could not be read for {} min, nothing switched",
                    SENTRY_RETRY_WAIT.as_secs() / 60
                ),
            }),
        }
    }
}

/// Whether `alert` may wait: only with the queue (without it, the answer says why nothing
/// was switched).
pub fn possible(app: &App) -> bool {
    app.queue().is_some()
}

/// Puts `alert` on the queue to be decided after `wait`, and says so (202); or, once the wait
/// has lasted its limit, ends it. A delivery's first wait is recorded against its replay key,
/// so a replayed request does not wait twice.
pub async fn defer(app: &App, frame: &Frame<'_>, alert: &Alert, wait: Wait) -> Result<Handled> {
    let queue = app
        .queue()
        .ok_or_else(|| Error::Config("a decision can wait only with TOGGLE_QUEUE_URL".into()))?;
    let (arrived_ms, attempt) = match alert.pass {
        Pass::Request => (
            unix_millis().saturating_sub(frame.arrived.elapsed().as_millis() as u64),
            0,
        ),
        Pass::Resumed {
            arrived_ms,
            attempt,
        } => (arrived_ms, attempt + 1),
    };
    let delay = wait.delay(attempt);
    let ends_ms = arrived_ms + wait.limit().as_millis() as u64;
    if unix_millis() + delay.as_millis() as u64 > ends_ms {
        return wait.ended();
    }
    let query = frame
        .query
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut deferred = DeferredAlert::new(frame.body, query, &alert.resource, &alert.replay)?;
    deferred.arrived_ms = arrived_ms;
    deferred.attempt = attempt;
    let text = deferred.encode()?;
    if let (Pass::Request, Some(state)) = (alert.pass, app.state()) {
        let key = format!("{}#deferred", alert.replay);
        state
            .accept_once(&key, app.config.max_webhook_age, &frame.owner())
            .await?;
    }
    queue.send_text(&text, delay).await?;
    Ok(Handled::Deferred {
        reason: wait.describe(),
        retry_in_secs: delay.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_sentrys_reset_is_kept() {
        let issue = Wait::IssueStart { issue: "7".into() };
        let secs = |w: &Wait, a| w.delay(a).as_secs();
        assert_eq!(
            [secs(&issue, 0), secs(&issue, 1), secs(&issue, 5)],
            [3, 6, 30]
        );
        let failing = Wait::Sentry {
            reason: "Sentry answered 502".into(),
            after: None,
        };
        assert_eq!([secs(&failing, 0), secs(&failing, 9)], [5, 120]);
        let limited = Wait::Sentry {
            reason: "429".into(),
            after: Some(Duration::from_secs(7)),
        };
        assert_eq!(secs(&limited, 3), 7);
        assert_eq!(issue.limit(), Duration::from_secs(120));
        assert_eq!(limited.limit(), Duration::from_secs(900));
    }

    #[test]
    fn a_wait_that_lasted_its_limit_ends_without_a_guess() {
        let ended = Wait::IssueStart { issue: "7".into() }.ended().unwrap();
        assert!(
            matches!(&ended, Handled::Ignored(r) if r.starts_with("cannot tell when issue 7 began: no issue.created came within 2 min")),
            "{ended:?}"
        );
        let failing = Wait::Sentry {
            reason: "Sentry answered 502".into(),
            after: None,
        };
        let error = failing.ended().unwrap_err().to_string();
        assert!(
            error.contains("retried for 15 min, nothing switched"),
            "{error}"
        );
    }
}
