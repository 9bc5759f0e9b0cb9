//! Change tracking's warm state: configuration, secrets, clients and tables, built once per
//! container and shared by every delivery.

use std::sync::Arc;
use std::time::Duration;

use bridge_platform::secrets::{ParameterSource, ParameterSpec, Reread, SecretCache};
use bridge_platform::Result;
use bridge_sentry::change_tracking::SentryFlagClient;
use bridge_state::kill_record::KillRecords;
use bridge_state::latest_change::LatestChanges;
use bridge_state::rate_gate::Priority;
use bridge_vwo::api::{TokenSource, VwoClient};
use bridge_vwo::settings_file::SettingsClient;
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::state::StateStore;

/// Re-reading the webhook secret after a mismatch happens at most this often, so that
/// unauthenticated requests cannot drive Parameter Store calls.
pub(crate) const AUTH_REREAD: Reread = Reread::AtMostEvery(Duration::from_secs(5));

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
        let gate = (config.common)
            .rate_gate(aws_sdk_dynamodb::Client::new(aws), &config.state_table)
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
