//! Reading an environment's SDK settings file over HTTP, as VWO's server-side SDKs do: no API
//! token and not under the API's rate limit. Change tracking reads it after each webhook; the
//! kill switch reads it for the alert rule's drop-downs (which flags and rules an environment
//! has). What the file says is each reader's own business.
//!
//! Facts (see `docs/protocols.md` §3b): `GET {host}/server-side/v2-pull?i=<SDK key>&a=<account
//! id>` (VWO Node SDK `lib/constants/index.ts` `WEBHOOK_SETTINGS_ENDPOINT`,
//! `lib/utils/NetworkUtil.ts` `getSettingsPath`).

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;
use url::Url;

use bridge_platform::capped_body::{self, BodyError};
use bridge_platform::config::{self, Vars};
use bridge_platform::{tls, Error, Result};

/// VWO's settings host (`Constants.HOST_NAME` in VWO's Node SDK).
pub const DEFAULT_SETTINGS_BASE_URL: &str = "https://dev.visualwebsiteoptimizer.com";

/// The path VWO's SDKs read after a webhook (`/server-side/v2-settings` is their normal poll).
pub const WEBHOOK_SETTINGS_PATH: &str = "/server-side/v2-pull";

/// Reads settings files over HTTP.
#[derive(Debug)]
pub struct SettingsClient {
    http: reqwest::Client,
    base: Url,
    budget: Duration,
    max_bytes: usize,
}

/// An error about a settings file (VWO's, with the HTTP status when there was one).
pub fn failed(status: Option<u16>, message: impl Into<String>) -> Error {
    Error::Upstream {
        service: "VWO",
        status,
        message: format!("settings file: {}", message.into()),
    }
}

impl SettingsClient {
    /// A client for `base` whose reads take at most `budget` (retries included) and refuse
    /// bodies over `max_bytes`.
    pub fn new(base: Url, budget: Duration, max_bytes: usize) -> Result<Self> {
        let http = tls::build(tls::client_builder()?.connect_timeout(budget))?;
        Ok(SettingsClient {
            http,
            base,
            budget,
            max_bytes,
        })
    }

    /// The URL of an environment's settings file after a webhook.
    pub fn url(&self, sdk_key: &str, account_id: u64) -> Url {
        let mut url = self.base.clone();
        url.set_path(WEBHOOK_SETTINGS_PATH);
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        url.query_pairs_mut()
            .append_pair("i", sdk_key)
            .append_pair("a", &account_id.to_string())
            .append_pair("r", &format!("0.{nonce:09}"))
            .append_pair("platform", "server")
            .append_pair("api-version", "1")
            .append_pair("sn", "sentry-vwo-bridge")
            .append_pair("sv", env!("CARGO_PKG_VERSION"));
        url
    }

    /// Reads the settings file's bytes ([`parse`] checks them: a body that is not a settings
    /// file for the account is an upstream error, never an empty environment). Transport
    /// failures and 5xx are retried within the budget; 429 and 503 end the read at once
    /// ([`Error::RateLimited`]).
    pub async fn fetch(&self, sdk_key: &str, account_id: u64) -> Result<Vec<u8>> {
        let now = Instant::now();
        let deadline = now.checked_add(self.budget).unwrap_or(now);
        let mut backoff =
            bridge_platform::clock::pauses(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = self
                .http
                .get(self.url(sdk_key, account_id))
                .header("accept", "application/json")
                .timeout(remaining)
                .send()
                .await;
            let error = match attempt {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                    {
                        return Err(Error::RateLimited {
                            service: "VWO",
                            status: Some(status.as_u16()),
                            retry_after: None,
                        });
                    }
                    match capped_body::read_capped(response, self.max_bytes).await {
                        Ok(bytes) if status.is_success() => return Ok(bytes),
                        Ok(_) if status.is_client_error() => {
                            return Err(failed(Some(status.as_u16()), format!("HTTP {status}")))
                        }
                        Ok(_) => failed(Some(status.as_u16()), format!("HTTP {status}")),
                        Err(e @ BodyError::TooLarge(_)) => {
                            return Err(failed(Some(status.as_u16()), e.to_string()))
                        }
                        Err(e) => failed(Some(status.as_u16()), e.to_string()),
                    }
                }
                Err(e) if e.is_timeout() => failed(None, "timed out"),
                Err(_) => failed(None, "connection failed"),
            };
            let wait = backoff.next().unwrap_or(Duration::from_secs(1));
            if wait >= deadline.saturating_duration_since(Instant::now()) {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Default cap on a settings file: 32 MiB. VWO's sample shape takes 13.2 MB at 10,000 flags
/// (one rollout and one two-variation testing rule each); change tracking's work there peaks at
/// 21 MB (BENCHMARKS.md), so the cap leaves room for richer rules within a function's memory.
pub const DEFAULT_SETTINGS_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Where settings files are read and how much of one is accepted, from the environment:
/// `VWO_SETTINGS_BASE_URL` (VWO's settings host), `VWO_SETTINGS_TIMEOUT_MS` (5000) and
/// `VWO_SETTINGS_MAX_BYTES` ([`DEFAULT_SETTINGS_MAX_BYTES`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsSource {
    /// The settings host (scheme, host and port).
    pub base_url: Url,
    /// Time for one read, retries included.
    pub timeout: Duration,
    /// Largest settings file accepted.
    pub max_bytes: usize,
}

impl SettingsSource {
    /// Reads the three variables; a base URL that is not http(s) is a configuration error.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self> {
        let raw = vars
            .var("VWO_SETTINGS_BASE_URL")
            .unwrap_or_else(|| DEFAULT_SETTINGS_BASE_URL.to_owned());
        let base_url = config::http_url("VWO_SETTINGS_BASE_URL", &raw)?;
        Ok(SettingsSource {
            base_url,
            timeout: config::millis_or(vars, "VWO_SETTINGS_TIMEOUT_MS", 5000)?,
            max_bytes: config::parsed_or(
                vars,
                "VWO_SETTINGS_MAX_BYTES",
                DEFAULT_SETTINGS_MAX_BYTES,
            )?,
        })
    }

    /// A client reading from this source.
    pub fn client(&self) -> Result<SettingsClient> {
        SettingsClient::new(self.base_url.clone(), self.timeout, self.max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_url_is_what_vwos_sdks_ask_for() {
        let client = SettingsClient::new(
            Url::parse("https://dev.visualwebsiteoptimizer.com").unwrap(),
            Duration::from_secs(1),
            1024,
        )
        .unwrap();
        let url = client.url("sdk key/1", 654321);
        assert_eq!(url.path(), "/server-side/v2-pull");
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["i"], "sdk key/1");
        assert_eq!(pairs["a"], "654321");
    }

    #[test]
    fn the_source_reads_its_variables_and_names_a_bad_one() {
        let none = |_: &str| None::<String>;
        let source = SettingsSource::from_vars(&none).unwrap();
        assert_eq!(
            source.base_url.as_str(),
            "https://dev.visualwebsiteoptimizer.com/"
        );
        assert_eq!(source.timeout, Duration::from_secs(5));
        assert_eq!(source.max_bytes, DEFAULT_SETTINGS_MAX_BYTES);
        let ftp = |n: &str| (n == "VWO_SETTINGS_BASE_URL").then(|| "ftp://x".to_owned());
        let err = SettingsSource::from_vars(&ftp).unwrap_err().to_string();
        assert!(err.contains("VWO_SETTINGS_BASE_URL"), "{err}");
    }
}
