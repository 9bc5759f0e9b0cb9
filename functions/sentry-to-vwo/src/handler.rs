//! The kill switch's request handler: verify, decide, toggle, answer, log.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::sentry_hook::{self, Envelope};
use bridge_shared::clock::{unix_millis, unix_secs as unix_now};
use bridge_shared::http::{self, error_response, ignored_response, json_response};
use bridge_shared::rate_gate::{Priority, RateGate};
use bridge_shared::secrets::{ParameterSource, ParameterSpec, Reread, SecretCache};
use bridge_shared::vwo::{Reply, TokenSource, VwoClient};
use bridge_shared::{telemetry, Error, Result};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use sha2::{Digest, Sha256};

use crate::apply::{self, Applied};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::decision::{self, Decision, FlagChoice};
use crate::dry_run;
use crate::guard_rails::{GuardRails, Lookup};
use crate::job::{self, ToggleJob};
use crate::kill_state::KillState;
use crate::options::{self, Choice, List};
use crate::options_cache::OptionsCache;
use crate::queue::ToggleQueue;
use crate::restore_budget::RestoreBudget;
use crate::rule_action;
use crate::save_check;
use crate::test_notification::{self, TestMarker};

/// Function name used in metrics.
pub const FUNCTION: &str = "sentry-to-vwo";

/// Kept free before the invocation's deadline to answer and log.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Forced re-reads of the client secret after a signature mismatch happen at most this often, so
/// that unauthenticated requests cannot drive Parameter Store calls.
const SIGNATURE_REREAD: Reread = Reread::AtMostEvery(Duration::from_secs(5));

/// Everything a warm function keeps between invocations.
#[derive(Debug)]
pub struct App {
    /// Configuration from the environment.
    pub config: Config,
    /// The client secret and the VWO token.
    pub secrets: SecretCache,
    /// VWO API client with its connection pool (and, with a state table, the shared rate gate).
    pub vwo: VwoClient,
    /// VWO client for reads that must never delay a kill (the save check): the same gate at
    /// background priority.
    pub background_vwo: VwoClient,
    /// Replay records and per-flag order (with `STATE_TABLE`).
    pub state: Option<KillState>,
    /// The durable toggle queue (with `TOGGLE_QUEUE_URL`).
    pub queue: Option<ToggleQueue>,
    /// Which flags may be switched, and where one may be turned on.
    pub guard_rails: GuardRails,
    /// Automatic restores per flag in 24 hours (with `STATE_TABLE`).
    pub restores: Option<RestoreBudget>,
    /// VWO's environments, flags and rules for the drop-downs and the save check, cached in the
    /// state table (with `STATE_TABLE`).
    pub catalog: Option<Catalog>,
}

impl App {
    /// An app reading its secrets from `source`, keeping state and queueing with the AWS
    /// configuration `aws`.
    pub fn new(
        config: Config,
        source: Arc<dyn ParameterSource>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let secrets = config.common.secret_cache(
            source,
            vec![ParameterSpec::required(config.client_secret_param.clone())],
        );
        let mut vwo = VwoClient::new(config.common.vwo.clone())?;
        let mut background_vwo = VwoClient::new(config.common.vwo.clone())?;
        let mut state = None;
        let mut restores = None;
        let mut catalog = None;
        if let Some(table) = &config.state_table {
            let dynamodb = aws_sdk_dynamodb::Client::new(aws);
            let gate = RateGate::new(
                dynamodb.clone(),
                table,
                &config.common.vwo_token_param,
                config.common.vwo.min_interval,
            );
            background_vwo =
                background_vwo.with_gate(gate.clone().with_priority(Priority::Background));
            vwo = vwo.with_gate(gate);
            restores = Some(RestoreBudget::new(
                dynamodb.clone(),
                table,
                config.max_restores_per_day,
            ));
            catalog = Some(Catalog::new(
                OptionsCache::new(dynamodb.clone(), table),
                config.settings.client()?,
            ));
            state = Some(KillState::new(dynamodb, table));
        }
        let queue = config
            .toggle_queue_url
            .as_ref()
            .map(|url| ToggleQueue::new(aws_sdk_sqs::Client::new(aws), url));
        if queue.is_none() {
            tracing::warn!("TOGGLE_QUEUE_URL is not set: toggles are tried directly until the invocation's deadline, and a kill VWO does not take in that time is lost");
        }
        if queue.is_some() && state.is_none() {
            return Err(Error::Config(
                "TOGGLE_QUEUE_URL needs STATE_TABLE (per-flag order and the shared rate limit)"
                    .into(),
            ));
        }
        if config.killable_flags.is_none() {
            tracing::warn!("KILLABLE_FLAGS is not set: the kill switch may switch any flag the VWO token can; list the flags, e.g. production:checkout-*");
        }
        let guard_rails = GuardRails::new(
            config.killable_flags.clone(),
            config.enable_allowed_in.clone(),
        );
        Ok(App {
            config,
            secrets,
            vwo,
            background_vwo,
            state,
            queue,
            guard_rails,
            restores,
            catalog,
        })
    }

