//! The toggle worker: drains the queue of accepted kills that the fast path could not finish.
//!
//! For each job: past the retry horizon → dead-letter queue; otherwise apply it in order
//! ([`crate::toggle::apply`]). VWO's answer decides what follows: done or overtaken by a later decision
//! → deleted; refused by VWO (unknown flag, bad request) → dead-letter queue; anything else →
//! kept invisible for the wait VWO asks for (≥ 60 s after a 429/503, `Retry-After`) or a
//! growing back-off, then tried again. Jobs are reported one by one to SQS
//! (`ReportBatchItemFailures`), so one slow flag never holds back another.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bridge_platform::clock::{unix_millis, unix_secs as unix_now};
use bridge_platform::secrets::{ParameterSource, SecretCache};
use bridge_platform::{telemetry, Error, Result};
use bridge_vwo::api::{TokenSource, VwoClient};

use crate::alert::deferred::message::DeferredAlert;
use crate::alert::deferred::resume;
use crate::answer;
use crate::app::App;
use crate::config::WorkerConfig;
use crate::routes::Route;
use crate::rule_form::catalog::workspace_list::{self, refresh::Refresh};
use crate::toggle::apply::{self, Applied};
use crate::toggle::job::ToggleJob;
use crate::toggle::kill_state::KillState;
use crate::toggle::queue::ToggleQueue;

/// Function name used in metrics.
pub const FUNCTION: &str = "toggle-worker";

/// How many deliveries a deferred alert gets for failures of our own (the state table, Parameter
/// Store) before it is kept on the dead-letter queue.
const DECIDE_RECEIVES: u32 = 5;

/// Longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(900);

/// The longest a received message is kept invisible: SQS refuses more than 12 h counted from
/// the receive, so a little less; a longer wait is carried on by the next receive.
const MAX_HIDE: Duration = Duration::from_secs(12 * 3600 - 300);

/// Everything a warm worker keeps between invocations.
#[derive(Debug)]
pub struct Worker {
    /// Configuration.
    pub config: WorkerConfig,
    /// The VWO token.
    pub secrets: SecretCache,
    /// VWO client, holding to the shared rate gate.
    pub vwo: VwoClient,
    /// Per-flag order.
    pub state: KillState,
    /// The toggle queue (visibility changes).
    pub queue: ToggleQueue,
    /// The dead-letter queue.
    pub dead_letters: ToggleQueue,
    /// The kill switch's pipeline, for alerts whose decision waits on the queue (with the kill
    /// switch's configuration).
    pub alerts: Option<App>,
    /// The last deferred alerts decided here (outcome, detail), newest last: what `bridge local`
    /// shows, as the log line says it.
    decided: std::sync::Mutex<std::collections::VecDeque<(&'static str, String)>>,
}

/// How many decisions [`Worker::recent_decisions`] keeps.
const RECENT_DECISIONS: usize = 32;

/// What happened to one job, for the log line and the metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// VWO confirmed the kill.
    Toggled,
    /// VWO confirmed the restore.
    Restored,
    /// Overtaken by a later decision for the flag.
    Superseded,
    /// Not done; tried again later.
    Retry,
    /// Moved to the dead-letter queue.
    DeadLettered,
    /// A deferred alert decided (or waiting again): what became of it is logged.
    Decided,
    /// A step of the workspace's flag list refresh.
    Listed,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Toggled => "toggled",
            Outcome::Restored => "restored",
            Outcome::Superseded => "superseded",
            Outcome::Retry => "retry",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Decided => "decided",
            Outcome::Listed => "listed",
        }
    }
}

