//! Sentry's public API as the kill switch reads it, with an internal integration's token
//! (`Authorization: Bearer`, scope `event:read`): when an issue began and how many events it has
//! (`GET …/issues/{id}/`), the flags on its oldest event (`…/events/oldest/`), and the flags on
//! its latest events in one environment (`…/events/?full=true&environment=`).
//!
//! Shapes (docs/protocols.md §8; getsentry/sentry-api-schema, `getOrganizationIssue`;
//! `group_details.py`, `group_event_details.py`, `group_events.py`): the issue's `firstSeen` is
//! an ISO time (or null), its `count` a **string**; an event's flags are
//! `contexts.flags.values[] = {flag, result}`. Only those fields are kept; every body is capped
//! and never logged, and the token appears in no error.
//!
//! The issue read is limited to 5 a second per organisation for all of an app's tokens: with a
//! rate gate ([`SentryApi::with_gate`], one per organisation in the state table) it is paced
//! across containers, and a 429's wait is kept for every container as VWO's is.
//!
//! A 429 carries `X-Sentry-Rate-Limit-Reset` (epoch seconds; `Retry-After` only sometimes): the
//! error says how long to wait. 401 and 403 end the read with a reason naming the token or its
//! scope; timeouts and 5xx are [`Error::Upstream`] with their status, for the caller to retry.

use std::time::Duration;

use bridge_platform::capped_body;
use bridge_platform::clock::unix_secs;
use bridge_platform::secrets::Secret;
use bridge_platform::{Error, Result};
use bridge_state::rate_gate::RateGate;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;
use url::Url;

use crate::webhook::EventFlag;
use crate::{failed, unanswered};

/// How many of an issue's latest events are read (one page: Sentry's largest).
pub const LATEST_EVENTS: usize = 100;

/// Largest answer read for one page of full events: 100 events with their stack traces.
pub const MAX_EVENTS_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Sentry's rate-limit reset header (epoch seconds).
pub const RATE_LIMIT_RESET_HEADER: &str = "x-sentry-rate-limit-reset";

/// What the kill switch reads of an issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueFacts {
    /// When the issue began (`firstSeen`, Unix seconds); `None` when Sentry has no time.
    pub first_seen: Option<i64>,
    /// How many events it has (`count`, sent as a string).
    pub count: u64,
}

/// Sentry's limit on the issue read: 5 a second per organisation (`group_details.py`).
pub const ISSUE_READ_INTERVAL: Duration = Duration::from_millis(200);

/// A client of one organisation's API.
#[derive(Clone, Debug)]
pub struct SentryApi {
    http: reqwest::Client,
    /// The organisation's issues: `{base}/api/0/organizations/{org}/issues/`.
    issues: Url,
    /// The organisation's slug.
    org: String,
    /// How long a call may take (and a read wait for its slot).
    timeout: Duration,
    /// Paces the issue read across containers (with the state table).
    gate: Option<RateGate>,
}

impl SentryApi {
    /// A client of organisation `org` at `base` (`https://sentry.io`, `https://de.sentry.io`, or
    /// a self-hosted Sentry), each call within `timeout`.
    pub fn new(base: &Url, org: &str, timeout: Duration) -> Result<Self> {
        let mut issues = base.clone();
        issues
            .path_segments_mut()
            .map_err(|()| Error::Config(format!("SENTRY_API_URL={base} cannot be a base")))?
            .pop_if_empty()
            .extend(["api", "0", "organizations", org, "issues", ""]);
        let http =
            bridge_platform::tls::build(bridge_platform::tls::client_builder()?.timeout(timeout))?;
        Ok(SentryApi {
            http,
            issues,
            org: org.to_owned(),
            timeout,
            gate: None,
        })
    }

    /// The same client, pacing the issue read with the organisation's rate gate in the state
    /// table `table` ([`ISSUE_READ_INTERVAL`]).
    pub fn with_gate(mut self, dynamodb: aws_sdk_dynamodb::Client, table: &str) -> Self {
        let name = format!("sentry#{}", self.org);
        let gate = RateGate::new(dynamodb, table, &name, ISSUE_READ_INTERVAL).for_service("Sentry");
        self.gate = Some(gate);
        self
    }