    /// Where VWO calls find the API token.
    pub fn token(&self) -> TokenSource<'_> {
        self.config.common.token(&self.secrets)
    }

    /// Where the guard rails look VWO's names up (with a kill's priority).
    pub fn lookup(&self) -> Lookup<'_> {
        Lookup {
            vwo: &self.vwo,
            token: self.token(),
            catalog: self.catalog.as_ref(),
        }
    }

    /// Cold-start work: read both secrets in one call and open the VWO and DynamoDB connections,
    /// together.
    ///
    /// An SSM failure here is logged, not fatal: each request retries and answers 503 until
    /// Parameter Store answers.
    pub async fn warm_up(&self) {
        let state = async {
            if let Some(state) = &self.state {
                state.warm_up().await;
            }
        };
        let (secrets, (), ()) = tokio::join!(self.secrets.refresh(), self.vwo.warm_up(), state);
        if let Err(e) = secrets {
            tracing::error!(error = %e, "could not read secrets at cold start; will retry per request");
            return;
        }
        self.guard_rails
            .warm_up(self.lookup(), &self.config.common.vwo.default_account)
            .await;
    }
}

/// What one invocation did, logged as one line.
#[derive(Debug, Default)]
struct Report {
    resource: Option<String>,
    action: Option<String>,
    rule: Option<String>,
    feature: Option<String>,
    environment: Option<String>,
    vwo_status: Option<u16>,
    attempts: Option<u32>,
}

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut report = Report::default();
    let result = process(app, &req, &mut report).await;
    let (outcome, response, detail) = match result {
        Ok(Handled::Toggled { restore, response }) => (
            if restore { "restored" } else { "toggled" },
            response,
            String::new(),
        ),
        Ok(Handled::Queued { reason, response }) => ("queued", response, reason),
        Ok(Handled::Ignored(reason)) => ("ignored", ignored_response(&reason), reason),
        Ok(Handled::Guarded(reason)) => ("guarded", ignored_response(&reason), reason),
        Ok(Handled::Tested { message, response }) => ("tested", response, message),
        Ok(Handled::DryRun { message, response }) => ("dry_run", response, message),
        Ok(Handled::Checked(message)) => (
            "checked",
            json_response(StatusCode::OK, &json!({ "message": message })),
            String::new(),
        ),
        Ok(Handled::Options(choices)) => (
            "options",
            json_response(StatusCode::OK, &json!(choices)),
            format!("{} choices", choices.len()),
        ),
        // Sentry shows the user `message` when a rule's settings or a drop-down's options are
        // refused.
        Err(error) if is_rule_action(&req) || List::from_path(req.uri().path()).is_some() => {
            let body = json!({ "message": error.to_string(), "error": error.to_string() });
            (
                error.kind(),
                http::with_hook_error(json_response(error.status(), &body), &error.to_string()),
                error.to_string(),
            )
        }
        Err(error) => (error.kind(), error_response(&error), error.to_string()),
    };
    tracing::info!(
        outcome,
        status = response.status().as_u16(),
        resource = report.resource.as_deref(),
        action = report.action.as_deref(),
        rule = report.rule.as_deref(),
        feature = report.feature.as_deref(),
        environment = report.environment.as_deref(),
        vwo_status = report.vwo_status,
        attempts = report.attempts,
        detail = detail.as_str(),
        "sentry webhook handled"
    );
    telemetry::emit_outcome_metric(FUNCTION, outcome);
    response
}

