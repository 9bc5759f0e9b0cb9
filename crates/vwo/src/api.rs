//! VWO REST API: URL building and a client that paces, retries and re-reads a rotated token.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use bridge_platform::capped_body::{self, MAX_UPSTREAM_BODY_BYTES};
use bridge_platform::error::{Error, Result};
use bridge_platform::secrets::{Reread, Secret, SecretCache};
use bridge_platform::tls;
use bridge_state::rate_gate::{RateGate, Taken};

/// VWO's public API root.
pub const DEFAULT_BASE_URL: &str = "https://app.vwo.com/api/v2";

/// Least time worth an attempt: VWO answers a toggle in well under this.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);

/// Longest identifier (account, environment, feature) accepted in a URL.
pub const MAX_IDENTIFIER_LEN: usize = 256;

/// Checks an identifier that will become one URL path segment.
///
/// `.` and `..` are refused (URL parsers treat them as directory steps, even when encoded), and so
/// are slashes: VWO keys and ids have none, and a key like `../x` is a probe, not a flag.
pub fn validate_identifier(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::BadRequest(format!("{what} is empty")));
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(Error::BadRequest(format!("{what} is too long")));
    }
    if value == "." || value == ".." {
        return Err(Error::BadRequest(format!(
            "{what} {value:?} is not an identifier"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "{what} contains control characters"
        )));
    }
    if value.contains(['/', '\\']) {
        return Err(Error::BadRequest(format!(
            "{what} {value:?} contains a slash"
        )));
    }
    Ok(())
}

/// `base` followed by each segment, percent-encoded as one path segment each (the `url` crate's
/// path-segment rules: `/`, `%`, `?`, `#`, spaces and non-ASCII are encoded).
pub fn api_url(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::Config(format!("VWO API URL {base} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Which flag, in which environment of which workspace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlagTarget {
    /// `current` or a numeric workspace id.
    pub account: String,
    /// Environment id, key or SDK key.
    pub environment: String,
    /// Feature flag id or key.
    pub feature: String,
    /// One rule of the flag (key or id): only that rule is switched, not the whole flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl FlagTarget {
    /// The whole flag `feature` (no rule) in `environment` of workspace `account`.
    pub fn flag(account: &str, environment: &str, feature: &str) -> Self {
        FlagTarget {
            account: account.into(),
            environment: environment.into(),
            feature: feature.into(),
            rule: None,
        }
    }

    /// Checks every part with [`validate_identifier`].
    pub fn validate(&self) -> Result<()> {
        validate_identifier("account", &self.account)?;
        validate_identifier("environment", &self.environment)?;
        validate_identifier("feature", &self.feature)?;
        match &self.rule {
            Some(rule) => validate_identifier("rule", rule),
            None => Ok(()),
        }
    }

    /// `{base}/accounts/{account}/environments/{environment}/features/{feature}/toggle`, or for
    /// one rule `.../features/{feature}/rules/{rule}/toggle` (operationId
    /// `fme-toggle-feature-flag-rule-status`).
    pub fn toggle_url(&self, base: &Url) -> Result<Url> {
        self.validate()?;
        let mut segments = vec![
            "accounts",
            &self.account,
            "environments",
            &self.environment,
            "features",
            &self.feature,
        ];
        if let Some(rule) = &self.rule {
            segments.extend(["rules", rule.as_str()]);
        }
        segments.push("toggle");
        api_url(base, &segments)
    }

    /// How people read the target: `checkout-new-flow` or `checkout-new-flow's rule risky-exp`.
    pub fn describe(&self) -> String {
        match &self.rule {
            Some(rule) => format!("{}'s rule {rule}", self.feature),
            None => self.feature.clone(),
        }
    }
}

/// How the client talks to VWO.
#[derive(Clone, Debug)]
pub struct VwoSettings {
    /// API root, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: Url,
    /// Workspace used when a request does not name one: `current` or a numeric id.
    pub default_account: String,
    /// Total time allowed for one logical call, retries and waits included.
    pub budget: Duration,
    /// Longest wait for one HTTP attempt.
    pub attempt_timeout: Duration,
    /// Least time between two requests with the same token (VWO allows 1 request/s).
    pub min_interval: Duration,
    /// First back-off delay after a 5xx or a connection failure (doubles, with jitter).
    pub first_backoff: Duration,
}

impl VwoSettings {
    /// Production settings for `base_url`: 8 s budget, 1 request/s, account `current`.
    pub fn new(base_url: Url) -> Self {
        VwoSettings {
            base_url,
            default_account: "current".into(),
            budget: Duration::from_secs(8),
            attempt_timeout: Duration::from_secs(3),
            min_interval: Duration::from_secs(1),
            first_backoff: Duration::from_millis(250),
        }
    }
}

/// One request of VWO's API: its method, URL and JSON body.
#[derive(Debug)]
struct ApiCall {
    method: Method,
    url: Url,
    body: Option<Value>,
}

impl ApiCall {
    fn new(method: Method, url: Url, body: Option<Value>) -> Self {
        ApiCall { method, url, body }
    }
}

/// A successful answer from VWO.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status (2xx).
    pub status: u16,
    /// Parsed JSON body (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// HTTP attempts made, 1 when the first succeeded.
    pub attempts: u32,
}

/// Where the client finds its token: a [`SecretCache`] and the parameter's name.
#[derive(Clone, Copy, Debug)]
pub struct TokenSource<'a> {
    /// The function's secrets.
    pub secrets: &'a SecretCache,
    /// Name of the VWO token parameter.
    pub parameter: &'a str,
}

