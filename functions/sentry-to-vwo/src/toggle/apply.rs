//! Applying one accepted decision to VWO, in order: the same steps for the fast path and the
//! worker — take the flag (only if the decision is still its latest), toggle within a budget,
//! let go — and a verdict on what to do next.

use std::time::Duration;

use bridge_platform::clock::unix_millis;
use bridge_platform::Error;
use bridge_state::kill_record::{KillRecord, DEFAULT_WINDOW};
use bridge_vwo::api::{Reply, Slot, TokenSource, VwoClient};

use crate::toggle::job::ToggleJob;
use crate::toggle::kill_state::{KillState, Lease};

pub use bridge_vwo::api::VWO_WAIT;

/// How long to wait when another decision for the same flag is being applied.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// What became of one attempt to apply a decision.
#[derive(Debug)]
pub enum Applied {
    /// VWO confirmed the new state.
    Done(Reply),
    /// A later decision for the flag was accepted; this one is dropped.
    Superseded {
        /// The flag's latest generation.
        latest: u64,
    },
    /// Not done yet; try again. `after` is the least wait (VWO's 60 s after a 429/503,
    /// `Retry-After`, the rate gate's next slot); `None` means "back off as usual".
    Retry {
        /// Least wait before the next attempt.
        after: Option<Duration>,
        /// What stood in the way.
        error: Error,
    },
    /// VWO refused the request itself (unknown flag or environment, bad request): retrying
    /// cannot help.
    Refused(Error),
}

/// What the fast path did before applying, beside counting the decision: whether the flag's
/// lease is already held for it, and the request slot taken ahead (or why none could be).
#[derive(Debug, Default)]
pub struct Ahead {
    /// The lease was taken with the decision ([`crate::toggle::kill_state::KillState::decide`]).
    pub leased: bool,
    /// The slot for the first attempt ([`VwoClient::reserve`]); `None`: take one as usual.
    pub slot: Option<bridge_platform::Result<Slot>>,
}

/// One attempt at a job: its time, the lease owner it holds the flag under, and what was done
/// ahead of it.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// How long VWO's toggle may take, retries included.
    pub budget: Duration,
    /// The name the flag's lease is held under.
    pub owner: &'a str,
    /// The lease and slot taken ahead, if any.
    pub ahead: Ahead,
}

/// Applies `job` within the attempt's budget. With `state`, only if the job is still the flag's
/// latest decision and no other decision for the flag is in flight.
pub async fn apply(
    vwo: &VwoClient,
    token: TokenSource<'_>,
    state: Option<&KillState>,
    job: &ToggleJob,
    attempt: Attempt<'_>,
) -> Applied {
    let Attempt {
        budget,
        owner,
        ahead,
    } = attempt;
    let flag_key = job.flag_key();
    if let Some(state) = state.filter(|_| !ahead.leased) {
        match state
            .lease(
                &flag_key,
                job.generation,
                owner,
                budget + Duration::from_secs(1),
            )
            .await
        {
            Ok(Lease::Acquired) => {}
            Ok(Lease::Superseded { latest }) => return Applied::Superseded { latest },
            Ok(Lease::Busy) => {
                return Applied::Retry {
                    after: Some(BUSY_WAIT),
                    error: Error::Busy("another decision for this flag is being applied".into()),
                }
            }
            Err(error) => return Applied::Retry { after: None, error },
        }
    }
    let result = match ahead.slot {
        Some(Err(error)) => Err(error),
        slot => {
            vwo.toggle_within(
                token,
                &job.target,
                job.enabled,
                budget,
                slot.and_then(Result::ok),
            )
            .await
        }
    };
    if let Some(state) = state {
        let applied = result.as_ref().ok().map(|_| job.generation);
        // The record for change tracking is written alongside the release, not before it: the
        // fast path's answer to Sentry waits for both.
        let recorded = async {
            if applied.is_some() {
                record(state, job).await;
            }
        };
        let ((), released) = tokio::join!(recorded, state.release(&flag_key, owner, applied));
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release the flag's lease; it expires by itself");
        }
    }
    verdict(result)
}

/// Writes down what VWO just confirmed, so that change tracking can tell Sentry which alert
/// rule changed the flag. The toggle stands whatever happens here: a failure is logged, and the
/// change is then reported as VWO's.
async fn record(state: &KillState, job: &ToggleJob) {
    let record = kill_record(job, unix_millis(), DEFAULT_WINDOW);
    if let Err(e) = state.records().put(&record).await {
        tracing::warn!(error = %e, feature = %job.target.feature, "could not record the toggle for change tracking; Sentry will show it as VWO's");
    }
}

