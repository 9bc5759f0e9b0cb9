//! Change tracking's request handler: verify, read the environment's settings file, diff, send
//! to Sentry, advance the snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge_platform::request::{self, error_response, ignored_response, json_response};
use bridge_platform::secrets::{ParameterSource, ParameterSpec, Reread, SecretCache};
use bridge_platform::{telemetry, Error, Result};
use bridge_sentry::change_tracking::{
    self, Actor, FlagBatch, FlagChange, SentryFlagClient, MAX_FLAG_LEN,
};
use bridge_state::kill_record::KillRecords;
use bridge_vwo::api::{self, TokenSource, VwoClient};
use bridge_vwo::rate_gate::{Priority, RateGate};
use bridge_vwo::webhook::{self, VwoWebhook};
use compact_str::CompactString;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::config::{Config, COMMIT_MARGIN};
use crate::diff::{self, Change};
use crate::state::{Acquired, StateStore, Stored};
use crate::vwo_lookup;
use crate::{actor, attribution, flag_listing};
use bridge_state::latest_change::LatestChanges;
use bridge_vwo::settings_file::snapshot::{self, FlagRecord, Snapshot};
use bridge_vwo::settings_file::{self, SettingsClient};

use crate::latest;

/// Function name used in metrics.
pub const FUNCTION: &str = "vwo-to-sentry";

/// Re-reading the webhook secret after a mismatch happens at most this often, so that
/// unauthenticated requests cannot drive Parameter Store calls.
const AUTH_REREAD: Reread = Reread::AtMostEvery(Duration::from_secs(5));

/// Everything a warm function keeps between invocations.
#[derive(Debug)]
pub struct App {
    /// Configuration from the environment.
    pub config: Config,
    /// Webhook secret (and previous), Sentry signing secret, VWO token.
    pub secrets: SecretCache,
    /// VWO API client.
    pub vwo: VwoClient,
    /// Sentry change-tracking client.
    pub sentry: SentryFlagClient,
    /// VWO's SDK settings files.
    pub settings: SettingsClient,
    /// Snapshots in DynamoDB.
    pub state: StateStore,
    /// The kill switch's records of its toggles, in the same table.
    pub kill_records: KillRecords,
    /// Each flag's latest reported change per environment, for the kill switch's suspect.
    pub latest_changes: LatestChanges,
    /// The workspace's numeric id, resolved once.
    pub account_id: OnceCell<u64>,
}

impl App {
    /// An app reading secrets from `source` and keeping state with the AWS configuration `aws`.
    pub fn new(
        config: Config,
        source: Arc<dyn ParameterSource>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let secrets = config.common.secret_cache(
            source,
            vec![
                ParameterSpec::required(config.webhook_secret_param.clone()),
                ParameterSpec::optional(config.previous_webhook_secret_param.clone()),
                ParameterSpec::required(config.signing_secret_param.clone()),
            ],
        );
        // The token's budget belongs to kills: change tracking's reads take only request slots
        // no kill wants, in the same gate as the kill switch's (one rate limit per token).
        let gate = RateGate::new(
            aws_sdk_dynamodb::Client::new(aws),
            &config.state_table,
            &config.common.vwo_token_param,
            config.common.vwo.min_interval,
        )
        .with_priority(Priority::Background);
        Ok(App {
            vwo: VwoClient::new(config.common.vwo.clone())?.with_gate(gate),
            sentry: SentryFlagClient::new(
                config.sentry_webhook_url.clone(),
                config.sentry_timeout,
            )?,
            settings: config.settings.client()?,
            state: StateStore::new(aws, config.state_table.clone()),
            kill_records: KillRecords::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.state_table.clone(),
            ),
            latest_changes: LatestChanges::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.state_table.clone(),
            ),
            account_id: OnceCell::new(),
            secrets,
            config,
        })
    }

    /// Where VWO calls find the API token.
    pub fn token(&self) -> TokenSource<'_> {
        self.config.common.token(&self.secrets)
    }

    /// Cold-start work, concurrently: read all secrets in one call, open the VWO and Sentry
    /// connections. An SSM failure is logged; requests retry and answer 503 meanwhile.
    pub async fn warm_up(&self) {
        let (secrets, (), ()) = tokio::join!(
            self.secrets.refresh(),
            self.vwo.warm_up(),
            self.sentry.warm_up()
        );
        if let Err(e) = secrets {
            tracing::error!(error = %e, "could not read secrets at cold start; will retry per request");
        }
    }
}

