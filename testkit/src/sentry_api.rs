//! The Sentry stand-in's public API: the three reads the kill switch makes of an issue, answered
//! in the shapes of Sentry's public schema and endpoint code (docs/protocols.md §8:
//! getsentry/sentry-api-schema `getOrganizationIssue`; `group_details.py`,
//! `group_event_details.py`, `group_events.py`), with the token checked as Sentry checks a
//! bearer token.
//!
//! - `GET /api/0/organizations/{org}/issues/{id}/`: `id`, `shortId`, `title`, `firstSeen`,
//!   `lastSeen` (ISO), `count` (a **string**), `userCount`, `status`, `project`, `permalink`;
//! - `GET …/issues/{id}/events/oldest/`: one event with `contexts` (404 when none is kept);
//! - `GET …/issues/{id}/events/?full=true&environment=`: the events, newest first, at most
//!   `per_page` (default and maximum 100; more is a 400), with `contexts` only when `full=true`.
//!
//! An issue comes from [`ApiIssue`]s a test adds, or from the SDK events the stand-in grouped
//! (ids `1`, `2`, … in the order the issues began). Scripted answers ([`ApiScript`]) stand for
//! Sentry failing: 5xx, or 429 with `X-Sentry-Rate-Limit-Reset` (epoch seconds).

use std::collections::VecDeque;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The organisation the stand-in answers for.
pub const ORG: &str = "acme";

/// An issue the API answers for, as a test sets it up.
#[derive(Clone, Debug)]
pub struct ApiIssue {
    /// Its numeric id.
    pub id: String,
    /// When it began (Unix seconds).
    pub first_seen: i64,
    /// Its events, oldest first: each the flags it carried and its environment.
    pub events: Vec<ApiEvent>,
}

/// One event of an [`ApiIssue`].
#[derive(Clone, Debug)]
pub struct ApiEvent {
    /// The flags it carried (flag, result).
    pub flags: Vec<(String, bool)>,
    /// Its `environment` tag.
    pub environment: String,
}

impl ApiEvent {
    /// An event in `environment` with `flags` on.
    pub fn on(environment: &str, flags: &[&str]) -> ApiEvent {
        ApiEvent {
            flags: flags.iter().map(|f| ((*f).to_owned(), true)).collect(),
            environment: environment.to_owned(),
        }
    }
}

/// What the API does with the next read, before answering.
#[derive(Clone, Copy, Debug)]
pub enum ApiScript {
    /// Answer this status (5xx) with Sentry's `{"detail": …}` body.
    Status(u16),
    /// Answer 429 with `X-Sentry-Rate-Limit-Reset` this many seconds from now.
    RateLimited(u64),
}

/// The API's state inside the stand-in: the token reads must carry, the issues tests added,
/// scripted answers, and each read's path and query.
#[derive(Debug, Default)]
pub(crate) struct ApiState {
    pub(crate) token: Option<String>,
    pub(crate) issues: Vec<ApiIssue>,
    pub(crate) script: VecDeque<ApiScript>,
    pub(crate) reads: Vec<String>,
    /// How long each read waits before it is answered (Sentry's API is not instant).
    pub(crate) delay: std::time::Duration,
}

/// Whether `path` is one of the API's.
pub fn is_api(path: &str) -> bool {
    path.starts_with(&format!("/api/0/organizations/{ORG}/issues/"))
}

