//! The kill switch's warm state: configuration, secrets, clients and tables, built once per
//! container and shared by every route.

use std::sync::Arc;
use std::time::Duration;

use bridge_platform::secrets::{ParameterSource, ParameterSpec, Reread, SecretCache};
use bridge_platform::{Error, Result};
use bridge_sentry::api::SentryApi;
use bridge_state::issue_start::IssueStarts;
use bridge_state::latest_change::LatestChanges;
use bridge_state::rate_gate::Priority;
use bridge_vwo::api::{TokenSource, VwoClient};

use crate::alert::guard::guard_rails::{GuardRails, Lookup};
use crate::alert::guard::restore_budget::RestoreBudget;
use crate::config::{Config, SENTRY_API_TIMEOUT};
use crate::rule_form::catalog::Catalog;
use crate::rule_form::catalog::{CatalogCache, WorkspaceList};
use crate::toggle::kill_state::KillState;
use crate::toggle::queue::ToggleQueue;
use bridge_sentry::webhook;
use bridge_state::workspace_flags::WorkspaceFlags;

/// Forced re-reads of the client secret after a signature mismatch happen at most this often, so
/// that unauthenticated requests cannot drive Parameter Store calls.
const SIGNATURE_REREAD: Reread = Reread::AtMostEvery(Duration::from_secs(5));

/// What the kill switch keeps in the state table, and the queue beside it: present together, with
/// `STATE_TABLE` (without it, the documented mode switches flags directly, unordered and
/// without a replay record).
#[derive(Debug)]
pub struct Durable {
    /// Replay records and per-flag order.
    pub state: KillState,
    /// Automatic restores per flag in 24 hours.
    pub restores: RestoreBudget,
    /// VWO's environments, flags and rules for the drop-downs and the save check, cached in the
    /// state table.
    pub catalog: Catalog,
    /// Each flag's latest change as change tracking reported it, for `feature=@suspect`.
    pub latest_changes: LatestChanges,
    /// When each Sentry issue began, from its `issue.created`, for `feature=@suspect`.
    pub issue_starts: IssueStarts,
    /// The durable toggle queue (with `TOGGLE_QUEUE_URL` too).
    pub queue: Option<ToggleQueue>,
}

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
    /// Which flags may be switched, and where one may be turned on.
    pub guard_rails: GuardRails,
    /// What the kill switch keeps in the state table, and its queue (with `STATE_TABLE`).
    pub durable: Option<Durable>,
    /// Sentry's API, with the token of `SENTRY_API_TOKEN_PARAM`, for `feature=@suspect`.
    pub sentry_api: Option<SentryApi>,
}

impl App {
    /// An app reading its secrets from `source`, keeping state and queueing with the AWS
    /// configuration `aws`.
    pub fn new(
        config: Config,
        source: Arc<dyn ParameterSource>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        let client_secret = ParameterSpec::required(config.client_secret_param.clone());
        Self::with_secrets(config, source, aws, Some(client_secret))
    }

    /// The app the queue worker runs deferred alerts with: it verifies no signature (the
    /// function did, before deferring), so it never reads the client secret.
    pub fn for_worker(
        config: Config,
        source: Arc<dyn ParameterSource>,
        aws: &aws_config::SdkConfig,
    ) -> Result<Self> {
        Self::with_secrets(config, source, aws, None)
    }