/// What one invocation did, logged as one line.
#[derive(Debug, Default)]
struct Report {
    environment: Option<String>,
    action: Option<String>,
    flags: usize,
    changes: usize,
    by_kill_switch: usize,
}

enum Handled {
    Ignored(String),
    /// The environment recorded anew; how many flags it has is [`Delivered::flags`].
    Baseline,
    Unchanged,
    Sent {
        sent: Vec<FlagChange>,
        skipped: Vec<String>,
    },
}

/// A delivery's outcome and, while the workspace's flag list is incomplete, where it stands.
struct Delivered {
    handled: Handled,
    /// Flags in the snapshot committed (the flag list's additions included).
    flags: usize,
    listing: Option<Listing>,
}

/// An incomplete flag list after this delivery.
struct Listing {
    next_offset: u32,
    progress: flag_listing::Progress,
}

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut report = Report::default();
    let result = process(app, &req, &mut report).await;
    let (outcome, response, detail) = match result {
        Ok(Delivered {
            handled,
            flags,
            listing,
        }) => answer(handled, flags, listing),
        Err(error) => (error.kind(), error_response(&error), error.to_string()),
    };
    tracing::info!(
        outcome,
        status = response.status().as_u16(),
        environment = report.environment.as_deref(),
        action = report.action.as_deref(),
        flags = report.flags,
        changes = report.changes,
        by_kill_switch = report.by_kill_switch,
        detail = detail.as_str(),
        "vwo webhook handled"
    );
    telemetry::emit_outcome_metric(FUNCTION, outcome);
    response
}

/// The answer to VWO for a delivery that did its work: 200, or 503 while the flag list is
/// incomplete (VWO delivers again in 1–2 s, and that delivery reads the next pages).
fn answer(
    handled: Handled,
    flags: usize,
    listing: Option<Listing>,
) -> (&'static str, Response<Body>, String) {
    let (outcome, mut body, detail) = match handled {
        // Only a concurrent baseline is ignored: it reads no flag list.
        Handled::Ignored(reason) => return ("ignored", ignored_response(&reason), reason),
        Handled::Baseline => (
            "baseline",
            json!({ "baseline": { "flags": flags } }),
            String::new(),
        ),
        Handled::Unchanged => ("unchanged", json!({ "unchanged": true }), String::new()),
        Handled::Sent { sent, skipped } => (
            "sent",
            json!({
                "sent": sent.iter().map(|c| json!({"flag": c.flag, "action": c.action, "change_id": c.change_id})).collect::<Vec<Value>>(),
                "skipped": skipped,
            }),
            String::new(),
        ),
    };
    let Some(listing) = listing else {
        return (outcome, json_response(StatusCode::OK, &body), detail);
    };
    let stopped = listing.progress.stopped.unwrap_or_default();
    body["listing"] = json!({
        "complete": false,
        "listed": listing.next_offset,
        "pages_read": listing.progress.pages,
        "detail": format!("listing the workspace's flags ({} a page, at the token's pace): {stopped}", flag_listing::PAGE_SIZE),
    });
    (
        "listing",
        json_response(StatusCode::SERVICE_UNAVAILABLE, &body),
        stopped,
    )
}