/// VWO's guidance after a 429 or a 503: wait at least this long (VWO API reference, response
/// codes), with this token.
pub const VWO_WAIT: Duration = Duration::from_secs(60);

/// A request slot taken ahead of a call by [`VwoClient::reserve`]: the call's first attempt
/// uses it instead of waiting for one. Only the client makes one.
#[derive(Clone, Copy, Debug)]
pub struct Slot(Option<Taken>);

/// Client for VWO's REST API.
#[derive(Debug)]
pub struct VwoClient {
    http: reqwest::Client,
    settings: VwoSettings,
    last_request: Mutex<Option<Instant>>,
    gate: Option<RateGate>,
}

/// What the last failed attempt saw, for the final error message.
enum Failure {
    Status(u16, String),
    Transport(&'static str),
}

impl VwoClient {
    /// A client with its own connection pool.
    pub fn new(settings: VwoSettings) -> Result<Self> {
        let http = tls::build(tls::client_builder()?.connect_timeout(settings.attempt_timeout))?;
        Ok(VwoClient {
            http,
            settings,
            last_request: Mutex::new(None),
            gate: None,
        })
    }

    /// The same client, also holding to `gate`: one rate limit shared by every container.
    pub fn with_gate(mut self, gate: RateGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> &VwoSettings {
        &self.settings
    }

    /// Opens a connection to VWO (TLS handshake included) so the first real call does not pay
    /// for it. Sends no token and ignores the answer.
    pub async fn warm_up(&self) {
        let attempt = self
            .http
            .head(self.settings.base_url.clone())
            .timeout(self.settings.attempt_timeout)
            .send()
            .await;
        if let Err(e) = attempt {
            tracing::debug!(error = %e, "VWO warm-up failed; the first call will connect");
        }
    }

    /// Sets a flag's state in an environment: `PATCH .../toggle` with `{"isEnabled": enabled}`,
    /// within the configured budget.
    pub async fn toggle(
        &self,
        token: TokenSource<'_>,
        target: &FlagTarget,
        enabled: bool,
    ) -> Result<Reply> {
        self.toggle_within(token, target, enabled, self.settings.budget, None)
            .await
    }

    /// [`VwoClient::toggle`] within `budget` (retries and waits included): a budget shorter
    /// than one attempt makes one attempt of at most `budget`. With a `slot` taken ahead
    /// ([`VwoClient::reserve`]), the first attempt goes at once.
    pub async fn toggle_within(
        &self,
        token: TokenSource<'_>,
        target: &FlagTarget,
        enabled: bool,
        budget: Duration,
        slot: Option<Slot>,
    ) -> Result<Reply> {
        let url = target.toggle_url(&self.settings.base_url)?;
        let body = Some(json!({ "isEnabled": enabled }));
        let request = ApiCall::new(Method::PATCH, url, body);
        self.call(token, request, budget, slot).await
    }

    /// Takes a request slot now (this container's pace and the shared rate gate), within
    /// `budget`, for a call about to be made: so that the slot's round trip to the gate runs
    /// beside other work instead of before the call.
    pub async fn reserve(&self, budget: Duration) -> Result<Slot> {
        let now = Instant::now();
        Ok(Slot(
            self.pace(now.checked_add(budget).unwrap_or(now)).await?,
        ))
    }

    /// Whether VWO would accept a toggle of `target`, without making it: a read of the flag's
    /// rules in the environment (`GET /accounts/{a}/environments/{env}/features/{f}/rules`,
    /// operationId `fme-get-all-feature-flags-rules`), or of the one rule the target names
    /// (`.../rules/{rule}`, `fme-get-details-of-a-specific-feature-flag-rule`): 2xx means they
    /// exist, 404 that one does not (VWO's message says which).
    pub async fn check_target(&self, token: TokenSource<'_>, target: &FlagTarget) -> Result<Reply> {
        let mut path = vec![
            "accounts",
            &target.account,
            "environments",
            &target.environment,
            "features",
            &target.feature,
            "rules",
        ];
        if let Some(rule) = &target.rule {
            path.push(rule);
        }
        self.get(token, &path, &[]).await
    }

    /// `GET {base}/{segments...}?{query}` and its JSON body; a 2xx without a JSON body fails.
    pub async fn get(
        &self,
        token: TokenSource<'_>,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Reply> {
        let mut url = api_url(&self.settings.base_url, segments)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let reply = self
            .call(
                token,
                ApiCall::new(Method::GET, url, None),
                self.settings.budget,
                None,
            )
            .await?;
        // A 2xx that is not JSON (a maintenance page, a cut-off body) is a failed read.
        if reply.body.is_null() {
            return Err(upstream(
                Some(reply.status),
                format!("HTTP {} with a body that is not JSON", reply.status),
            ));
        }
        Ok(reply)
    }

    /// Waits until VWO's rate limit allows another request, or fails if that is past `deadline`;
    /// the shared gate's slot, when there is a gate.
    async fn pace(&self, deadline: Instant) -> Result<Option<Taken>> {
        let mut last = self.last_request.lock().await;
        if let Some(previous) = *last {
            let next = previous
                .checked_add(self.settings.min_interval)
                .unwrap_or(deadline);
            if next > deadline {
                return Err(Error::SlotBusy {
                    service: "VWO",
                    retry_after: next.saturating_duration_since(Instant::now()),
                    kill_waiting: false,
                });
            }
            tokio::time::sleep_until(next).await;
        }
        let taken = match &self.gate {
            Some(gate) => Some(gate.reserve(deadline).await?),
            None => None,
        };
        *last = Some(Instant::now());
        Ok(taken)
    }

    /// One logical call within `budget`. The token is used through
    /// [`SecretCache::use_rotating`]: after a 401/403, a token rotated in Parameter Store is
    /// re-read and the call made once more (within the same budget); the rest is
    /// [`VwoClient::call_with`]'s.
    /// With a `slot` taken ahead, the first attempt goes at once.
    async fn call(
        &self,
        token: TokenSource<'_>,
        request: ApiCall,
        budget: Duration,
        slot: Option<Slot>,
    ) -> Result<Reply> {
        let mut slot = slot;
        let now = Instant::now();
        let deadline = now.checked_add(budget).unwrap_or(now);
        let mut uses = 0u32;
        let request = &request;
        token
            .secrets
            .use_rotating(&[token.parameter], Reread::Always, |values| {
                uses += 1;
                let rotated = uses > 1;
                let paced = slot.take();
                async move {
                    if rotated {
                        // A new token has its own rate-limit window.
                        *self.last_request.lock().await = None;
                    }
                    let secret = values.require(token.parameter)?;
                    self.call_with(secret, request, deadline, paced).await
                }
            })
            .await
    }

    /// One logical call with one token: paced, retried on 5xx (but 503) and transport errors
    /// until `deadline`; 429 and 503 end it at once ([`Error::RateLimited`]).
    async fn call_with(
        &self,
        secret: &Secret,
        request: &ApiCall,
        deadline: Instant,
        paced: Option<Slot>,
    ) -> Result<Reply> {
        let (method, url, body) = (&request.method, &request.url, request.body.as_ref());
        let mut backoff =
            bridge_platform::clock::pauses(self.settings.first_backoff, Duration::from_secs(2));
        let mut attempts = 0u32;
        loop {
            // The first attempt of a call whose slot was taken ahead goes at once.
            let taken = match paced {
                Some(Slot(taken)) if attempts == 0 => taken,
                _ => self.pace(deadline).await?,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            // An attempt that must give up before VWO can answer would only risk a change we
            // never hear about (later attempts check this before waiting, below).
            if attempts == 0 && remaining < MIN_ATTEMPT {
                return Err(Error::SlotBusy {
                    service: "VWO",
                    retry_after: Duration::from_secs(1),
                    kill_waiting: false,
                });
            }
            if let (Some(gate), Some(taken)) = (&self.gate, taken) {
                gate.restamp(taken).await;
            }
            attempts += 1;
            let timeout = remaining.min(self.settings.attempt_timeout);
            let (failure, wait) = match self.attempt(secret, method, url, body, timeout).await {
                Attempt::Done { status, body } => {
                    return Ok(Reply {
                        status,
                        body,
                        attempts,
                    })
                }
                Attempt::Stop(Error::RateLimited {
                    service,
                    status,
                    retry_after,
                }) => {
                    // VWO's wait is the token's: every caller of it waits it out.
                    let wait = retry_after.unwrap_or(VWO_WAIT).max(VWO_WAIT);
                    if let Some(gate) = &self.gate {
                        gate.block(status, wait).await;
                    }
                    return Err(Error::RateLimited {
                        service,
                        status,
                        retry_after: Some(wait),
                    });
                }
                Attempt::Stop(error) => return Err(error),
                Attempt::Fail { failure, why } => return Err(final_error(failure, attempts, why)),
                Attempt::Retry { failure, after } => (
                    failure,
                    after
                        .or_else(|| backoff.next())
                        .unwrap_or(Duration::from_secs(1)),
                ),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if wait + MIN_ATTEMPT >= remaining {
                return Err(final_error(failure, attempts, "time budget exhausted"));
            }
            tracing::debug!(
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                "retrying VWO call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP request to VWO and what it comes to.
    async fn attempt(
        &self,
        secret: &Secret,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Attempt {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("token", secret.expose())
            .header("accept", "application/json")
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return Attempt::Retry {
                    failure: Failure::Transport(what),
                    after: None,
                };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match capped_body::read_capped(response, MAX_UPSTREAM_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Stop(upstream(Some(status.as_u16()), e.to_string())),
        };
        if status.is_success() {
            return Attempt::Done {
                status: status.as_u16(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
        }
        let failure = Failure::Status(status.as_u16(), error_detail(&bytes));
        match status {
            // The caller may re-read a rotated token (see `call`).
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Attempt::Fail {
                failure,
                why: "token rejected",
            },
            // VWO: after a 429 or a 503, wait at least 60 s. No invocation waits that long; the
            // caller decides (queue it, or let VWO deliver again).
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Attempt::Stop(Error::RateLimited {
                    service: "VWO",
                    status: Some(status.as_u16()),
                    retry_after: retry_after(&headers),
                })
            }
            s if s.is_server_error() => Attempt::Retry {
                failure,
                after: retry_after(&headers),
            },
            _ => Attempt::Fail {
                failure,
                why: "not retryable",
            },
        }
    }
}

/// What one HTTP attempt came to.
enum Attempt {
    /// VWO answered 2xx.
    Done { status: u16, body: Value },
    /// Worth another attempt, after `after` (VWO's `Retry-After`) or the back-off's next wait.
    Retry {
        failure: Failure,
        after: Option<Duration>,
    },
    /// The call ends with this failure.
    Fail { failure: Failure, why: &'static str },
    /// The call ends with this error.
    Stop(Error),
}

fn upstream(status: Option<u16>, message: String) -> Error {
    Error::Upstream {
        service: "VWO",
        status,
        message,
    }
}

fn final_error(failure: Failure, attempts: u32, why: &str) -> Error {
    match failure {
        Failure::Status(status, detail) if detail.is_empty() => upstream(
            Some(status),
            format!("HTTP {status} after {attempts} attempt(s) ({why})"),
        ),
        Failure::Status(status, detail) => upstream(
            Some(status),
            format!("HTTP {status} after {attempts} attempt(s) ({why}): {detail}"),
        ),
        Failure::Transport(what) => {
            upstream(None, format!("{what} after {attempts} attempt(s) ({why})"))
        }
    }
}

/// `Retry-After` in seconds (VWO sends seconds; HTTP dates are ignored), at most a day: a
/// larger value is a broken header, not advice.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs.min(86_400)))
}

/// VWO's `_errors[0].message`, shortened; empty if the body has none.
fn error_detail(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    value["_errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rule_target_toggles_that_rule_only() {
        let base = Url::parse("https://app.vwo.com/api/v2").unwrap();
        let mut target = FlagTarget::flag("current", "production", "checkout");
        assert_eq!(
            target.toggle_url(&base).unwrap().path(),
            "/api/v2/accounts/current/environments/production/features/checkout/toggle"
        );
        target.rule = Some("risky exp".into());
        assert_eq!(
            target.toggle_url(&base).unwrap().path(),
            "/api/v2/accounts/current/environments/production/features/checkout/rules/risky%20exp/toggle"
        );
        assert_eq!(target.describe(), "checkout's rule risky exp");
        target.rule = Some("..".into());
        assert!(target.toggle_url(&base).is_err());
    }

    use super::*;

    fn target(feature: &str) -> FlagTarget {
        FlagTarget::flag("current", "prod env", feature)
    }

    #[test]
    fn toggle_url_encodes_every_segment() {
        let base = Url::parse("https://app.vwo.com/api/v2").unwrap();
        let url = target("checkout new?x=1#y").toggle_url(&base).unwrap();
        assert_eq!(
            url.as_str(),
            "https://app.vwo.com/api/v2/accounts/current/environments/prod%20env/features/checkout%20new%3Fx=1%23y/toggle"
        );
        let unicode = target("café").toggle_url(&base).unwrap();
        assert!(unicode.path().ends_with("/features/caf%C3%A9/toggle"));
        let percent = target("%2e%2e").toggle_url(&base).unwrap();
        assert!(percent.path().ends_with("/features/%252e%252e/toggle"));
    }

    #[test]
    fn a_trailing_slash_on_the_base_does_not_double() {
        let base = Url::parse("http://127.0.0.1:9/api/v2/").unwrap();
        let url = api_url(&base, &["accounts", "1", "features"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/v2/accounts/1/features"
        );
    }

    #[test]
    fn dot_segments_and_empty_identifiers_are_refused() {
        let base = Url::parse("https://app.vwo.com/api/v2").unwrap();
        for bad in ["", ".", "..", "a\nb", "../x", "a/b", "a\\b"] {
            let err = target(bad).toggle_url(&base).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
        }
        assert!(target(&"x".repeat(MAX_IDENTIFIER_LEN + 1))
            .toggle_url(&base)
            .is_err());
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "9223372036854775807".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(86_400)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn error_detail_reads_vwo_error_envelope() {
        assert_eq!(
            error_detail(br#"{"_errors":[{"code":400,"message":"Feature not found"}]}"#),
            "Feature not found"
        );
        assert_eq!(error_detail(b"<html>"), "");
    }
}
