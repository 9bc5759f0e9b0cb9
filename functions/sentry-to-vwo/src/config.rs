//! The kill switch's configuration, read once at cold start.

use std::collections::BTreeSet;
use std::time::Duration;

use bridge_shared::config::{self, Vars};
use bridge_shared::http::DEFAULT_MAX_BODY_BYTES;
use bridge_shared::vwo::{self, VwoSettings};
use bridge_shared::{Error, Result};

/// `resource.action` pairs that toggle when `TOGGLE_ON` is not set.
pub const DEFAULT_TOGGLE_ON: &str =
    "metric_alert.critical,metric_alert.warning,event_alert.triggered";

/// Every `resource.action` that may appear in `TOGGLE_ON`.
pub const TOGGLEABLE: &[&str] = &[
    "metric_alert.critical",
    "metric_alert.warning",
    "event_alert.triggered",
    "issue.created",
    "error.created",
];

/// Environment variables this function reads besides [`vwo::ENV_VARS`]
/// (checked against template.yaml by a test).
pub const ENV_VARS: &[&str] = &[
    "SENTRY_CLIENT_SECRET_PARAM",
    "VWO_API_TOKEN_PARAM",
    "TOGGLE_ON",
    "RESTORE_ON_RESOLVE",
    "MAX_WEBHOOK_AGE_SECS",
    "SECRET_TTL_SECS",
    "MAX_BODY_BYTES",
];

/// Everything the kill switch needs to know besides its secrets.
#[derive(Clone, Debug)]
pub struct Config {
    /// SSM name of the Sentry integration's client secret.
    pub client_secret_param: String,
    /// SSM name of the VWO API token.
    pub vwo_token_param: String,
    /// How the VWO client behaves (API root, default account, budget, pacing).
    pub vwo: VwoSettings,
    /// `resource.action` pairs that toggle a flag.
    pub toggle_on: BTreeSet<String>,
    /// Whether `metric_alert.resolved` restores the flag.
    pub restore_on_resolve: bool,
    /// Oldest `Sentry-Hook-Timestamp` accepted.
    pub max_webhook_age: Duration,
    /// How long secrets are cached.
    pub secret_ttl: Duration,
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
        let base = vars
            .var("VWO_API_BASE_URL")
            .unwrap_or_else(|| vwo::DEFAULT_BASE_URL.to_owned());
        let base_url = url::Url::parse(base.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| {
                Error::Config(format!("VWO_API_BASE_URL={base:?} is not an http(s) URL"))
            })?;
        let mut vwo = VwoSettings::new(base_url);
        vwo.budget = config::millis_or(vars, "VWO_RETRY_BUDGET_MS", 8000)?;
        vwo.min_interval = config::millis_or(vars, "VWO_MIN_INTERVAL_MS", 1000)?;
        vwo.attempt_timeout = config::millis_or(vars, "VWO_ATTEMPT_TIMEOUT_MS", 3000)?;
        let default_account = vars
            .var("VWO_ACCOUNT_ID")
            .unwrap_or_else(|| "current".into());
        vwo::validate_identifier("VWO_ACCOUNT_ID", &default_account)
            .map_err(|e| Error::Config(e.to_string()))?;
        let toggle_on = parse_toggle_on(
            &vars
                .var("TOGGLE_ON")
                .unwrap_or_else(|| DEFAULT_TOGGLE_ON.into()),
        )?;
        Ok(Config {
            client_secret_param: config::parameter_name(vars, "SENTRY_CLIENT_SECRET_PARAM")?,
            vwo_token_param: config::parameter_name(vars, "VWO_API_TOKEN_PARAM")?,
            vwo,
            toggle_on,
            restore_on_resolve: config::flag_or(vars, "RESTORE_ON_RESOLVE", false)?,
            max_webhook_age: config::seconds_or(vars, "MAX_WEBHOOK_AGE_SECS", 300)?,
            secret_ttl: config::seconds_or(vars, "SECRET_TTL_SECS", 300)?,
            max_body_bytes: config::parsed_or(vars, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
        })
    }
}

fn parse_toggle_on(raw: &str) -> Result<BTreeSet<String>> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if TOGGLEABLE.contains(&item) {
                Ok(item.to_owned())
            } else {
                Err(Error::Config(format!(
                    "TOGGLE_ON: {item:?} is not one of {}",
                    TOGGLEABLE.join(", ")
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    const REQUIRED: [(&str, &str); 2] = [
        ("SENTRY_CLIENT_SECRET_PARAM", "/bridge/sentry-client-secret"),
        ("VWO_API_TOKEN_PARAM", "/bridge/vwo-api-token"),
    ];

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::from_vars(&vars(REQUIRED.to_vec())).unwrap();
        assert_eq!(c.vwo.base_url.as_str(), "https://app.vwo.com/api/v2");
        assert_eq!(c.vwo.default_account, "current");
        assert_eq!(
            c.toggle_on.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "event_alert.triggered",
                "metric_alert.critical",
                "metric_alert.warning"
            ]
        );
        assert!(!c.restore_on_resolve);
        assert_eq!(c.max_webhook_age, Duration::from_secs(300));
        assert_eq!(c.secret_ttl, Duration::from_secs(300));
        assert_eq!(c.vwo.budget, Duration::from_secs(8));
        assert_eq!(c.vwo.min_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_fail_with_the_variable_named() {
        for (name, value) in [
            ("TOGGLE_ON", "issue.resolved"),
            ("RESTORE_ON_RESOLVE", "maybe"),
            ("MAX_WEBHOOK_AGE_SECS", "-1"),
            ("VWO_API_BASE_URL", "ftp://x"),
            ("VWO_ACCOUNT_ID", ".."),
        ] {
            let mut v = REQUIRED.to_vec();
            v.push((name, value));
            let err = Config::from_vars(&vars(v)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        let err = Config::from_vars(&vars(vec![])).unwrap_err().to_string();
        assert!(
            err.contains("SENTRY_CLIENT_SECRET_PARAM must be set"),
            "{err}"
        );
    }

    #[test]
    fn env_vars_lists_exactly_what_the_configuration_reads() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let recording = |name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            vars(REQUIRED.to_vec())(name)
        };
        Config::from_vars(&recording).unwrap();
        let listed: std::collections::BTreeSet<String> = ENV_VARS
            .iter()
            .chain(bridge_shared::vwo::ENV_VARS)
            .map(|v| v.to_string())
            .collect();
        assert_eq!(asked.into_inner(), listed);
    }
}