/// The back-off before receive number `receives + 1`: `first`, twice that, ... up to 15 min.
pub fn backoff(first: Duration, receives: u32) -> Duration {
    let doublings = receives.saturating_sub(1).min(16);
    first.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

impl Worker {
    /// A worker reading the token from `source`, with the AWS configuration `aws`.
    pub fn new(
        config: WorkerConfig,
        source: Arc<dyn ParameterSource>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let gate = config
            .common
            .rate_gate(dynamodb.clone(), &config.state_table);
        let alerts = config
            .alerts
            .clone()
            .map(|alerts| App::for_worker(alerts, source.clone(), aws))
            .transpose()?;
        Ok(Worker {
            alerts,
            decided: std::sync::Mutex::default(),
            secrets: config.common.secret_cache(source, Vec::new()),
            vwo: VwoClient::new(config.common.vwo.clone())?.with_gate(gate),
            state: KillState::new(dynamodb, &config.state_table),
            queue: ToggleQueue::new(sqs.clone(), &config.toggle_queue_url),
            dead_letters: ToggleQueue::new(sqs, &config.dead_letter_url),
            config,
        })
    }

    /// Cold-start work: read the token and open the VWO connection, together.
    pub async fn warm_up(&self) {
        let (secrets, ()) = tokio::join!(self.secrets.refresh(), self.vwo.warm_up());
        if let Err(e) = secrets {
            tracing::error!(error = %e, "could not read the VWO token at cold start; will retry per job");
        }
    }

    fn token(&self) -> TokenSource<'_> {
        self.config.common.token(&self.secrets)
    }

    /// Moves `job` (or an unreadable body) to the dead-letter queue with `reason`.
    async fn dead_letter(&self, job: &ToggleJob, reason: &str) -> Result<()> {
        self.dead_letters
            .send_with(job, Duration::ZERO, Some(reason))
            .await
    }

    /// Handles one message: what became of it ([`Outcome::Retry`] keeps it on the queue).
    async fn handle_message(&self, message: &SqsMessage) -> Result<Outcome> {
        let body = message.body.as_deref().unwrap_or_default();
        let receives: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if let Some(deferred) = DeferredAlert::decode(body) {
            return self.decide(&deferred, message, receives).await;
        }
        if let Some(refresh) = Refresh::decode(body) {
            return Ok(self.refresh_flag_list(refresh).await);
        }
        let job: ToggleJob = match serde_json::from_str(body) {
            Ok(job) => job,
            Err(e) => {
                // Not ours to understand: keep it for a person, never drop it.
                tracing::error!(error = %e, "unreadable toggle job");
                self.dead_letters
                    .send_raw(body, "unreadable toggle job")
                    .await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        self.handle_job(&job, message, receives).await
    }

    /// Handles one toggle job: past the horizon, waiting out VWO's wait, or applied.
    async fn handle_job(
        &self,
        job: &ToggleJob,
        message: &SqsMessage,
        receives: u32,
    ) -> Result<Outcome> {
        let age = unix_now().saturating_sub(job.accepted_at);
        if age > self.config.horizon.as_secs() {
            let reason = format!(
                "retry horizon of {} s passed ({} attempts)",
                self.config.horizon.as_secs(),
                receives
            );
            tracing::error!(feature = %job.target.feature, environment = %job.target.environment, %reason, "kill moved to the dead-letter queue");
            self.dead_letter(job, &reason).await?;
            return Ok(Outcome::DeadLettered);
        }
        let receipt = message.receipt_handle.as_deref();
        // VWO's wait for the token, carried by the job past SQS's 900 s delay: wait out the rest
        // without calling VWO.
        let now_ms = unix_millis();
        if let Some(not_before) = job.not_before_ms.filter(|t| *t > now_ms) {
            let wait = Duration::from_millis(not_before - now_ms);
            return self
                .wait_or_dead_letter(job, receipt, wait, "VWO asked to wait for this token")
                .await;
        }
        let owner =
            bridge_platform::frame::owner_name(message.message_id.as_deref().unwrap_or_default());
        let applied = apply::apply(
            &self.vwo,
            self.token(),
            Some(&self.state),
            job,
            apply::Attempt {
                budget: self.config.common.vwo.budget,
                owner: &owner,
                ahead: apply::Ahead::default(),
            },
        )
        .await;
        let outcome = match applied {
            Applied::Done(reply) => {
                tracing::info!(feature = %job.target.feature, environment = %job.target.environment, enabled = job.enabled, vwo_status = reply.status, age_secs = age, receives, "queued toggle applied");
                if job.restore {
                    Outcome::Restored
                } else {
                    Outcome::Toggled
                }
            }
            Applied::Superseded { latest } => {
                tracing::info!(feature = %job.target.feature, generation = job.generation, latest, "queued toggle overtaken by a later decision; dropped");
                Outcome::Superseded
            }
            Applied::Refused(e) => {
                tracing::error!(feature = %job.target.feature, error = %e, "VWO refused the toggle; moved to the dead-letter queue");
                self.dead_letter(job, &e.to_string()).await?;
                Outcome::DeadLettered
            }
            Applied::Retry { after, error } => {
                let wait = after.unwrap_or_else(|| backoff(self.config.first_backoff, receives));
                return self
                    .wait_or_dead_letter(job, receipt, wait, &error.to_string())
                    .await;
            }
        };
        Ok(outcome)
    }

    /// Decides a deferred alert with the kill switch's pipeline and logs what became of it, as
    /// the kill switch logs an answer. Waiting again is a new message; a wait that lasted its
    /// limit on a failing Sentry (or VWO) and an alert that cannot be decided go to the
    /// dead-letter queue, with the reason, for a person; other failures are delivered again
    /// (at most [`DECIDE_RECEIVES`] times).
    async fn decide(
        &self,
        deferred: &DeferredAlert,
        message: &SqsMessage,
        receives: u32,
    ) -> Result<Outcome> {
        let body = message.body.as_deref().unwrap_or_default();
        let Some(app) = &self.alerts else {
            let reason = "a deferred alert, but the worker has no kill switch configuration (SENTRY_CLIENT_SECRET_PARAM)";
            tracing::error!(reason, "deferred alert moved to the dead-letter queue");
            self.dead_letters.send_raw(body, reason).await?;
            return Ok(Outcome::DeadLettered);
        };
        let id = message.message_id.as_deref().unwrap_or_default();
        // Boxed: the alert pipeline's future is deep, and the worker's own stays small.
        let (result, mut report) = match Box::pin(resume::resume(app, deferred, id)).await {
            Ok(resumed) => resumed,
            Err(e) => {
                tracing::error!(error = %e, "deferred alert cannot be read; moved to the dead-letter queue");
                self.dead_letters.send_raw(body, &e.to_string()).await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        let keep = match &result {
            Err(Error::Upstream { .. } | Error::BadRequest(_) | Error::Config(_)) => true,
            Err(Error::Replayed) => false,
            Err(_) if receives >= DECIDE_RECEIVES => true,
            Err(e) => {
                tracing::warn!(error = %e, receives, "deferred alert not decided; SQS delivers it again");
                return Ok(Outcome::Retry);
            }
            Ok(_) => false,
        };
        let answer = answer::respond(Route::Alert, result, &mut report);
        let waited = unix_now().saturating_sub(deferred.arrived_ms / 1000);
        answer.log(
            &report,
            &format!("deferred alert decided, {waited} s after it arrived"),
        );
        self.note_decision(answer.outcome, &answer.detail);
        if keep {
            self.dead_letters.send_raw(body, &answer.detail).await?;
            return Ok(Outcome::DeadLettered);
        }
        Ok(Outcome::Decided)
    }

    /// Runs one step of the workspace's flag list refresh (for the alert rule's flag drop-down;
    /// it schedules the next itself). A failed step is logged and dropped: the next drop-down
    /// starts the refresh again once its claim lapses.
    async fn refresh_flag_list(&self, refresh: Refresh) -> Outcome {
        let Some(app) = &self.alerts else {
            tracing::warn!(
                "a flag list refresh, but the worker has no kill switch configuration; dropped"
            );
            return Outcome::Decided;
        };
        match Box::pin(workspace_list::refresh::step(app, refresh)).await {
            Ok(stepped) => tracing::info!(
                account_id = refresh.account_id,
                ?stepped,
                "flag list refresh step"
            ),
            Err(e) => {
                tracing::warn!(account_id = refresh.account_id, error = %e, "flag list refresh step failed; the next drop-down starts it again")
            }
        }
        Outcome::Listed
    }

    /// The last deferred alerts decided by this worker (outcome, detail), oldest first.
    pub fn recent_decisions(&self) -> Vec<(&'static str, String)> {
        match self.decided.lock() {
            Ok(decided) => decided.iter().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    fn note_decision(&self, outcome: &'static str, detail: &str) {
        if let Ok(mut decided) = self.decided.lock() {
            if decided.len() == RECENT_DECISIONS {
                decided.pop_front();
            }
            decided.push_back((outcome, detail.chars().take(500).collect()));
        }
    }

    /// Keeps the job for `wait` (as long as SQS allows per receive; a re-delivery waits out the
    /// rest), or, when that ends past the retry horizon, moves it to the dead-letter queue now
    /// with the reason.
    async fn wait_or_dead_letter(
        &self,
        job: &ToggleJob,
        receipt: Option<&str>,
        wait: Duration,
        reason: &str,
    ) -> Result<Outcome> {
        let horizon_ends = job
            .accepted_at
            .saturating_add(self.config.horizon.as_secs());
        if unix_now().saturating_add(wait.as_secs()) > horizon_ends {
            let reason = format!(
                "{reason}: the wait of {} s ends past the retry horizon of {} s",
                wait.as_secs(),
                self.config.horizon.as_secs()
            );
            tracing::error!(feature = %job.target.feature, environment = %job.target.environment, %reason, "kill moved to the dead-letter queue");
            self.dead_letter(job, &reason).await?;
            return Ok(Outcome::DeadLettered);
        }
        let hide = wait.min(MAX_HIDE);
        tracing::warn!(feature = %job.target.feature, %reason, wait_secs = wait.as_secs(), hide_secs = hide.as_secs(), "toggle not applied yet; will retry");
        if let Some(receipt) = receipt {
            if let Err(e) = self.queue.retry_after(receipt, hide).await {
                tracing::warn!(error = %e, "could not set the retry delay; the queue's visibility timeout applies");
            }
        }
        Ok(Outcome::Retry)
    }

    /// Handles a batch; failed items are reported so that SQS keeps only them.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        for message in &event.records {
            let outcome = match self.handle_message(message).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(error = %e, "toggle job failed; SQS delivers it again");
                    Outcome::Retry
                }
            };
            telemetry::emit_outcome_metric(FUNCTION, outcome.name());
            if outcome == Outcome::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                failures.push(failure);
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }
}

impl Worker {
    /// Does once what Lambda's SQS event source mapping does: receive a batch from the toggle
    /// queue, hand it to [`Worker::handle`], delete what it finished. For `bridge local` and
    /// tests, where no event source mapping runs. Returns the number of messages received.
    pub async fn drain_once(&self, wait: Duration) -> Result<usize> {
        let messages = self.queue.receive(10, wait).await?;
        let received = messages.len();
        if received == 0 {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        event.records = messages;
        let response = self.handle(event.clone()).await;
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let failed = response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == id);
            if let (false, Some(receipt)) = (failed, message.receipt_handle.as_deref()) {
                self.queue.delete(receipt).await?;
            }
        }
        Ok(received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_fifteen_minutes() {
        let first = Duration::from_secs(10);
        assert_eq!(backoff(first, 1), Duration::from_secs(10));
        assert_eq!(backoff(first, 2), Duration::from_secs(20));
        assert_eq!(backoff(first, 4), Duration::from_secs(80));
        assert_eq!(backoff(first, 40), Duration::from_secs(900));
    }
}