/// The record of `job`, confirmed at `at_ms`, explaining changes for `window`.
pub fn kill_record(job: &ToggleJob, at_ms: u64, window: Duration) -> KillRecord {
    KillRecord {
        account: job.target.account.clone(),
        environment: job
            .environment_id
            .clone()
            .unwrap_or_else(|| job.target.environment.clone()),
        feature: job.target.feature.clone(),
        enabled: job.enabled,
        suspect: job.suspect.is_some(),
        rule: job.rule.clone(),
        rule_id: job.rule_id.clone(),
        web_url: job.web_url.clone(),
        vwo_rule: job.target.rule.clone(),
        at_ms,
        expires_at: at_ms / 1000 + window.as_secs(),
    }
}

/// What a VWO answer means for the decision.
pub fn verdict(result: bridge_platform::Result<Reply>) -> Applied {
    match result {
        Ok(reply) => Applied::Done(reply),
        // VWO's wait for the token: the time left (the client made a fresh one at least 60 s).
        Err(error @ Error::RateLimited { retry_after, .. }) => Applied::Retry {
            after: Some(retry_after.unwrap_or(VWO_WAIT)),
            error,
        },
        // No request slot in time: VWO was not called.
        Err(error @ Error::SlotBusy { retry_after, .. }) => Applied::Retry {
            after: Some(retry_after.max(Duration::from_secs(1))),
            error,
        },
        // 401/403: the token was re-read once already; an operator may still fix it.
        Err(
            error @ Error::Upstream {
                status: Some(401 | 403),
                ..
            },
        ) => Applied::Retry {
            after: Some(VWO_WAIT),
            error,
        },
        Err(
            error @ Error::Upstream {
                status: Some(408 | 409 | 425),
                ..
            },
        ) => Applied::Retry { after: None, error },
        Err(
            e @ Error::Upstream {
                status: Some(400..=499),
                ..
            },
        ) => Applied::Refused(e),
        Err(
            error @ (Error::Upstream { .. } | Error::Secrets(_) | Error::State(_) | Error::Busy(_)),
        ) => Applied::Retry { after: None, error },
        Err(e) => Applied::Refused(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_vwo::api::FlagTarget;

    fn upstream(status: Option<u16>) -> bridge_platform::Result<Reply> {
        Err(Error::Upstream {
            service: "VWO",
            status,
            message: "x".into(),
        })
    }

    #[test]
    fn the_kill_record_carries_the_alert_and_expires_after_the_window() {
        let target = FlagTarget::flag("current", "production", "checkout-new-flow");
        let job = ToggleJob {
            rule: Some("Checkout errors > 50/5m".into()),
            rule_id: Some("31".into()),
            web_url: Some(
                "https://acme.sentry.io/organizations/acme/alerts/rules/details/31/".into(),
            ),
            ..ToggleJob::new(target, false, false, 1_795_416_000)
        };
        let r = kill_record(&job, 1_795_416_001_500, DEFAULT_WINDOW);
        assert_eq!(
            r.key(),
            bridge_state::kill_record::record_key("current", "production", "checkout-new-flow")
        );
        assert!(!r.enabled);
        assert_eq!(r.rule.as_deref(), Some("Checkout errors > 50/5m"));
        assert_eq!(
            (r.rule_id.as_deref(), r.web_url.as_deref()),
            (Some("31"), job.web_url.as_deref())
        );
        assert_eq!(r.expires_at, 1_795_416_001 + 3600);
    }

    #[test]
    fn a_wait_is_kept_as_the_client_reports_it_and_a_busy_slot_is_short() {
        // The client reports VWO's wait as the time left (a fresh one: at least 60 s).
        for left in [Duration::from_secs(5), Duration::from_secs(90)] {
            let limited = Err(Error::RateLimited {
                service: "VWO",
                status: Some(429),
                retry_after: Some(left),
            });
            let Applied::Retry { after, .. } = verdict(limited) else {
                panic!("retry expected")
            };
            assert_eq!(after, Some(left));
        }
        let unknown = Err(Error::RateLimited {
            service: "VWO",
            status: Some(503),
            retry_after: None,
        });
        assert!(matches!(
            verdict(unknown),
            Applied::Retry {
                after: Some(VWO_WAIT),
                ..
            }
        ));
        let busy = Err(Error::SlotBusy {
            service: "VWO",
            retry_after: Duration::from_millis(200),
            kill_waiting: false,
        });
        assert!(matches!(
            verdict(busy),
            Applied::Retry { after: Some(d), error: Error::SlotBusy { .. } } if d == Duration::from_secs(1)
        ));
    }

    #[test]
    fn client_errors_are_refused_server_errors_retried() {
        assert!(matches!(verdict(upstream(Some(404))), Applied::Refused(_)));
        assert!(matches!(verdict(upstream(Some(400))), Applied::Refused(_)));
        assert!(matches!(
            verdict(upstream(Some(500))),
            Applied::Retry { after: None, .. }
        ));
        assert!(matches!(
            verdict(upstream(None)),
            Applied::Retry { after: None, .. }
        ));
        assert!(matches!(
            verdict(upstream(Some(403))),
            Applied::Retry {
                after: Some(VWO_WAIT),
                ..
            }
        ));
    }
}