/// A unique name for this delivery's lease.
fn lease_owner(req: &Request) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let request = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    format!(
        "{request}:{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How far one delivery may go: the lease it holds and the invocation's own deadline.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// The earlier of the Lambda deadline (if the request carries one) and `lease_end`.
    fn new(req: &Request, lease_end: Option<Instant>) -> Self {
        let lambda = req.lambda_context_ref().and_then(|c| {
            let left = c
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            Instant::now().checked_add(left)
        });
        let at = match (lambda, lease_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Deadline { at }
    }

    /// Fails unless `needed` still fits before the deadline.
    fn require(&self, needed: Duration, before: &str) -> Result<()> {
        match self.at {
            Some(at) if Instant::now() + needed > at => Err(Error::Busy(format!(
                "too little time left to {before}; VWO will deliver again"
            ))),
            _ => Ok(()),
        }
    }
}

async fn process(app: &App, req: &Request, report: &mut Report) -> Result<Delivered> {
    let config = &app.config;
    request::require_post(req)?;
    request::require_json(req)?;
    let body = request::body_bytes(req, config.max_body_bytes)?;
    let given = request::header_text(req, webhook::AUTH_HEADER)?;
    let (current, previous) = (
        config.webhook_secret_param.as_str(),
        config.previous_webhook_secret_param.as_str(),
    );
    app.secrets
        .use_rotating(&[current, previous], AUTH_REREAD, |values| async move {
            webhook::verify_auth(given, values.require(current)?, values.get(previous))
        })
        .await?;

    let hook = VwoWebhook::parse(body)?;
    // VWO's payload names no flag: every action (campaign_* included, since a flag's rules are
    // campaigns) may have changed this environment's flags.
    report.action = hook.action.as_ref().map(|a| a.chars().take(64).collect());
    let (environment, sdk_key_override, flag_prefix) = webhook_target(req)?;
    report.environment = Some(environment.clone());
    let timestamp = hook.timestamp().unwrap_or_else(|| {
        tracing::warn!("VWO webhook without a usable timestamp; using the time of receipt");
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    });
    let target = Target {
        environment: &environment,
        sdk_key_override: sdk_key_override.as_deref(),
        flag_prefix: &flag_prefix,
    };

    let owner = lease_owner(req);
    let acquire = || {
        app.state
            .acquire(&environment, &owner, config.lease, config.claim_wait)
    };
    let lease = match acquire().await? {
        Acquired::Lease(lease) => lease,
        Acquired::Empty => return record_baseline(app, req, target, report).await,
    };
    let deadline = Deadline::new(req, Some(lease.ends_at()));
    let (handled, mut current) =
        match deliver(app, target, timestamp, lease.stored(), deadline, report).await {
            Ok(delivered) => delivered,
            Err(e) => {
                // Whatever failed, free the environment for VWO's retry.
                lease.abandon().await;
                return Err(e);
            }
        };
    // What was sent is committed with the list's progress: a failed page stops only the list.
    let progress = continue_listing(app, &mut current, deadline).await;
    lease.finish(&current).await?;
    Ok(delivered(handled, &current, progress))
}

/// The outcome with the snapshot committed and where its flag list stands.
fn delivered(
    handled: Handled,
    current: &Snapshot,
    progress: Option<flag_listing::Progress>,
) -> Delivered {
    Delivered {
        handled,
        flags: current.flags.len(),
        listing: current
            .listing
            .zip(progress)
            .map(|(next_offset, progress)| Listing {
                next_offset,
                progress,
            }),
    }
}

/// Reads the next pages of the workspace's flag list into `current`, if it is incomplete,
/// within this delivery's share and before its deadline (less the commit).
async fn continue_listing(
    app: &App,
    current: &mut Snapshot,
    deadline: Deadline,
) -> Option<flag_listing::Progress> {
    current.listing?;
    let config = &app.config;
    let budget = flag_listing::Budget {
        pages: config.listing_pages,
        until: deadline.at.and_then(|at| at.checked_sub(COMMIT_MARGIN)),
        per_page: config.common.vwo.budget,
    };
    let account = config.common.vwo.default_account.as_str();
    let progress = flag_listing::resume(&app.vwo, app.token(), account, current, budget).await;
    tracing::info!(
        pages = progress.pages,
        added = progress.added,
        listed = current.listing,
        complete = current.listing.is_none(),
        "flag list read"
    );
    Some(progress)
}

/// The environment (`?environment=`, required) and SDK key (`?sdkKey=`, optional) named by the
/// webhook URL registered in VWO.
fn webhook_target(req: &Request) -> Result<(String, Option<String>, String)> {
    let query = req.query_string_parameters();
    let environment = query
        .first("environment")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            Error::BadRequest(
                "the webhook URL needs ?environment=<VWO environment id or name>".into(),
            )
        })?
        .to_owned();
    api::validate_identifier("environment", &environment)?;
    let sdk_key = query
        .first("sdkKey")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    if let Some(key) = &sdk_key {
        api::validate_identifier("sdkKey", key)?;
    }
    Ok((environment, sdk_key, flag_prefix(&query)?))
}

/// `?flagPrefix=`: put before every flag key sent to Sentry (`staging:` → `staging:search-v2`),
/// so that one Sentry organisation's flag log (which has no environment) can hold several VWO
/// environments without one's changes naming suspects of another's issues. At most 32
/// characters of letters, digits and `:._-`; none by default.
fn flag_prefix(query: &lambda_http::aws_lambda_events::query_map::QueryMap) -> Result<String> {
    let prefix = query.first("flagPrefix").unwrap_or_default().to_owned();
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":._-".contains(c);
    if prefix.len() > 32 || !prefix.chars().all(allowed) {
        return Err(Error::BadRequest(
            "flagPrefix: at most 32 letters, digits or :._- (e.g. staging:)".into(),
        ));
    }
    Ok(prefix)
}