    fn with_secrets(
        config: Config,
        source: Arc<dyn ParameterSource>,
        aws: &aws_config::SdkConfig,
        client_secret: Option<ParameterSpec>,
    ) -> Result<Self> {
        let mut specs: Vec<ParameterSpec> = client_secret.into_iter().collect();
        let api = config.evidence.api.as_ref();
        specs.extend(api.map(|api| ParameterSpec::required(api.token_param.clone())));
        let secrets = config.common.secret_cache(source, specs);
        let mut sentry_api = api
            .map(|api| SentryApi::new(&api.base, &api.org, SENTRY_API_TIMEOUT))
            .transpose()?;
        let mut vwo = VwoClient::new(config.common.vwo.clone())?;
        let mut background_vwo = VwoClient::new(config.common.vwo.clone())?;
        let queue = config
            .toggle_queue_url
            .as_ref()
            .map(|url| ToggleQueue::new(aws_sdk_sqs::Client::new(aws), url));
        if queue.is_none() {
            tracing::warn!("TOGGLE_QUEUE_URL is not set: toggles are tried directly until the invocation's deadline, and a kill VWO does not take in that time is lost");
        }
        let durable =
            match &config.state_table {
                Some(table) => {
                    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
                    let gate = config.common.rate_gate(dynamodb.clone(), table);
                    // The issue read is paced per organisation across containers.
                    sentry_api = sentry_api.map(|api| api.with_gate(dynamodb.clone(), table));
                    background_vwo =
                        background_vwo.with_gate(gate.clone().with_priority(Priority::Background));
                    vwo = vwo.with_gate(gate);
                    Some(Durable {
                        restores: RestoreBudget::new(
                            dynamodb.clone(),
                            table,
                            config.max_restores_per_day,
                        ),
                        catalog: Catalog::new(
                            CatalogCache::new(dynamodb.clone(), table),
                            config.settings.client()?,
                            WorkspaceList::new(
                                WorkspaceFlags::new(dynamodb.clone(), table),
                                queue.clone(),
                            ),
                        ),
                        latest_changes: LatestChanges::new(dynamodb.clone(), table),
                        issue_starts: IssueStarts::new(dynamodb.clone(), table),
                        state: KillState::new(dynamodb, table),
                        queue,
                    })
                }
                None if queue.is_some() => return Err(Error::Config(
                    "TOGGLE_QUEUE_URL needs STATE_TABLE (per-flag order and the shared rate limit)"
                        .into(),
                )),
                None => None,
            };
        if let Some(warning) = suspect_warning(&config) {
            tracing::warn!("{warning}");
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
            guard_rails,
            durable,
            sentry_api,
        })
    }

    /// The replay records and per-flag order (with `STATE_TABLE`).
    pub fn state(&self) -> Option<&KillState> {
        self.durable.as_ref().map(|d| &d.state)
    }

    /// The durable toggle queue (with `STATE_TABLE` and `TOGGLE_QUEUE_URL`).
    pub fn queue(&self) -> Option<&ToggleQueue> {
        self.durable.as_ref().and_then(|d| d.queue.as_ref())
    }

    /// Automatic restores per flag in 24 hours (with `STATE_TABLE`).
    pub fn restores(&self) -> Option<&RestoreBudget> {
        self.durable.as_ref().map(|d| &d.restores)
    }

    /// VWO's lists for the drop-downs and the save check (with `STATE_TABLE`).
    pub fn catalog(&self) -> Option<&Catalog> {
        self.durable.as_ref().map(|d| &d.catalog)
    }

    /// When each Sentry issue began, as its `issue.created` said (with `STATE_TABLE`).
    pub fn issue_starts(&self) -> Option<&IssueStarts> {
        self.durable.as_ref().map(|d| &d.issue_starts)
    }

    /// Each flag's latest change as change tracking reported it (with `STATE_TABLE`).
    pub fn latest_changes(&self) -> Option<&LatestChanges> {
        self.durable.as_ref().map(|d| &d.latest_changes)
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
            catalog: self.catalog(),
            cached_only: false,
        }
    }

    /// Cold-start work: read both secrets in one call and open the VWO and DynamoDB connections,
    /// together.
    ///
    /// An SSM failure here is logged, not fatal: each request retries and answers 503 until
    /// Parameter Store answers.
    pub async fn warm_up(&self) {
        let state = async {
            if let Some(state) = self.state() {
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

    /// Verifies the body's signature with the client secret; after a mismatch, the secret is
    /// re-read once (it may have been rotated in Sentry) and checked again.
    pub async fn verify_signature(&self, body: &[u8], signature: Option<&str>) -> Result<()> {
        let name = self.config.client_secret_param.as_str();
        self.secrets
            .use_rotating(&[name], SIGNATURE_REREAD, |values| async move {
                webhook::verify_signature(
                    values.require(name)?.expose().as_bytes(),
                    body,
                    signature,
                )
            })
            .await
    }
}

/// The one start-up warning when `@suspect` rules can have no evidence: no state table (no
/// changes, no issue starts), or no Sentry token while the evidence must be the issue's events.
pub fn suspect_warning(config: &Config) -> Option<String> {
    let evidence = &config.evidence;
    if config.state_table.is_none() {
        return Some("feature=@suspect rules switch nothing: they need STATE_TABLE".into());
    }
    (evidence.api.is_none() && !evidence.alert_event_alone).then(|| {
        "feature=@suspect rules switch nothing until the kill switch has a Sentry token \
         (SENTRY_API_TOKEN_PARAM), or issue webhooks and SUSPECT_EVIDENCE=event (docs/kill-switch.md)"
            .into()
    })
}
