//! What a suspect is judged against: when the issue began (its `issue.created`, kept by the
//! kill switch, or Sentry's API), and what the issue's events say (Sentry's API: the issue's
//! event count, its first event's flags, and its latest events' flags in the alert's
//! environment) — or, with `SUSPECT_EVIDENCE=event`, the alert's event alone.
//!
//! Three reads of Sentry's API per alert, made at once (the issue, its oldest event, one page of
//! its latest events), with the token of `SENTRY_API_TOKEN_PARAM`, re-read once after a 401. A
//! refused token ends the judgment with a reason naming it; a read that failed for a while (a
//! timeout, a 5xx, a 429), or that does not fit in the answer's time, waits on the queue
//! ([`crate::alert::deferred`]); nothing is switched on a guess.

use std::time::Duration;

use bridge_platform::clock::unix_secs;
use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};
use bridge_sentry::api::{Flags, SentryApi};

use super::Candidate;
use crate::alert::deferred::{self, Wait};
use crate::alert::note::utc;
use crate::alert::record::ANSWER_WITHIN;
use crate::alert::verify::Alert;
use crate::app::App;

/// When an issue began.
#[derive(Clone, Debug)]
pub struct Began {
    /// The issue's numeric id.
    pub issue: String,
    /// Its first seen (Unix seconds).
    pub at: i64,
}

impl Began {
    /// Issue `issue` began at `at`.
    pub fn at(at: i64, issue: &str) -> Self {
        Began {
            issue: issue.to_owned(),
            at,
        }
    }

    /// `issue 1170820242 began (first seen 12:03:10 UTC)`.
    pub fn describe(&self) -> String {
        format!("issue {} began (first seen {})", self.issue, utc(self.at))
    }
}

/// What is known of an issue: when it began, and, with a token, what its events say.
#[derive(Debug)]
pub struct Gathered {
    /// When it began.
    pub began: Began,
    /// Its events, read with Sentry's API (`None` without a token).
    events: Option<Events>,
}

/// What [`gather`] found.
#[derive(Debug)]
pub enum Found {
    /// What is known of the issue.
    Known(Gathered),
    /// Why it cannot be told (nothing is switched).
    Unknown(String),
    /// It is not known yet: the decision waits on the queue.
    Later(Wait),
}

/// Sentry's API reads made before the answer must end this long after the alert arrived;
/// slower ones are made after the answer, from the queue.
pub const READS_WITHIN: Duration = Duration::from_millis(600);

/// How long after the alert's arrival the reads before the answer may take: [`READS_WITHIN`],
/// or, where an operator set the fast path longer than Sentry waits (a local run, a test), the
/// fast path.
fn reads_within(fast_path: Duration) -> Duration {
    if fast_path > ANSWER_WITHIN {
        fast_path
    } else {
        READS_WITHIN
    }
}

/// When issue `issue` began — its `issue.created`, else Sentry's API — and, with a token, its
/// event count, first event and latest events in `environment`: the kept start and the three
/// reads of Sentry's API at once (one round trip's wait, not three). With the queue, what is
/// not there yet waits: the `issue.created` (no token), a failing or slow API.
pub async fn gather(
    app: &App,
    frame: &Frame<'_>,
    alert: &Alert,
    issue: &str,
    environment: Option<&str>,
) -> Result<Found> {
    let kept = async {
        match app.issue_starts() {
            Some(starts) => starts.get(issue, unix_secs()).await,
            None => Ok(None),
        }
    };
    let Some(api) = &app.sentry_api else {
        return Ok(match kept.await? {
            Some(at) => Found::Known(Gathered {
                began: Began::at(at, issue),
                events: None,
            }),
            None if deferred::possible(app) => Found::Later(Wait::IssueStart {
                issue: issue.to_owned(),
            }),
            None => Found::Unknown(format!(
                "cannot tell when issue {issue} began: subscribe the integration to issue \
                 webhooks, or give the kill switch a Sentry token (SENTRY_API_TOKEN_PARAM)"
            )),
        });
    };
    let reads = with_api(app, api, kept, issue, environment);
    if alert.pass.answered() || !deferred::possible(app) {
        return later_on_failure(app, reads.await);
    }
    let within = reads_within(app.config.fast_path);
    let left = within.saturating_sub(frame.arrived.elapsed());
    match tokio::time::timeout(left, reads).await {
        Ok(found) => later_on_failure(app, found),
        Err(_) => Ok(Found::Later(Wait::Sentry {
            reason: format!(
                "Sentry's API did not answer within {} ms of the alert",
                within.as_millis()
            ),
            after: Some(Duration::ZERO),
        })),
    }
}