fn is_rule_action(req: &Request) -> bool {
    req.uri().path().ends_with(rule_action::PATH_SUFFIX)
}

enum Handled {
    Toggled {
        restore: bool,
        response: Response<Body>,
    },
    /// Persisted on the toggle queue; the worker completes it.
    Queued {
        reason: String,
        response: Response<Body>,
    },
    Ignored(String),
    /// Refused by the guard rails (`KILLABLE_FLAGS`, `ENABLE_ALLOWED_IN`): never switched.
    Guarded(String),
    /// A dry run: VWO has the flag; nothing switched, the answer says what would be.
    DryRun {
        message: String,
        response: Response<Body>,
    },
    /// A test notification: nothing switched, the answer says what a real alert would do.
    Tested {
        message: String,
        response: Response<Body>,
    },
    /// An alert rule's settings were checked (no flag switched).
    Checked(String),
    /// A drop-down's choices.
    Options(Vec<Choice>),
}

async fn process(app: &App, req: &Request, report: &mut Report) -> Result<Handled> {
    let config = &app.config;
    if let Some(list) = List::from_path(req.uri().path()) {
        return options(app, req, list).await.map(Handled::Options);
    }
    http::require_post(req)?;
    http::require_json(req)?;
    let body = http::body_bytes(req, config.max_body_bytes)?;
    if is_rule_action(req) {
        let signature = http::header_text(req, rule_action::SIGNATURE_HEADER)?;
        verify_signature(app, body, signature).await?;
        let checked =
            rule_action::check_fields(body, &config.common.vwo.default_account, config.dry_run)?;
        if let Some(reason) = app
            .guard_rails
            .refusal(app.lookup(), &checked.target, checked.enabled)
            .await
        {
            return Err(Error::BadRequest(reason));
        }
        let listed = match &app.catalog {
            Some(catalog) => {
                save_check::named(catalog, &app.background_vwo, app.token(), &checked.target).await
            }
            None => save_check::Listed::Unlisted,
        };
        match listed {
            save_check::Listed::Named { flag, environment } => {
                return Ok(Handled::Checked(
                    checked.message_naming(Some((&flag, &environment))),
                ))
            }
            save_check::Listed::Missing(reason) => return Err(Error::BadRequest(reason)),
            save_check::Listed::Unlisted => {}
        }
        let found = save_check::existence(&app.background_vwo, app.token(), &checked.target).await;
        if let save_check::Found::Missing(reason) = found {
            return Err(Error::BadRequest(reason));
        }
        return Ok(Handled::Checked(save_check::message(
            &checked.message,
            &found,
        )));
    }
    let resource_header = http::header_text(req, sentry_hook::RESOURCE_HEADER)?;
    let signature = http::header_text(req, sentry_hook::SIGNATURE_HEADER)?;
    verify_signature(app, body, signature).await?;
    // Logged only once the sender is known to be Sentry, and bounded.
    report.resource = resource_header.map(|r| r.chars().take(64).collect());
    sentry_hook::verify_timestamp(
        http::header_text(req, sentry_hook::TIMESTAMP_HEADER)?,
        config.max_webhook_age,
        SystemTime::now(),
    )?;

    let envelope = Envelope::parse(body)?;
    let resource = report
        .resource
        .clone()
        .ok_or_else(|| Error::BadRequest("missing Sentry-Hook-Resource".into()))?;
    report.action = Some(envelope.action.chars().take(64).collect());
    let facts = decision::alert_facts(&resource, &envelope);
    report.rule = facts.rule.clone();

    let query = req.query_string_parameters();
    let choice = FlagChoice::from_pairs(
        [
            "feature",
            "environment",
            "isEnabled",
            "account",
            "dryRun",
            "rule",
        ]
        .into_iter()
        .filter_map(|k| Some((k, query.first(k)?))),
    );
    let decision = decision::decide(config, &resource, &envelope, choice)?;
    if let Decision::Toggle { target, .. } = &decision {
        report.feature = Some(target.feature.clone());
        report.environment = Some(target.environment.clone());
    }
    // Before anything is recorded or switched: a test changes no state at all.
    if let Some(marker) = test_notification::detect(&resource, &envelope) {
        return Ok(tested(marker, &decision));
    }
    if let Decision::Toggle {
        ref target,
        enabled,
        ..
    } = decision
    {
        if let Some(reason) = app.guard_rails.refusal(app.lookup(), target, enabled).await {
            return Ok(Handled::Guarded(reason));
        }
    }
    let (target, enabled, restore) = match decision {
        Decision::Ignore(reason) => return Ok(Handled::Ignored(reason)),
        Decision::Toggle { dry_run: true, .. } => {
            // Nothing recorded, nothing switched: only VWO's read of the flag.
            let rehearsal = dry_run::rehearse(&app.vwo, app.token(), &decision).await?;
            return Ok(Handled::DryRun {
                message: rehearsal.message,
                response: rehearsal.response,
            });
        }
        Decision::Toggle {
            target,
            enabled,
            restore,
            dry_run: false,
        } => (target, enabled, restore),
    };
    if restore {
        if let Some(restores) = &app.restores {
            if let Some(reason) = restores.take(&job::flag_key(&target)).await? {
                tracing::warn!(feature = %target.feature, environment = %target.environment, %reason, "restore refused: the flag stays off");
                return Ok(Handled::Guarded(reason));
            }
        }
    }

    // Accepted from here on: Sentry never sends this alert again.
    let mut job = ToggleJob {
        target,
        enabled,
        restore,
        generation: 0,
        accepted_at: unix_now(),
        rule: facts.rule,
        rule_id: facts.rule_id,
        web_url: facts.web_url,
        not_before_ms: None,
    };
    let owner = apply::owner_id(&request_id(req));
    // Direct path: Sentry hung up after 1 s anyway; keep trying until our own deadline.
    let budget = match &app.queue {
        Some(_) => config.fast_path,
        None => time_left(req).unwrap_or(config.common.vwo.budget),
    };
    let mut ahead = apply::Ahead::default();
    if let Some(state) = &app.state {
        // In this order: a refused replay must not count as a decision (it would overtake a
        // queued kill).
        state
            .accept_once(&replay_key(signature), config.max_webhook_age, &owner)
            .await?;
        // Then, at once, the decision with the flag's lease (one write) and the token's request
        // slot: two round trips to DynamoDB in sequence before VWO, not four.
        let (flag_key, hold) = (job.flag_key(), budget + Duration::from_secs(1));
        let (decision, slot) = tokio::join!(
            state.decide(&flag_key, &owner, hold),
            app.vwo.reserve(budget)
        );
        let decision = decision?;
        job.generation = decision.generation;
        ahead = apply::Ahead {
            leased: decision.leased,
            slot: Some(slot),
        };
    }
    let applied = apply::apply(
        &app.vwo,
        app.token(),
        app.state.as_ref(),
        &job,
        budget,
        &owner,
        ahead,
    )
    .await;
    let Some(queue) = &app.queue else {
        return match applied {
            Applied::Done(reply) => Ok(toggled(&job, &reply, report)),
            Applied::Superseded { latest } => Ok(Handled::Ignored(superseded(&job, latest))),
            Applied::Refused(e) => Err(e),
            Applied::Retry { error, .. } => {
                tracing::error!(error = %error, feature = %job.target.feature, "toggle not completed and no queue is configured: it is lost");
                Err(error)
            }
        };
    };
    match applied {
        Applied::Done(reply) => Ok(toggled(&job, &reply, report)),
        Applied::Superseded { latest } => Ok(Handled::Ignored(superseded(&job, latest))),
        Applied::Refused(e) => Err(e),
        Applied::Retry { after, error } => {
            let reason = error.to_string();
            let delay = after.unwrap_or_default();
            if delay > crate::queue::MAX_DELAY {
                // SQS delays a message 900 s at most: the job carries the rest of the wait.
                job.not_before_ms = Some(unix_millis() + delay.as_millis() as u64);
            }
            if let Err(e) = queue.send(&job, delay).await {
                tracing::error!(error = %e, feature = %job.target.feature, environment = %job.target.environment, "KILL LOST: could not persist the toggle on the queue");
                return Err(Error::State(
                    "the toggle could not be queued; it was not applied".into(),
                ));
            }
            let body = json!({
                "queued": {
                    "account": job.target.account,
                    "environment": job.target.environment,
                    "feature": job.target.feature,
                    "isEnabled": job.enabled,
                    "restore": job.restore,
                    "generation": job.generation,
                    "retryInSecs": delay.as_secs(),
                    "reason": reason,
                }
            });
            Ok(Handled::Queued {
                reason,
                response: json_response(StatusCode::ACCEPTED, &body),
            })
        }
    }
}

