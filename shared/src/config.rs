//! Reading configuration from environment variables, with errors that name the variable, and
//! [`Common`]: the settings every function of the bridge reads the same way.

use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use std::sync::Arc;

use crate::secrets::{ParameterSource, ParameterSpec, SecretCache};
use crate::vwo::{self, TokenSource, VwoSettings};

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

/// `raw`, the value of variable `name`, as an http(s) URL with a host; the error names the
/// variable and its value.
pub fn http_url(name: &str, raw: &str) -> Result<Url> {
    Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        .ok_or_else(|| Error::Config(format!("{name}={raw:?} is not an http(s) URL")))
}

/// `MAX_BODY_BYTES`: the largest request body a function URL accepts, or `default`.
pub fn max_body_bytes(vars: &dyn Vars, default: usize) -> Result<usize> {
    parsed_or(vars, "MAX_BODY_BYTES", default)
}

/// A source of configuration values: the process environment, or a map in tests.
pub trait Vars {
    /// The value of `name`, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.trim().is_empty())
    }
}

/// The value of a variable that must be set.
pub fn required(vars: &dyn Vars, name: &str) -> Result<String> {
    vars.var(name)
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| Error::Config(format!("{name} must be set")))
}

/// The value of a variable, parsed, or `default` when it is not set.
pub fn parsed_or<T: FromStr>(vars: &dyn Vars, name: &str, default: T) -> Result<T> {
    match vars.var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| {
            Error::Config(format!(
                "{name}={raw:?} is not a valid {}",
                std::any::type_name::<T>()
            ))
        }),
    }
}

/// A boolean variable (`true`/`false`, `1`/`0`, `yes`/`no`), or `default`.
pub fn flag_or(vars: &dyn Vars, name: &str, default: bool) -> Result<bool> {
    match vars.var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(v) => Err(Error::Config(format!("{name}={v:?} is not true or false"))),
    }
}

/// A duration in whole seconds, or `default`.
pub fn seconds_or(vars: &dyn Vars, name: &str, default: u64) -> Result<Duration> {
    parsed_or(vars, name, default).map(Duration::from_secs)
}

/// A duration in milliseconds, or `default`.
pub fn millis_or(vars: &dyn Vars, name: &str, default: u64) -> Result<Duration> {
    parsed_or(vars, name, default).map(Duration::from_millis)
}

/// An SSM parameter name: must start with `/` and contain only characters SSM allows.
pub fn parameter_name(vars: &dyn Vars, name: &str) -> Result<String> {
    let value = required(vars, name)?;
    let valid = value.starts_with('/')
        && value.len() <= 1011
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
    if valid {
        Ok(value)
    } else {
        Err(Error::Config(format!(
            "{name}={value:?} is not a Parameter Store name like /sentry-vwo-bridge/secret"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn required_names_the_missing_variable() {
        let err = required(&vars(&[("A", " ")]), "A").unwrap_err().to_string();
        assert!(err.contains("A must be set"), "{err}");
    }

    #[test]
    fn parsed_values_and_defaults() {
        let v = vars(&[("N", "42"), ("BAD", "x"), ("B", "TRUE")]);
        assert_eq!(parsed_or(&v, "N", 1u64).unwrap(), 42);
        assert_eq!(parsed_or(&v, "MISSING", 7u64).unwrap(), 7);
        assert!(parsed_or(&v, "BAD", 7u64)
            .unwrap_err()
            .to_string()
            .contains("BAD"));
        assert!(flag_or(&v, "B", false).unwrap());
        assert!(flag_or(&v, "BAD", false).is_err());
        assert_eq!(seconds_or(&v, "N", 1).unwrap(), Duration::from_secs(42));
    }

    #[test]
    fn common_settings_defaults_and_errors() {
        let c = Common::from_vars(&vars(&[("VWO_API_TOKEN_PARAM", "/b/t")])).unwrap();
        assert_eq!(c.vwo.base_url.as_str(), "https://app.vwo.com/api/v2");
        assert_eq!(c.vwo.default_account, "current");
        assert_eq!(c.vwo.budget, Duration::from_secs(8));
        assert_eq!(c.vwo.min_interval, Duration::from_secs(1));
        assert_eq!(c.vwo.attempt_timeout, Duration::from_secs(3));
        assert_eq!(c.secret_ttl, Duration::from_secs(300));
        let c = Common::from_vars(&vars(&[
            ("VWO_API_TOKEN_PARAM", "/b/t"),
            ("VWO_ACCOUNT_ID", "123"),
        ]))
        .unwrap();
        assert_eq!(c.vwo.default_account, "123");
        for (name, value) in [
            ("VWO_API_BASE_URL", "ftp://x"),
            ("VWO_ACCOUNT_ID", ".."),
            ("SECRET_TTL_SECS", "soon"),
        ] {
            let pairs: &'static [(&str, &str)] =
                Box::leak(vec![("VWO_API_TOKEN_PARAM", "/b/t"), (name, value)].into_boxed_slice());
            let err = Common::from_vars(&vars(pairs)).unwrap_err().to_string();
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

    #[test]
    fn parameter_names_must_look_like_ssm_names() {
        let v = vars(&[("P", "/bridge/token"), ("Q", "bridge token")]);
        assert_eq!(parameter_name(&v, "P").unwrap(), "/bridge/token");
        assert!(parameter_name(&v, "Q").is_err());
    }
}