/// Answers one read of the API; `grouped` are the issues made of SDK events.
pub(crate) fn answer(
    state: &mut ApiState,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    grouped: Vec<ApiIssue>,
) -> Response {
    state
        .reads
        .push(format!("{path}?{}", query.unwrap_or_default()));
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_none() || bearer != state.token.as_deref() {
        return detail(StatusCode::UNAUTHORIZED, "Invalid token");
    }
    match state.script.pop_front() {
        Some(ApiScript::Status(status)) => {
            return detail(StatusCode::from_u16(status).unwrap(), "Internal Error")
        }
        Some(ApiScript::RateLimited(secs)) => {
            let reset = OffsetDateTime::now_utc().unix_timestamp() as u64 + secs;
            let mut response = detail(StatusCode::TOO_MANY_REQUESTS, "Rate limited");
            let headers = response.headers_mut();
            headers.insert("x-sentry-rate-limit-reset", reset.into());
            return response;
        }
        None => {}
    }
    // Sentry's routes end with a slash (`…/issues/{id}/`): without it, no route matches here.
    if !path.ends_with('/') {
        return detail(
            StatusCode::NOT_FOUND,
            "The requested resource does not exist",
        );
    }
    let rest = &path[format!("/api/0/organizations/{ORG}/issues/").len()..];
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let issue = state
        .issues
        .iter()
        .chain(&grouped)
        .find(|i| Some(&i.id.as_str()) == parts.first());
    let Some(issue) = issue else {
        return detail(
            StatusCode::NOT_FOUND,
            "The requested resource does not exist",
        );
    };
    match parts.as_slice() {
        [_] => axum::Json(issue_body(issue)).into_response(),
        [_, "events", "oldest"] => match issue.events.first() {
            Some(event) => axum::Json(event_body(issue, 0, event, true)).into_response(),
            None => detail(
                StatusCode::NOT_FOUND,
                "The requested resource does not exist",
            ),
        },
        [_, "events"] => events(issue, query),
        _ => detail(
            StatusCode::NOT_FOUND,
            "The requested resource does not exist",
        ),
    }
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "detail": text }))).into_response()
}

fn iso(at: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn issue_body(issue: &ApiIssue) -> Value {
    json!({
        "id": issue.id,
        "shortId": format!("BRIDGE-{}", issue.id),
        "title": "Error: the story's error",
        "firstSeen": iso(issue.first_seen),
        "lastSeen": iso(issue.first_seen + issue.events.len() as i64),
        "count": issue.events.len().to_string(),
        "userCount": 1,
        "status": "unresolved",
        "project": {"id": "1", "name": "bridge", "slug": "bridge", "platform": "node"},
        "permalink": format!("https://{ORG}.sentry.io/issues/{}/", issue.id),
    })
}

fn event_body(issue: &ApiIssue, index: usize, event: &ApiEvent, full: bool) -> Value {
    let values: Vec<Value> = event
        .flags
        .iter()
        .map(|(flag, result)| json!({"flag": flag, "result": result}))
        .collect();
    let mut body = json!({
        "id": format!("{:032x}", index + 1),
        "eventID": format!("{:032x}", index + 1),
        "groupID": issue.id,
        "dateCreated": iso(issue.first_seen + index as i64),
        "tags": [{"key": "environment", "value": event.environment}],
    });
    if full {
        body["contexts"] = json!({"flags": {"values": values}, "os": {"name": "Linux"}});
        body["entries"] = json!([{"type": "exception", "data": {"values": []}}]);
    }
    body
}

fn events(issue: &ApiIssue, query: Option<&str>) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let per_page: usize = get("per_page").and_then(|p| p.parse().ok()).unwrap_or(100);
    if per_page > 100 {
        return detail(StatusCode::BAD_REQUEST, "per_page must be at most 100");
    }
    let full = matches!(get("full"), Some("true" | "1"));
    let environments: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "environment")
        .map(|(_, v)| v.as_str())
        .collect();
    let list: Vec<Value> = issue
        .events
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, e)| environments.is_empty() || environments.contains(&e.environment.as_str()))
        .take(per_page)
        .map(|(i, e)| event_body(issue, i, e, full))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

/// The issues made of SDK `events` (grouped as [`crate::sentry_events::issues`] groups them),
/// with ids `1`, `2`, … in the order they began.
pub fn grouped(events: &[Value]) -> Vec<ApiIssue> {
    crate::sentry_events::grouped(events)
        .into_iter()
        .enumerate()
        .map(|(i, (_, members))| {
            let first_seen = members
                .iter()
                .filter_map(|e| crate::sentry_events::timestamp(e))
                .min()
                .map_or(0, OffsetDateTime::unix_timestamp);
            let events = members
                .iter()
                .map(|e| ApiEvent {
                    flags: crate::sentry_events::flags(e),
                    environment: e["environment"].as_str().unwrap_or("production").to_owned(),
                })
                .collect();
            ApiIssue {
                id: (i + 1).to_string(),
                first_seen,
                events,
            }
        })
        .collect()
}