/// The kept start and the three reads of Sentry's API, at once.
async fn with_api(
    app: &App,
    api: &SentryApi,
    kept: impl std::future::Future<Output = Result<Option<i64>>>,
    issue: &str,
    environment: Option<&str>,
) -> Result<Found> {
    let (kept, facts, oldest, latest) = tokio::join!(
        kept,
        read(app, |token| async move { api.issue(&token, issue).await }),
        read(app, |token| async move {
            api.oldest_event_flags(&token, issue).await
        }),
        read(app, |token| async move {
            api.latest_events_flags(&token, issue, environment).await
        }),
    );
    let (facts, oldest, latest) = match (facts?, oldest?, latest?) {
        (Ok(facts), Ok(oldest), Ok(latest)) => (facts, oldest, latest),
        (Err(reason), _, _) | (_, Err(reason), _) | (_, _, Err(reason)) => {
            return Ok(Found::Unknown(reason))
        }
    };
    let Some(at) = kept?.or(facts.first_seen) else {
        return Ok(Found::Unknown(format!(
            "cannot tell when issue {issue} began: Sentry's API gives no first seen"
        )));
    };
    let events = Events {
        count: facts.count,
        oldest,
        latest,
        environment: environment.map(str::to_owned),
    };
    Ok(Found::Known(Gathered {
        began: Began::at(at, issue),
        events: Some(events),
    }))
}

/// A transient failure of Sentry's API (a timeout, a 5xx, a 429, no free request slot) waits
/// on the queue when there is one; anything else is what it is.
fn later_on_failure(app: &App, found: Result<Found>) -> Result<Found> {
    match found {
        Err(error) if deferred::possible(app) => match transient(&error) {
            Some(after) => Ok(Found::Later(Wait::Sentry {
                reason: error.to_string(),
                after,
            })),
            None => Err(error),
        },
        other => other,
    }
}

/// Whether `error` passes (with the wait it asked for, if any).
fn transient(error: &Error) -> Option<Option<Duration>> {
    match error {
        Error::RateLimited { retry_after, .. } => Some(*retry_after),
        Error::SlotBusy { retry_after, .. } => Some(Some(*retry_after)),
        Error::Upstream { status, .. } => match status {
            None | Some(408 | 429 | 500..=599) => Some(None),
            Some(_) => None,
        },
        Error::Secrets(_) | Error::State(_) => Some(None),
        _ => None,
    }
}

