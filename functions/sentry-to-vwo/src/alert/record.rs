//! Stage 4, record: the alert is accepted from here on (Sentry never sends it again). With the
//! state table: the replay record first (a refused replay must not count as a decision: it would
//! overtake a queued kill), then at once the flag's decision with its lease and the token's
//! request slot — two round trips to DynamoDB in sequence before VWO, not four.

use std::time::Duration;

use bridge_platform::clock::unix_secs;
use bridge_platform::frame::Frame;
use bridge_platform::Result;
use sha2::{Digest, Sha256};

use super::guard::Accepted;
use super::verify::{Alert, Pass};
use crate::app::App;
use crate::toggle::apply::Ahead;
use crate::toggle::job::ToggleJob;

/// Kept free before the invocation's deadline to answer and log.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// An accepted job, ready for the fast path.
#[derive(Debug)]
pub struct Recorded {
    /// The job, with its generation.
    pub job: ToggleJob,
    /// This attempt's lease owner.
    pub owner: String,
    /// How long the fast path may try.
    pub budget: Duration,
    /// The lease and request slot taken with the decision.
    pub ahead: Ahead,
}

/// Records `accepted` as the flag's latest decision; `part` numbers the decisions of one alert
/// (`SUSPECTS=all`): each but the first has a replay record of its own.
pub async fn record(
    app: &App,
    frame: &Frame<'_>,
    alert: &Alert,
    accepted: Accepted,
    part: usize,
) -> Result<Recorded> {
    let Accepted {
        target,
        enabled,
        restore,
        facts,
    } = accepted;
    let mut job = ToggleJob {
        rule: facts.rule,
        rule_id: facts.rule_id,
        web_url: facts.web_url,
        suspect: facts.suspect,
        ..ToggleJob::new(target, enabled, restore, unix_secs())
    };
    let target = &job.target;
    let catalog = app.catalog();
    job.environment_id = app
        .guard_rails
        .known_environment(catalog, &target.account, &target.environment)
        .await
        .map(|e| e.id);
    let owner = frame.owner();
    let budget = fast_path_budget(app, frame, alert.pass);
    let mut ahead = Ahead::default();
    if let Some(state) = app.state() {
        let max_age = app.config.max_webhook_age;
        state
            .accept_once(&replay_key(&alert.replay, part), max_age, &owner)
            .await?;
        let (flag_key, hold) = (job.flag_key(), budget + Duration::from_secs(1));
        let (decision, slot) = tokio::join!(
            state.decide(&flag_key, &owner, hold),
            app.vwo.reserve(budget)
        );
        let decision = decision?;
        job.generation = decision.generation;
        ahead = Ahead {
            leased: decision.leased,
            slot: Some(slot),
        };
    }
    Ok(Recorded {
        job,
        owner,
        budget,
        ahead,
    })
}

/// With a queue, the fast path's budget, within what is left of Sentry's second counted from
/// the request's arrival ([`ANSWER_WITHIN`]), whatever the stages before took; without one,
/// until the invocation's own deadline (Sentry hung up after 1 s anyway). In the worker's pass
/// Sentry was answered: VWO gets its whole budget.
fn fast_path_budget(app: &App, frame: &Frame<'_>, pass: Pass) -> Duration {
    if pass.answered() {
        return app.config.common.vwo.budget;
    }
    match app.queue() {
        Some(_) => within_answer(app.config.fast_path, frame.arrived.elapsed()),
        None => frame
            .time_left(DEADLINE_MARGIN)
            .unwrap_or(app.config.common.vwo.budget),
    }
}

/// How long after its arrival an alert is answered at the latest: Sentry waits 1 s
/// (`sentry-apps.webhook.timeout.sec`), less the time the answer itself takes (recording the
/// kill, queueing what is left, the reply).
pub const ANSWER_WITHIN: Duration = Duration::from_millis(800);

/// `fast_path`, or what is left after `elapsed` of [`ANSWER_WITHIN`] — or of `fast_path` itself
/// where an operator set it longer than Sentry waits (a local run, a test) — whichever is
/// shorter.
fn within_answer(fast_path: Duration, elapsed: Duration) -> Duration {
    let window = ANSWER_WITHIN.max(fast_path);
    fast_path.min(window.saturating_sub(elapsed))
}

/// The state-table key of a delivery's `part`-th decision: the delivery's replay key (a hash of
/// its signature; the signature itself is never stored or logged), hashed again with the part
/// for each decision after the first.
fn replay_key(replay: &str, part: usize) -> String {
    if part == 0 {
        return replay.to_owned();
    }
    let mut hash = Sha256::new();
    hash.update(replay.as_bytes());
    hash.update(format!("#{part}").as_bytes());
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_ends_within_sentrys_second_counted_from_arrival() {
        let ms = Duration::from_millis;
        // Quick stages: the configured fast path.
        assert_eq!(within_answer(ms(600), ms(100)), ms(600));
        // Slow stages (a cold container's reads): what is left of the answer's time.
        assert_eq!(within_answer(ms(600), ms(500)), ms(300));
        // Nothing left: no attempt (the kill is queued at once).
        assert_eq!(within_answer(ms(600), ms(900)), Duration::ZERO);
        // A fast path set longer than Sentry waits is counted from the arrival too.
        assert_eq!(within_answer(ms(5000), ms(300)), ms(4700));
    }
}