/// A drop-down's choices: Sentry's `GET` signed over the empty body, verified before the query
/// is read.
async fn options(app: &App, req: &Request, list: List) -> Result<Vec<Choice>> {
    if req.method() != lambda_http::http::Method::GET {
        return Err(Error::MethodNotAllowed(req.method().to_string()));
    }
    let signature = http::header_text(req, rule_action::SIGNATURE_HEADER)?;
    verify_signature(app, b"", signature).await?;
    let query = req.query_string_parameters();
    let asked = options::asked(|name| query.first(name))?;
    let catalog = app.catalog.as_ref().ok_or_else(|| {
        Error::Config("the drop-downs need STATE_TABLE (their lists are cached there)".into())
    })?;
    let source = options::Source {
        catalog,
        vwo: &app.background_vwo,
        token: app.token(),
        account: &app.config.common.vwo.default_account,
        killable: app.guard_rails.killable.as_ref(),
    };
    options::choices(source, list, &asked).await
}

fn toggled(job: &ToggleJob, reply: &Reply, report: &mut Report) -> Handled {
    report.vwo_status = Some(reply.status);
    report.attempts = Some(reply.attempts);
    let mut body = json!({
        "toggled": {
            "account": job.target.account,
            "environment": job.target.environment,
            "feature": job.target.feature,
            "isEnabled": job.enabled,
            "restore": job.restore,
            "vwoStatus": reply.status,
            "attempts": reply.attempts,
        }
    });
    if let Some(rule) = &job.target.rule {
        body["toggled"]["rule"] = json!(rule);
    }
    Handled::Toggled {
        restore: job.restore,
        response: json_response(StatusCode::OK, &body),
    }
}