    /// The issue `id`'s first seen and event count.
    pub async fn issue(&self, token: &Secret, id: &str) -> Result<IssueFacts> {
        let url = self.issue_url(id, &[""])?;
        if let Some(gate) = &self.gate {
            let taken = gate.reserve(Instant::now() + self.timeout).await?;
            gate.restamp(taken).await;
        }
        let read = self
            .get(token, url, capped_body::MAX_UPSTREAM_BODY_BYTES)
            .await;
        if let (Some(gate), Err(Error::RateLimited { retry_after, .. })) = (&self.gate, &read) {
            gate.block(Some(429), retry_after.unwrap_or(Duration::from_secs(1)))
                .await;
        }
        let body = read?;
        let issue: IssueBody = parse(&body)?;
        Ok(IssueFacts {
            first_seen: issue.first_seen.as_deref().and_then(seconds),
            count: issue.count.as_u64(),
        })
    }

    /// The flags on the issue's oldest retained event; `None` when it has none retained.
    pub async fn oldest_event_flags(&self, token: &Secret, id: &str) -> Result<Option<Flags>> {
        let url = self.issue_url(id, &["events", "oldest", ""])?;
        match self
            .get(token, url, capped_body::MAX_UPSTREAM_BODY_BYTES)
            .await
        {
            Ok(body) => Ok(Some(parse::<EventBody>(&body)?.flags())),
            Err(Error::Upstream {
                status: Some(404), ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The flags on the issue's latest events in `environment` (newest first, one page of at
    /// most [`LATEST_EVENTS`]).
    pub async fn latest_events_flags(
        &self,
        token: &Secret,
        id: &str,
        environment: Option<&str>,
    ) -> Result<Vec<Flags>> {
        let mut url = self.issue_url(id, &["events", ""])?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("full", "true");
            query.append_pair("per_page", &LATEST_EVENTS.to_string());
            if let Some(environment) = environment {
                query.append_pair("environment", environment);
            }
        }
        let body = self.get(token, url, MAX_EVENTS_BODY_BYTES).await?;
        let events: Vec<EventBody> = parse(&body)?;
        Ok(events.into_iter().map(EventBody::flags).collect())
    }

    fn issue_url(&self, id: &str, rest: &[&str]) -> Result<Url> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadRequest(format!(
                "issue id {:?} is not a number",
                id.chars().take(32).collect::<String>()
            )));
        }
        let mut url = self.issues.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config("Sentry API URL cannot be a base".into()))?
            .pop_if_empty()
            .push(id)
            .extend(rest);
        Ok(url)
    }

    async fn get(&self, token: &Secret, url: Url, limit: usize) -> Result<Vec<u8>> {
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| failed(None, format!("Sentry's API {}", unanswered(&e))))?;
        let status = response.status().as_u16();
        if status == 429 {
            return Err(Error::RateLimited {
                service: "Sentry",
                status: Some(429),
                retry_after: Some(rate_limit_wait(response.headers(), unix_secs())),
            });
        }
        if matches!(status, 401 | 403) {
            return Err(failed(Some(status), refused(status)));
        }
        let body = capped_body::read_capped(response, limit)
            .await
            .map_err(|e| failed(Some(status), e.to_string()))?;
        match status {
            200..=299 => Ok(body),
            _ => Err(failed(
                Some(status),
                format!("Sentry's API answered HTTP {status}"),
            )),
        }
    }
}

/// What 401 and 403 mean for the kill switch's token.
fn refused(status: u16) -> String {
    if status == 401 {
        "Sentry refused the API token (SENTRY_API_TOKEN_PARAM): revoked or mistyped".into()
    } else {
        "Sentry's API token lacks the scope event:read (the internal integration's Issue & Event \
         permission: Read)"
            .into()
    }
}

/// How long a 429 asks to wait: until `X-Sentry-Rate-Limit-Reset` (epoch seconds), else
/// `Retry-After` (seconds), else one second; at most a minute.
pub fn rate_limit_wait(headers: &reqwest::header::HeaderMap, now: u64) -> Duration {
    let number = |name: &str| {
        let text = headers.get(name)?.to_str().ok()?;
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    let wait = number(RATE_LIMIT_RESET_HEADER)
        .map(|reset| (reset - now as f64).max(0.0))
        .or_else(|| number("retry-after"))
        .unwrap_or(1.0);
    Duration::from_secs_f64(wait.clamp(0.0, 60.0))
}

/// The flags one event carried (`contexts.flags.values`); `present` is false when the event had
/// no flags context at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Each flag and what it evaluated to.
    pub values: Vec<EventFlag>,
    /// Whether the event had `contexts.flags`.
    pub present: bool,
}