/// The environment's first delivery: the flags of its settings file, and as much of the
/// workspace's flag list as this delivery may read, become the baseline; nothing is sent to
/// Sentry. Later deliveries read the rest of the list.
async fn record_baseline(
    app: &App,
    req: &Request,
    target: Target<'_>,
    report: &mut Report,
) -> Result<Delivered> {
    let deadline = Deadline::new(req, None);
    let mut baseline = read_environment(app, target, None, &Snapshot::default(), deadline).await?;
    baseline.listing = Some(0);
    let progress = continue_listing(app, &mut baseline, deadline).await;
    report.flags = baseline.flags.len();
    if !app
        .state
        .create_baseline(target.environment, &baseline)
        .await?
    {
        return Ok(Delivered {
            handled: Handled::Ignored("baseline already recorded by a concurrent delivery".into()),
            flags: baseline.flags.len(),
            listing: None,
        });
    }
    Ok(delivered(Handled::Baseline, &baseline, progress))
}

/// Reads the environment under a lease taken on `stored` and sends what changed since (or, for
/// a snapshot of an earlier layout, only records the environment anew). Returns the outcome and
/// the snapshot to commit.
async fn deliver(
    app: &App,
    target: Target<'_>,
    timestamp: i64,
    stored: &Stored,
    deadline: Deadline,
    report: &mut Report,
) -> Result<(Handled, Snapshot)> {
    let outdated = stored.snapshot.format != snapshot::FORMAT;
    let known_key = stored.snapshot.sdk_key.as_deref();
    // A snapshot of an earlier layout is read anew, keeping what it knew of flags that are off
    // here and of the flag list (fingerprints of another layout are not compared).
    let current = read_environment(
        app,
        target,
        known_key.filter(|_| !outdated),
        &stored.snapshot,
        deadline,
    )
    .await?;
    report.flags = current.flags.len();
    let handled = if outdated {
        tracing::info!("stored snapshot has an earlier layout; recording a new baseline");
        Handled::Baseline
    } else {
        send_changes(
            app,
            target,
            timestamp,
            &stored.snapshot,
            &current,
            deadline,
            report,
        )
        .await?
    };
    Ok((handled, current))
}

/// Which environment a delivery is about.
#[derive(Clone, Copy, Debug)]
struct Target<'a> {
    /// `?environment=` of the webhook URL.
    environment: &'a str,
    /// `?sdkKey=` of the webhook URL, when given.
    sdk_key_override: Option<&'a str>,
    /// `?flagPrefix=` of the webhook URL (empty when not given).
    flag_prefix: &'a str,
}

/// Reads the environment as VWO's SDKs see it: one settings file, plus one REST lookup for each
/// flag that left the file since `previous` (switched off, or deleted). Flags known to be off
/// stay; the workspace's flag list ([`flag_listing`]) adds the others.
async fn read_environment(
    app: &App,
    target: Target<'_>,
    known_sdk_key: Option<&str>,
    previous: &Snapshot,
    deadline: Deadline,
) -> Result<Snapshot> {
    let config = &app.config;
    let token = app.token();
    let account = config.common.vwo.default_account.as_str();
    let account_id = *app
        .account_id
        .get_or_try_init(|| vwo_lookup::account_id(&app.vwo, token, account))
        .await?;
    let known = vwo_lookup::Known {
        sdk_key_override: target.sdk_key_override,
        sdk_key: known_sdk_key,
        environment_id: previous.environment_id.as_deref(),
    };
    let (sdk_key, environment_id) =
        vwo_lookup::environment(&app.vwo, token, account, target.environment, known).await?;
    deadline.require(config.settings.timeout, "read the settings file")?;
    let body = app.settings.fetch(&sdk_key, account_id).await?;
    let mut in_file = settings_file::parse(&body, account_id)?.snapshot(&sdk_key, previous);
    in_file.environment_id = environment_id;
    drop(body);
    let vanished: Vec<CompactString> = previous.vanished(&in_file).cloned().collect();
    let mut current = in_file;
    for id in &vanished {
        deadline.require(
            config.common.vwo.budget,
            "look up a flag that left the settings file",
        )?;
        if vwo_lookup::flag_exists(&app.vwo, token, account, id).await? {
            if let Some(before) = previous.flags.get(id) {
                current
                    .flags
                    .insert(id.clone(), FlagRecord::off(before.key.clone()));
            }
        }
    }
    // Flags already known to be off (absent, still in VWO) stay as they were.
    for (id, record) in &previous.flags {
        if record.status.is_none() && !current.flags.contains_key(id) {
            current.flags.insert(id.clone(), record.clone());
        }
    }
    Ok(current)
}