/// The answer to a test notification: 200, what a real alert of this rule would do, in the body
/// and in `Sentry-Hook-Error` (kept in the integration's request log).
fn tested(marker: TestMarker, decision: &Decision) -> Handled {
    let message = format!("test notification: would {}", decision.describe());
    let would = dry_run::would_toggle(decision);
    let body = json!({
        "tested": { "message": message, "marker": marker.describe(), "wouldToggle": would }
    });
    let response = http::with_hook_error(json_response(StatusCode::OK, &body), &message);
    Handled::Tested {
        message: format!("{message} [{}]", marker.describe()),
        response,
    }
}

fn superseded(job: &ToggleJob, latest: u64) -> String {
    format!(
        "a later decision for {} in {} was accepted (generation {latest} > {})",
        job.target.feature, job.target.environment, job.generation
    )
}

/// The state-table key of a signed delivery: a hash of its signature (the signature itself is
/// never stored or logged).
fn replay_key(signature: Option<&str>) -> String {
    let digest = Sha256::digest(signature.unwrap_or_default().as_bytes());
    hex::encode(&digest[..16])
}

fn request_id(req: &Request) -> String {
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}

/// Time left in this invocation minus a margin for the answer, if the request carries a deadline.
fn time_left(req: &Request) -> Option<Duration> {
    let deadline = req.lambda_context_ref()?.deadline();
    let left = deadline.duration_since(SystemTime::now()).ok()?;
    Some(left.saturating_sub(DEADLINE_MARGIN))
}

/// Verifies the body's signature with the client secret; after a mismatch, the secret is
/// re-read once (it may have been rotated in Sentry) and checked again.
async fn verify_signature(app: &App, body: &[u8], signature: Option<&str>) -> Result<()> {
    let name = app.config.client_secret_param.as_str();
    app.secrets
        .use_rotating(&[name], SIGNATURE_REREAD, |values| async move {
            sentry_hook::verify_signature(
                values.require(name)?.expose().as_bytes(),
                body,
                signature,
            )
        })
        .await
}