impl Flags {
    /// Whether `flag` evaluated `true` on the event.
    pub fn is_on(&self, flag: &str) -> bool {
        self.values.iter().any(|f| f.flag == flag && f.result)
    }
}

#[derive(Deserialize)]
struct IssueBody {
    #[serde(rename = "firstSeen", default)]
    first_seen: Option<String>,
    #[serde(default)]
    count: Count,
}

/// `count` is a string in Sentry's schema; a number is read too.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Count {
    Text(String),
    Number(u64),
    #[default]
    Missing,
}

impl Count {
    fn as_u64(&self) -> u64 {
        match self {
            Count::Text(t) => t.trim().parse().unwrap_or(0),
            Count::Number(n) => *n,
            Count::Missing => 0,
        }
    }
}

#[derive(Deserialize)]
struct EventBody {
    #[serde(default)]
    contexts: Option<ContextsBody>,
}

#[derive(Deserialize)]
struct ContextsBody {
    #[serde(default)]
    flags: Option<FlagsBody>,
}

#[derive(Deserialize)]
struct FlagsBody {
    #[serde(default)]
    values: Vec<serde_json::Value>,
}

impl EventBody {
    fn flags(self) -> Flags {
        let Some(flags) = self.contexts.and_then(|c| c.flags) else {
            return Flags::default();
        };
        let values = flags
            .values
            .iter()
            .filter_map(|v| {
                Some(EventFlag {
                    flag: v["flag"].as_str().filter(|f| !f.is_empty())?.to_owned(),
                    result: v["result"].as_bool()?,
                })
            })
            .collect();
        Flags {
            values,
            present: true,
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Upstream {
        service: "Sentry",
        status: Some(200),
        message: format!("Sentry's API answered an unexpected shape: {e}"),
    })
}

/// An RFC 3339 time (Sentry's `2026-11-23T06:41:12.000000Z`) in Unix seconds.
pub fn seconds(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_is_read_as_the_schema_gives_it() {
        let issue: IssueBody =
            parse(br#"{"id":"1170820242","firstSeen":"2026-12-07T12:03:10.123456Z","count":"37","userCount":3}"#)
                .unwrap();
        assert_eq!(
            issue.first_seen.as_deref().and_then(seconds),
            Some(1_796_644_990)
        );
        assert_eq!(issue.count.as_u64(), 37);
        let issue: IssueBody = parse(br#"{"firstSeen":null,"count":5}"#).unwrap();
        assert_eq!(issue.first_seen, None);
        assert_eq!(issue.count.as_u64(), 5);
    }

    #[test]
    fn only_an_events_flags_are_kept() {
        let event: EventBody = parse(br#"{"id":"e","entries":[{"type":"exception"}],"contexts":{"flags":{"values":[{"flag":"search-v2","result":true},{"flag":"x","result":"on"},{"flag":"old","result":false}]},"os":{"name":"Linux"}}}"#).unwrap();
        let flags = event.flags();
        assert!(flags.present && flags.is_on("search-v2"));
        assert!(!flags.is_on("old") && !flags.is_on("x"));
        let event: EventBody = parse(br#"{"contexts":{"os":{}}}"#).unwrap();
        assert_eq!(event.flags(), Flags::default());
    }

    #[test]
    fn a_429_waits_for_the_reset_then_retry_after_then_a_second() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(1));
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(7));
        h.insert(RATE_LIMIT_RESET_HEADER, "103".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(3));
        h.insert(RATE_LIMIT_RESET_HEADER, "99999999999".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, 100), Duration::from_secs(60));
    }

    #[test]
    fn issue_urls_are_built_under_the_organisation_and_ids_must_be_numbers() {
        let base = Url::parse("https://de.sentry.io").unwrap();
        let api = SentryApi::new(&base, "acme", Duration::from_secs(1)).unwrap();
        assert_eq!(
            api.issue_url("1170820242", &["events", "oldest", ""])
                .unwrap()
                .as_str(),
            "https://de.sentry.io/api/0/organizations/acme/issues/1170820242/events/oldest/"
        );
        assert_eq!(
            api.issue_url("1170820242", &[""]).unwrap().as_str(),
            "https://de.sentry.io/api/0/organizations/acme/issues/1170820242/"
        );
        assert!(api.issue_url("../1", &[]).is_err());
        assert!(api.issue_url("", &[]).is_err());
    }
}