/// Sends the differences from `previous` to `current` to Sentry. Returns what happened.
async fn send_changes(
    app: &App,
    target: Target<'_>,
    timestamp: i64,
    previous: &Snapshot,
    current: &Snapshot,
    deadline: Deadline,
    report: &mut Report,
) -> Result<Handled> {
    let config = &app.config;
    let token = app.token();
    let account = config.common.vwo.default_account.as_str();
    let (reportable, skipped): (Vec<Change>, Vec<Change>) = diff::diff(previous, current)
        .into_iter()
        .partition(|c| target.flag_prefix.chars().count() + c.key.chars().count() <= MAX_FLAG_LEN);
    for change in &skipped {
        tracing::warn!(flag_prefix = %change.key.chars().take(40).collect::<String>(), "flag key longer than Sentry's 100 characters; change not reported");
    }
    report.changes = reportable.len();
    let skipped: Vec<String> = skipped.into_iter().map(|c| c.key).collect();
    if reportable.is_empty() {
        return Ok(if skipped.is_empty() {
            Handled::Unchanged
        } else {
            Handled::Sent {
                sent: Vec::new(),
                skipped,
            }
        });
    }
    // The kill switch's own toggles are the alert rule's, ahead of VWO's timeline (which
    // would name the owner of the API token the kill switch used); they cost no VWO read.
    let environment = target.environment;
    let candidates = attribution::candidates(account, environment, previous, current, &reportable);
    let kills = attribution::kill_switch_changes(&app.kill_records, &candidates).await;
    report.by_kill_switch = kills.len();
    let unexplained: Vec<String> = reportable
        .iter()
        .map(|c| c.key.clone())
        .filter(|key| !kills.contains_key(key))
        .collect();
    let actors = if config.feeds_lookup && !unexplained.is_empty() {
        actor::who_changed(&app.vwo, token, account, timestamp, &unexplained).await?
    } else {
        Default::default()
    };
    for (flag, record) in &kills {
        tracing::info!(
            flag = flag.as_str(),
            rule = record.rule.as_deref(),
            rule_id = record.rule_id.as_deref(),
            web_url = record.web_url.as_deref(),
            "change made by the kill switch"
        );
    }
    let created_at = change_tracking::iso8601(timestamp)?;
    let kinds: Vec<latest::What> = reportable.iter().map(latest::what).collect();
    let sent: Vec<FlagChange> = reportable
        .into_iter()
        .map(|c| FlagChange {
            change_id: change_tracking::change_id(environment, &c.key, c.action, timestamp),
            created_at: created_at.clone(),
            created_by: kills
                .get(&c.key)
                .map(actor::kill_switch)
                .or_else(|| actors.get(&c.key).cloned())
                .unwrap_or_else(Actor::vwo),
            action: c.action,
            flag: format!("{}{}", target.flag_prefix, c.key),
        })
        .collect();
    let batch = FlagBatch::new(sent.clone());
    // Post only if the answer and the commit still fit in the lease and the invocation.
    let post = config.sentry_timeout + COMMIT_MARGIN;
    deadline.require(post, "post to Sentry and commit")?;
    let signing = config.signing_secret_param.as_str();
    let mut posts = 0u32;
    app.secrets
        .use_rotating(&[signing], Reread::Always, |values| {
            posts += 1;
            let again = posts > 1;
            let batch = &batch;
            async move {
                if again {
                    deadline.require(post, "post to Sentry again and commit")?;
                }
                app.sentry.send(batch, values.require(signing)?).await
            }
        })
        .await?;
    attribution::consume(&app.kill_records, &kills).await;
    let kept: Vec<_> = kinds.into_iter().zip(&sent).collect();
    let store = &app.latest_changes;
    latest::record(store, current, timestamp, target.flag_prefix, &kept).await?;
    Ok(Handled::Sent { sent, skipped })
}
