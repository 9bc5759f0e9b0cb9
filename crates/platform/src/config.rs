//! Reading configuration from environment variables, with errors that name the variable.

use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};

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

/// Pairs of names and values, as tests and tools write a few variables.
impl<const N: usize> Vars for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        let value = self.iter().find(|(k, _)| *k == name)?.1;
        Some(value.to_owned()).filter(|v| !v.trim().is_empty())
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

    #[test]
    fn required_names_the_missing_variable() {
        let err = required(&[("A", " ")], "A").unwrap_err().to_string();
        assert!(err.contains("A must be set"), "{err}");
    }

    #[test]
    fn parsed_values_and_defaults() {
        let v = [("N", "42"), ("BAD", "x"), ("B", "TRUE")];
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
    fn parameter_names_must_look_like_ssm_names() {
        let v = [("P", "/bridge/token"), ("Q", "bridge token")];
        assert_eq!(parameter_name(&v, "P").unwrap(), "/bridge/token");
        assert!(parameter_name(&v, "Q").is_err());
    }
}
