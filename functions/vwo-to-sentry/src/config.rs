//! Change tracking's configuration, read once at cold start.

use std::time::Duration;

use bridge_platform::config::{self, Vars};
use bridge_platform::request::DEFAULT_MAX_BODY_BYTES;
use bridge_platform::{Error, Result};
use bridge_vwo::config::Common;
use url::Url;

use bridge_vwo::settings_file::fetch::SettingsSource;

/// Environment variables this function reads besides [`bridge_vwo::config::COMMON_ENV_VARS`]
/// (checked against template.yaml by a test).
pub const ENV_VARS: &[&str] = &[
    "VWO_WEBHOOK_SECRET_PARAM",
    "SENTRY_SIGNING_SECRET_PARAM",
    "SENTRY_WEBHOOK_URL",
    "STATE_TABLE",
    "VWO_SETTINGS_BASE_URL",
    "VWO_SETTINGS_TIMEOUT_MS",
    "VWO_SETTINGS_MAX_BYTES",
    "VWO_FEEDS_LOOKUP",
    "SENTRY_TIMEOUT_MS",
    "LEASE_SECS",
    "CLAIM_WAIT_MS",
    "LISTING_PAGES_PER_DELIVERY",
    "MAX_BODY_BYTES",
];

/// Suffix of the parameter holding the previous webhook secret during a rotation.
pub const PREVIOUS_SUFFIX: &str = "/previous";

/// Everything change tracking needs to know besides its secrets.
#[derive(Clone, Debug)]
pub struct Config {
    /// SSM name of the `x-vwo-auth` secret.
    pub webhook_secret_param: String,
    /// SSM name of the previous `x-vwo-auth` secret, accepted while it exists.
    pub previous_webhook_secret_param: String,
    /// SSM name of the secret registered in Sentry for the generic provider.
    pub signing_secret_param: String,
    /// Sentry's generic provider URL for the organisation.
    pub sentry_webhook_url: Url,
    /// How long one Sentry request may take.
    pub sentry_timeout: Duration,
    /// The VWO client, token parameter and secret TTL, read as every function reads them.
    pub common: Common,
    /// Where the environments' SDK settings files are read, how long a read may take and how
    /// large a file may be.
    pub settings: SettingsSource,
    /// Whether to ask VWO's timeline who made a change.
    pub feeds_lookup: bool,
    /// DynamoDB table of snapshots.
    pub state_table: String,
    /// How long a delivery may hold an environment before others may take over.
    pub lease: Duration,
    /// How long a delivery waits for a concurrent one before answering "busy".
    pub claim_wait: Duration,
    /// Most pages of the workspace's flag list one delivery reads (`LISTING_PAGES_PER_DELIVERY`,
    /// 20: about 20 s of the token at VWO's 1 request/s; see [`bridge_vwo::flag_list`]).
    pub listing_pages: u32,
    /// Largest body accepted.
    pub max_body_bytes: usize,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&config::ProcessEnv)
    }

    /// Reads the configuration from `vars`; the error names the first bad variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self> {
        let webhook_secret_param = config::parameter_name(vars, "VWO_WEBHOOK_SECRET_PARAM")?;
        let raw_url = config::required(vars, "SENTRY_WEBHOOK_URL")?;
        let sentry_webhook_url = config::http_url("SENTRY_WEBHOOK_URL", &raw_url)?;
        let state_table = config::required(vars, "STATE_TABLE")?;
        let config = Config {
            previous_webhook_secret_param: format!("{webhook_secret_param}{PREVIOUS_SUFFIX}"),
            webhook_secret_param,
            signing_secret_param: config::parameter_name(vars, "SENTRY_SIGNING_SECRET_PARAM")?,
            sentry_webhook_url,
            sentry_timeout: config::millis_or(vars, "SENTRY_TIMEOUT_MS", 5000)?,
            common: Common::from_vars(vars)?,
            settings: SettingsSource::from_vars(vars)?,
            feeds_lookup: config::flag_or(vars, "VWO_FEEDS_LOOKUP", true)?,
            state_table,
            lease: config::seconds_or(vars, "LEASE_SECS", 120)?,
            claim_wait: config::millis_or(vars, "CLAIM_WAIT_MS", 3000)?,
            listing_pages: config::parsed_or(vars, "LISTING_PAGES_PER_DELIVERY", 20)?,
            max_body_bytes: config::max_body_bytes(vars, DEFAULT_MAX_BODY_BYTES)?,
        };
        let work = config.least_lease();
        if config.lease < work {
            return Err(Error::Config(format!(
                "LEASE_SECS={} is shorter than one delivery's work ({} s: CLAIM_WAIT_MS, \
                 VWO_SETTINGS_TIMEOUT_MS, VWO_RETRY_BUDGET_MS, SENTRY_TIMEOUT_MS and a commit)",
                config.lease.as_secs(),
                work.as_secs_f64().ceil()
            )));
        }
        Ok(config)
    }

    /// The shortest lease that lets one delivery finish: wait for a concurrent one, read the
    /// settings file and VWO's API, post to Sentry (twice, after a rotated secret), commit.
    pub fn least_lease(&self) -> Duration {
        self.claim_wait
            + self.settings.timeout
            + self.common.vwo.budget
            + self.sentry_timeout * 2
            + COMMIT_MARGIN
    }
}

/// Time kept for the commit after the last call to Sentry.
pub const COMMIT_MARGIN: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<String> {
        let mut all = vec![
            ("VWO_WEBHOOK_SECRET_PARAM", "/bridge/vwo-webhook-secret"),
            (
                "SENTRY_SIGNING_SECRET_PARAM",
                "/bridge/sentry-signing-secret",
            ),
            (
                "SENTRY_WEBHOOK_URL",
                "https://sentry.io/api/0/organizations/acme/flags/hooks/provider/generic/",
            ),
            ("VWO_API_TOKEN_PARAM", "/bridge/vwo-api-token"),
            ("STATE_TABLE", "bridge-state"),
        ];
        all.extend(extra);
        move |n| {
            all.iter()
                .rev()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_and_the_previous_secret_name() {
        let c = Config::from_vars(&vars(vec![])).unwrap();
        assert_eq!(
            c.previous_webhook_secret_param,
            "/bridge/vwo-webhook-secret/previous"
        );
        assert_eq!(
            c.settings.base_url.as_str(),
            "https://dev.visualwebsiteoptimizer.com/"
        );
        assert!(c.feeds_lookup);
        assert_eq!(c.lease, Duration::from_secs(120));
        assert_eq!(c.common.vwo.default_account, "current");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("SENTRY_WEBHOOK_URL", "not a url"),
            ("VWO_SETTINGS_BASE_URL", "ftp://x"),
            ("LEASE_SECS", "10"),
            ("VWO_FEEDS_LOOKUP", "perhaps"),
            ("VWO_WEBHOOK_SECRET_PARAM", "no-slash"),
        ] {
            let err = Config::from_vars(&vars(vec![(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
        let err = Config::from_vars(&vars(vec![("STATE_TABLE", "")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("STATE_TABLE"), "{err}");
    }

    #[test]
    fn env_vars_lists_exactly_what_the_configuration_reads() {
        let asked = testkit::names_read(vars(vec![]), |v| {
            Config::from_vars(v).unwrap();
        });
        assert_eq!(
            asked,
            testkit::names(&[ENV_VARS, bridge_vwo::config::COMMON_ENV_VARS])
        );
    }
}
