//! The settings every function of the bridge reads the same way from its environment: how to
//! reach VWO, which parameter holds the API token, how long secrets are cached ([`Common`]).

use std::sync::Arc;
use std::time::Duration;

use bridge_platform::config::{http_url, millis_or, parameter_name, seconds_or, Vars};
use bridge_platform::secrets::{ParameterSource, ParameterSpec, SecretCache};
use bridge_platform::{Error, Result};

use crate::api::{self as vwo, TokenSource, VwoSettings};
use bridge_state::rate_gate::RateGate;

/// Environment variables read by [`Common::from_vars`] (every function has them).
pub const COMMON_ENV_VARS: &[&str] = &[
    "VWO_API_TOKEN_PARAM",
    "SECRET_TTL_SECS",
    "VWO_API_BASE_URL",
    "VWO_ACCOUNT_ID",
    "VWO_RETRY_BUDGET_MS",
    "VWO_MIN_INTERVAL_MS",
    "VWO_ATTEMPT_TIMEOUT_MS",
];

/// What every function of the bridge reads the same way: how to reach VWO, which parameter
/// holds the API token, how long secrets are cached.
#[derive(Clone, Debug)]
pub struct Common {
    /// SSM name of the VWO API token (`VWO_API_TOKEN_PARAM`).
    pub vwo_token_param: String,
    /// How the VWO client behaves: API root, default account, budget, pacing.
    pub vwo: VwoSettings,
    /// How long secrets are cached (`SECRET_TTL_SECS`, default 300).
    pub secret_ttl: Duration,
}

impl Common {
    /// Reads [`COMMON_ENV_VARS`]; the error names the first bad variable. Defaults: VWO's
    /// public API, account `current`, an 8 s budget, 1 request/s, 3 s per attempt, a 5 min TTL.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self> {
        Ok(Common {
            vwo_token_param: parameter_name(vars, "VWO_API_TOKEN_PARAM")?,
            vwo: vwo_settings(vars)?,
            secret_ttl: seconds_or(vars, "SECRET_TTL_SECS", 300)?,
        })
    }

    /// The function's secret cache: the parameters in `specs` and the VWO token, read from
    /// `source` in one call and kept for [`Common::secret_ttl`].
    pub fn secret_cache(
        &self,
        source: Arc<dyn ParameterSource>,
        mut specs: Vec<ParameterSpec>,
    ) -> SecretCache {
        specs.push(ParameterSpec::required(self.vwo_token_param.clone()));
        SecretCache::new(source, specs, self.secret_ttl)
    }

    /// The token's rate gate in the state table `table`, shared by every container that uses
    /// the token (one request per [`VwoSettings::min_interval`]).
    pub fn rate_gate(&self, dynamodb: aws_sdk_dynamodb::Client, table: &str) -> RateGate {
        RateGate::new(
            dynamodb,
            table,
            &self.vwo_token_param,
            self.vwo.min_interval,
        )
    }

    /// Where VWO calls find the API token: `secrets`, under [`Common::vwo_token_param`].
    pub fn token<'a>(&'a self, secrets: &'a SecretCache) -> TokenSource<'a> {
        TokenSource {
            secrets,
            parameter: &self.vwo_token_param,
        }
    }
}

fn vwo_settings(vars: &dyn Vars) -> Result<VwoSettings> {
    let base = vars
        .var("VWO_API_BASE_URL")
        .unwrap_or_else(|| vwo::DEFAULT_BASE_URL.to_owned());
    let mut settings = VwoSettings::new(http_url("VWO_API_BASE_URL", &base)?);
    if let Some(account) = vars.var("VWO_ACCOUNT_ID") {
        vwo::validate_identifier("VWO_ACCOUNT_ID", &account)
            .map_err(|e| Error::Config(e.to_string()))?;
        settings.default_account = account;
    }
    settings.budget = millis_or(vars, "VWO_RETRY_BUDGET_MS", 8000)?;
    settings.min_interval = millis_or(vars, "VWO_MIN_INTERVAL_MS", 1000)?;
    settings.attempt_timeout = millis_or(vars, "VWO_ATTEMPT_TIMEOUT_MS", 3000)?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_settings_defaults_and_errors() {
        let c = Common::from_vars(&[("VWO_API_TOKEN_PARAM", "/b/t")]).unwrap();
        assert_eq!(c.vwo.base_url.as_str(), "https://app.vwo.com/api/v2");
        assert_eq!(c.vwo.default_account, "current");
        assert_eq!(c.vwo.budget, Duration::from_secs(8));
        assert_eq!(c.vwo.min_interval, Duration::from_secs(1));
        assert_eq!(c.vwo.attempt_timeout, Duration::from_secs(3));
        assert_eq!(c.secret_ttl, Duration::from_secs(300));
        let c = Common::from_vars(&[("VWO_API_TOKEN_PARAM", "/b/t"), ("VWO_ACCOUNT_ID", "123")])
            .unwrap();
        assert_eq!(c.vwo.default_account, "123");
        for (name, value) in [
            ("VWO_API_BASE_URL", "ftp://x"),
            ("VWO_ACCOUNT_ID", ".."),
            ("SECRET_TTL_SECS", "soon"),
        ] {
            let pairs = [("VWO_API_TOKEN_PARAM", "/b/t"), (name, value)];
            let err = Common::from_vars(&pairs).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn common_env_vars_lists_exactly_what_common_reads() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let recording = |name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            (name == "VWO_API_TOKEN_PARAM").then(|| "/b/t".to_owned())
        };
        Common::from_vars(&recording).unwrap();
        let listed: std::collections::BTreeSet<String> =
            COMMON_ENV_VARS.iter().map(|v| v.to_string()).collect();
        assert_eq!(asked.into_inner(), listed);
    }
}