/// The candidates what is known of the issue backs (each with its evidence written), or why
/// none is.
pub fn judge(
    app: &App,
    gathered: &Gathered,
    prefix: &str,
    candidates: Vec<Candidate>,
) -> std::result::Result<Vec<Candidate>, String> {
    let evidence = &app.config.evidence;
    let Some(events) = &gathered.events else {
        if evidence.alert_event_alone {
            let on_event = "on in the alert's event (SUSPECT_EVIDENCE=event)";
            return Ok(with_evidence(candidates, on_event));
        }
        return Err(format!(
            "no suspect switched: {} — the issue's events are read with a Sentry token \
             (SENTRY_API_TOKEN_PARAM); to act on the alert's event alone, set \
             SUSPECT_EVIDENCE=event",
            candidates
                .iter()
                .map(Candidate::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if events.count < evidence.min_events {
        return Err(format!(
            "no suspect: issue {} has {} events, fewer than SUSPECT_MIN_EVENTS={}",
            gathered.began.issue, events.count, evidence.min_events
        ));
    }
    backed(candidates, events, prefix, evidence.min_share)
}

/// The issue's event count, its first event's flags and its latest events' flags in
/// `environment`.
#[derive(Debug)]
struct Events {
    count: u64,
    oldest: Option<Flags>,
    latest: Vec<Flags>,
    environment: Option<String>,
}

/// The candidates on in the issue's first event and in at least `min_share` of its latest
/// events, or each one's failed test with its numbers.
fn backed(
    candidates: Vec<Candidate>,
    events: &Events,
    prefix: &str,
    min_share: f64,
) -> std::result::Result<Vec<Candidate>, String> {
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    let total = events.latest.len();
    let place = match &events.environment {
        Some(environment) => format!(" in {environment}"),
        None => String::new(),
    };
    for mut candidate in candidates {
        let name = format!("{prefix}{}", candidate.change.flag);
        let flag = &candidate.change.flag;
        match &events.oldest {
            None => {
                refused.push(format!("{flag}: the issue's first event is no longer kept"));
                continue;
            }
            Some(oldest) if !oldest.is_on(&name) => {
                refused.push(format!("{flag}: off in the issue's first event"));
                continue;
            }
            Some(_) => {}
        }
        let on = events.latest.iter().filter(|f| f.is_on(&name)).count();
        if total == 0 || (on as f64) < min_share * total as f64 {
            refused.push(format!(
                "{flag}: on in {on} of {total} of its latest events{place}, below \
                 SUSPECT_MIN_SHARE={min_share}"
            ));
            continue;
        }
        candidate.evidence = format!("on in {on} of {total} of its latest events{place}");
        kept.push(candidate);
    }
    if kept.is_empty() {
        return Err(format!(
            "no suspect: the issue's events do not back it — {}",
            refused.join("; ")
        ));
    }
    Ok(kept)
}

fn with_evidence(candidates: Vec<Candidate>, evidence: &str) -> Vec<Candidate> {
    candidates
        .into_iter()
        .map(|c| Candidate {
            evidence: evidence.to_owned(),
            ..c
        })
        .collect()
}

/// One read of Sentry's API with the token (re-read once after a 401); a refused token is a
/// reason, not an error.
async fn read<T, F, Fut>(app: &App, call: F) -> Result<std::result::Result<T, String>>
where
    F: Fn(bridge_platform::secrets::Secret) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let Some(param) = app
        .config
        .evidence
        .api
        .as_ref()
        .map(|a| a.token_param.as_str())
    else {
        return Err(Error::Config("no Sentry token is configured".into()));
    };
    let result = app
        .secrets
        .use_rotating(
            &[param],
            bridge_platform::secrets::Reread::AtMostEvery(std::time::Duration::from_secs(5)),
            |values| {
                let call = &call;
                async move { call(values.require(param)?.clone()).await }
            },
        )
        .await;
    match result {
        Err(Error::Upstream {
            status: Some(401 | 403),
            message,
            ..
        }) => Ok(Err(format!("no suspect: {message}"))),
        other => other.map(Ok),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_sentry::webhook::EventFlag;
    use bridge_state::latest_change::{ChangeKind, LatestChange};

    fn candidate(flag: &str) -> Candidate {
        Candidate {
            change: LatestChange {
                environment_id: "1".into(),
                flag: flag.into(),
                at: 0,
                kind: ChangeKind::SwitchedOn,
                by: "ana@example.com".into(),
                rule: None,
                earlier: Vec::new(),
            },
            before: 240,
            began: "issue 7 began".into(),
            evidence: String::new(),
        }
    }

    fn flags(on: &[&str]) -> Flags {
        Flags {
            values: on
                .iter()
                .map(|f| EventFlag {
                    flag: (*f).into(),
                    result: true,
                })
                .collect(),
            present: true,
        }
    }

    #[test]
    fn a_flag_must_be_on_in_the_first_event_and_in_most_latest_events() {
        let mut latest = vec![flags(&["search-v2", "forged"]); 1];
        latest.extend(vec![flags(&["search-v2"]); 36]);
        let events = Events {
            count: 37,
            oldest: Some(flags(&["search-v2"])),
            latest,
            environment: Some("production".into()),
        };
        let kept = backed(vec![candidate("search-v2")], &events, "", 0.9).unwrap();
        assert_eq!(
            kept[0].evidence,
            "on in 37 of 37 of its latest events in production"
        );
        // One forged event carries `forged`: the issue's other events do not.
        let refused = backed(vec![candidate("forged")], &events, "", 0.9).unwrap_err();
        assert!(
            refused.contains("forged: off in the issue's first event"),
            "{refused}"
        );
        let events = Events {
            oldest: Some(flags(&["forged"])),
            ..events
        };
        let refused = backed(vec![candidate("forged")], &events, "", 0.9).unwrap_err();
        assert!(
            refused.contains(
                "on in 1 of 37 of its latest events in production, below SUSPECT_MIN_SHARE=0.9"
            ),
            "{refused}"
        );
    }

    #[test]
    fn reads_before_the_answer_end_within_sentrys_second_unless_the_fast_path_is_longer() {
        let ms = Duration::from_millis;
        assert_eq!(reads_within(ms(600)), READS_WITHIN);
        assert_eq!(reads_within(ms(1500)), ms(1500));
    }

    #[test]
    fn sentrys_passing_failures_wait_and_the_rest_do_not() {
        let upstream = |status| Error::Upstream {
            service: "Sentry",
            status,
            message: String::new(),
        };
        assert_eq!(transient(&upstream(Some(502))), Some(None));
        assert_eq!(transient(&upstream(None)), Some(None), "a timeout");
        assert_eq!(transient(&upstream(Some(404))), None);
        let limited = Error::RateLimited {
            service: "Sentry",
            status: Some(429),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(transient(&limited), Some(Some(Duration::from_secs(7))));
        assert_eq!(transient(&Error::BadRequest("x".into())), None);
    }

    #[test]
    fn without_retained_events_nothing_is_backed() {
        let events = Events {
            count: 0,
            oldest: None,
            latest: Vec::new(),
            environment: None,
        };
        let refused = backed(vec![candidate("x")], &events, "", 0.9).unwrap_err();
        assert!(refused.contains("no longer kept"), "{refused}");
    }
}
