//! A stand-in for Sentry: the generic feature-flag change-tracking endpoint, and the envelope
//! endpoint an application's Sentry SDK sends its events to.
//!
//! Change tracking: it checks `X-Sentry-Signature` with the registered secret and validates each
//! body against the schema in PROTOCOLS.md §2, answering as Sentry does: 200 with an empty body
//! when accepted, 200 with a JSON body listing problems when invalid, 401 for a bad signature.
//!
//! Events: `POST /api/<project>/envelope/` with the DSN's public key ([`FakeSentry::dsn`]);
//! events are checked, kept, grouped into issues and given the suspect flags Sentry's issue page
//! would show ([`crate::sentry_events`]). `GET /_stand-in/events` and `GET /_stand-in/issues`
//! show them to tests in other languages.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Path of the generic provider for organisation `acme`.
pub const HOOK_PATH: &str = "/api/0/organizations/acme/flags/hooks/provider/generic/";

/// The public key of the stand-in's DSN.
pub const PUBLIC_KEY: &str = "bridgelocalkey";

/// The project id of the stand-in's DSN.
pub const PROJECT_ID: u64 = 1;

/// What the stand-in does with the next delivery, before normal handling.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer 200 with this JSON body (Sentry's validation-failure answer).
    Body(Value),
    /// Wait, then handle normally (for timeouts).
    Delay(Duration),
}

#[derive(Default)]
struct Inner {
    secret: String,
    script: VecDeque<Script>,
    deliveries: usize,
    accepted: Vec<Value>,
    rejected: Vec<String>,
    events: Vec<Value>,
    api: crate::sentry_api::ApiState,
    /// Where `issue.created` goes, signed with this client secret (an integration subscribed to
    /// "issue").
    issue_hook: Option<(String, String)>,
}

/// Handle on a running Sentry stand-in.
#[derive(Clone)]
pub struct FakeSentry {
    /// Listening address.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSentry {
    /// Starts a stand-in that verifies signatures with `secret`.
    pub async fn start(secret: &str) -> FakeSentry {
        let inner = Arc::new(Mutex::new(Inner {
            secret: secret.into(),
            ..Inner::default()
        }));
        // The SDKs' envelopes with Relay's CORS (browsers post them from the page's origin); the
        // rest as one handler.
        let envelopes = axum::routing::post(envelope_route).layer(relay_cors());
        let app = axum::Router::new()
            .route(&format!("/api/{PROJECT_ID}/envelope/"), envelopes)
            .fallback(handle)
            .with_state(inner.clone());
        let addr = crate::serve(app).await;
        FakeSentry { addr, inner }
    }

    /// The URL to configure as `SENTRY_WEBHOOK_URL`.
    pub fn hook_url(&self) -> String {
        format!("http://{}{}", self.addr, HOOK_PATH)
    }

    /// The DSN an application's Sentry SDK uses to send its events here.
    pub fn dsn(&self) -> String {
        format!("http://{PUBLIC_KEY}@{}/{PROJECT_ID}", self.addr)
    }

    /// The events received from Sentry SDKs, in order.
    pub fn events(&self) -> Vec<Value> {
        self.inner.lock().unwrap().events.clone()
    }

    /// The issues those events make, with the flags on each and its suspect flags.
    pub fn issues(&self) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        crate::sentry_events::issues(&inner.events, &changes(&inner.accepted))
    }

    /// Changes the secret signatures are checked with (a rotation in Sentry's settings).
    pub fn set_secret(&self, secret: &str) {
        self.inner.lock().unwrap().secret = secret.to_owned();
    }

    /// Queues scripted answers.
    pub fn script(&self, steps: impl IntoIterator<Item = Script>) {
        self.inner.lock().unwrap().script.extend(steps);
    }

    /// Every change accepted so far, in order.
    pub fn accepted_changes(&self) -> Vec<Value> {
        changes(&self.inner.lock().unwrap().accepted)
    }

    /// How many requests arrived (accepted or not).
    pub fn deliveries(&self) -> usize {
        self.inner.lock().unwrap().deliveries
    }

    /// Sends Sentry's `issue.created` to `url`, signed with the integration's `client_secret`,
    /// for each new issue the SDK events make (as an integration subscribed to "issue" gets it).
    pub fn send_issue_webhooks(&self, url: &str, client_secret: &str) {
        self.inner.lock().unwrap().issue_hook = Some((url.to_owned(), client_secret.to_owned()));
    }

    /// Lets Sentry's API answer reads that carry `token` (`Authorization: Bearer`).
    pub fn set_api_token(&self, token: &str) {
        self.inner.lock().unwrap().api.token = Some(token.to_owned());
    }

    /// Adds an issue the API answers for.
    pub fn add_issue(&self, issue: crate::sentry_api::ApiIssue) {
        self.inner.lock().unwrap().api.issues.push(issue);
    }

    /// Makes each read of the API wait `delay` before it is answered.
    pub fn set_api_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().api.delay = delay;
    }

    /// Queues scripted answers of the API (5xx, 429).
    pub fn script_api(&self, steps: impl IntoIterator<Item = crate::sentry_api::ApiScript>) {
        self.inner.lock().unwrap().api.script.extend(steps);
    }

    /// Each read of the API so far (path and query), in order.
    pub fn api_reads(&self) -> Vec<String> {
        self.inner.lock().unwrap().api.reads.clone()
    }

    /// The base URL of the stand-in's API (`SENTRY_API_URL`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Why deliveries were refused by the signature or schema check.
    pub fn rejections(&self) -> Vec<String> {
        self.inner.lock().unwrap().rejected.clone()
    }
}

fn changes(accepted: &[Value]) -> Vec<Value> {
    accepted
        .iter()
        .flat_map(|b| b["data"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The CORS that Sentry's Relay answers its store and envelope endpoints with
/// (`relay-server/src/middlewares/cors.rs`): any origin, `POST`, Sentry's request headers, and
/// its answer headers exposed to the SDK.
fn relay_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|n| HeaderName::from_static(n))
            .collect::<Vec<_>>()
    };
    tower_http::cors::CorsLayer::new()
        .allow_methods([Method::POST])
        .allow_headers(names(&[
            "x-sentry-auth",
            "x-requested-with",
            "x-forwarded-for",
            "origin",
            "referer",
            "accept",
            "content-type",
            "authentication",
            "authorization",
            "content-encoding",
            "transfer-encoding",
        ]))
        .allow_origin(tower_http::cors::Any)
        .expose_headers(names(&[
            "x-sentry-error",
            "x-sentry-rate-limits",
            "retry-after",
        ]))
        .max_age(std::time::Duration::from_secs(3600))
}

async fn envelope_route(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    envelope(&inner, &uri, &headers, &body)
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path == "/_stand-in/events" {
        let events = inner.lock().unwrap().events.clone();
        return axum::Json(Value::Array(events)).into_response();
    }
    if path == "/_stand-in/issues" {
        let issues = {
            let inner = inner.lock().unwrap();
            crate::sentry_events::issues(&inner.events, &changes(&inner.accepted))
        };
        return axum::Json(Value::Array(issues)).into_response();
    }
    if crate::sentry_api::is_api(path) {
        let delay = inner.lock().unwrap().api.delay;
        tokio::time::sleep(delay).await;
        let mut guard = inner.lock().unwrap();
        let grouped = crate::sentry_api::grouped(&guard.events);
        return crate::sentry_api::answer(&mut guard.api, path, uri.query(), &headers, grouped);
    }
    if path != HOOK_PATH {
        return (StatusCode::NOT_FOUND, "").into_response();
    }
    let (step, secret) = {
        let mut guard = inner.lock().unwrap();
        guard.deliveries += 1;
        (guard.script.pop_front(), guard.secret.clone())
    };
    match step {
        Some(Script::Status(status)) => {
            return (StatusCode::from_u16(status).unwrap(), "").into_response()
        }
        Some(Script::Body(value)) => return (StatusCode::OK, value.to_string()).into_response(),
        Some(Script::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let signature = headers
        .get("x-sentry-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    if hex::encode(mac.finalize().into_bytes()) != signature {
        inner.lock().unwrap().rejected.push("bad signature".into());
        return (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "invalid signature"}).to_string(),
        )
            .into_response();
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid(&inner, vec![format!("not JSON: {e}")]),
    };
    let problems = validate(&value);
    if !problems.is_empty() {
        return invalid(&inner, problems);
    }
    inner.lock().unwrap().accepted.push(value);
    (StatusCode::OK, "").into_response()
}

/// An SDK's envelope: authenticated with the DSN's key (`X-Sentry-Auth` or `sentry_key` in the
/// query, as the JavaScript SDK sends it), decoded, and each event checked and kept.
fn envelope(inner: &Mutex<Inner>, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let auth = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let query = uri.query().unwrap_or_default();
    let key_in_header = auth
        .split([',', ' '])
        .any(|part| part.trim() == format!("sentry_key={PUBLIC_KEY}"));
    let key_in_query =
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "sentry_key" && v == PUBLIC_KEY);
    let refuse = |status: StatusCode, why: String| {
        inner.lock().unwrap().rejected.push(why.clone());
        (status, json!({"detail": why}).to_string()).into_response()
    };
    if !key_in_header && !key_in_query {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "envelope without the DSN's key".into(),
        );
    }
    let encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok());
    let bytes = match crate::sentry_events::decode(body, encoding) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, e),
    };
    let (header, items) = match crate::sentry_events::parse_envelope(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    for (item, payload) in items {
        if item["type"] != "event" {
            continue; // sessions, client reports, transactions: not what this stand-in checks
        }
        let event: Value = match serde_json::from_slice(&payload) {
            Ok(v) => v,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("event is not JSON: {e}")),
        };
        let problems = crate::sentry_events::validate_event(&event);
        if !problems.is_empty() {
            return refuse(StatusCode::BAD_REQUEST, problems.join("; "));
        }
        let mut guard = inner.lock().unwrap();
        let title = crate::sentry_events::issue_title(&event);
        let new_issue = !guard
            .events
            .iter()
            .any(|e| crate::sentry_events::issue_title(e) == title);
        guard.events.push(event);
        if let (true, Some(hook)) = (new_issue, guard.issue_hook.clone()) {
            let issues = crate::sentry_events::grouped(&guard.events).len();
            let first_seen = guard
                .events
                .last()
                .and_then(crate::sentry_events::timestamp);
            tokio::spawn(send_issue_created(
                hook,
                issues.to_string(),
                title,
                first_seen,
            ));
        }
    }
    (
        StatusCode::OK,
        json!({"id": header["event_id"]}).to_string(),
    )
        .into_response()
}

fn invalid(inner: &Mutex<Inner>, problems: Vec<String>) -> Response {
    inner
        .lock()
        .unwrap()
        .rejected
        .extend(problems.iter().cloned());
    (StatusCode::OK, json!({"data": problems}).to_string()).into_response()
}

/// Problems with a change-tracking body, empty if it is valid.
pub fn validate(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    need(
        body["meta"]["version"] == json!(1),
        "meta.version must be 1".into(),
    );
    let Some(items) = body["data"].as_array() else {
        need(false, "data must be a list".into());
        return problems;
    };
    need(!items.is_empty(), "data must not be empty".into());
    for (i, item) in items.iter().enumerate() {
        let action = item["action"].as_str().unwrap_or_default();
        need(
            matches!(action, "created" | "updated" | "deleted"),
            format!("data[{i}].action invalid: {action:?}"),
        );
        need(
            item["change_id"].is_u64(),
            format!("data[{i}].change_id must be an integer"),
        );
        let created_at = item["created_at"].as_str().unwrap_or_default();
        need(
            is_iso8601_with_offset(created_at),
            format!("data[{i}].created_at invalid: {created_at:?}"),
        );
        let by_id = item["created_by"]["id"].as_str().unwrap_or_default();
        need(
            !by_id.is_empty() && by_id.chars().count() <= 100,
            format!("data[{i}].created_by.id invalid"),
        );
        let by_type = item["created_by"]["type"].as_str().unwrap_or_default();
        need(
            matches!(by_type, "email" | "id" | "name"),
            format!("data[{i}].created_by.type invalid: {by_type:?}"),
        );
        let flag = item["flag"].as_str().unwrap_or_default();
        need(
            !flag.is_empty() && flag.chars().count() <= 100,
            format!("data[{i}].flag invalid"),
        );
    }
    problems
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
fn is_iso8601_with_offset(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
    {
        return false;
    }
    if !digits(11..13) || b[13] != b':' || !digits(14..16) || b[16] != b':' || !digits(17..19) {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && rest[1..3]
                .bytes()
                .chain(rest[4..].bytes())
                .all(|c| c.is_ascii_digit()))
}

/// Posts Sentry's `issue.created` for issue `id` to the hook, signed as Sentry signs it
/// (`Sentry-Hook-Resource: issue`, `Sentry-Hook-Timestamp`, `Sentry-Hook-Signature` = HMAC-SHA256
/// hex of the body with the client secret). Body: `_webhook_issue_data` (the issue serializer
/// plus `url`, `web_url`, `project_url`), `src/sentry/sentry_apps/tasks/sentry_apps.py`.
async fn send_issue_created(
    (url, secret): (String, String),
    id: String,
    title: String,
    first_seen: Option<time::OffsetDateTime>,
) {
    let first_seen = first_seen.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let body = json!({
        "action": "created",
        "installation": {"uuid": "7a485448-a9e2-4c85-8a3c-4f44175783c9"},
        "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
        "data": {"issue": {
            "id": id, "shortId": format!("BRIDGE-{id}"), "title": title, "culprit": "",
            "level": "error", "status": "unresolved", "count": "1", "firstSeen": first_seen,
            "project": {"id": PROJECT_ID.to_string(), "name": "bridge", "slug": "bridge"},
            "url": format!("https://sentry.io/api/0/organizations/{}/issues/{id}/", crate::sentry_api::ORG),
            "web_url": format!("https://{}.sentry.io/issues/{id}/", crate::sentry_api::ORG),
            "project_url": format!("https://{}.sentry.io/issues/?project={PROJECT_ID}", crate::sentry_api::ORG),
        }},
    })
    .to_string();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let Ok(client) = bridge_platform::tls::client() else {
        return;
    };
    let sent = client
        .post(&url)
        .header("content-type", "application/json")
        .header("sentry-hook-resource", "issue")
        .header("sentry-hook-timestamp", crate::now_secs().to_string())
        .header("sentry-hook-signature", signature)
        .body(body)
        .send()
        .await;
    if let Err(e) = sent {
        eprintln!("Sentry stand-in: issue.created to {url} failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    /// What a subscribed integration receives: a signed `issue.created` for each new issue the
    /// SDK events make (ids in the order the issues began), none for an issue's later events.
    #[tokio::test(flavor = "multi_thread")]
    async fn each_new_issue_sends_a_signed_issue_created() {
        let got: Received = Arc::default();
        let hook = crate::serve_all(
            got.clone(),
            |State(got): State<Received>, headers: HeaderMap, body: Bytes| async move {
                got.lock().unwrap().push((headers, body));
                StatusCode::OK
            },
        )
        .await;
        let sentry = FakeSentry::start("signing").await;
        sentry.send_issue_webhooks(&format!("http://{hook}/sentry-to-vwo"), "client-secret");
        let client = bridge_platform::tls::client().unwrap();
        for (n, message) in ["first", "first", "second"].iter().enumerate() {
            let event = json!({"event_id": format!("{:032x}", n + 1), "timestamp": 1_796_644_990 + n,
                "exception": {"values": [{"type": "Error", "value": message}]}});
            let envelope = format!(
                "{{\"event_id\":\"{:032x}\"}}\n{{\"type\":\"event\"}}\n{event}\n",
                n + 1
            );
            let answer = client
                .post(format!("http://{}/api/{PROJECT_ID}/envelope/", sentry.addr))
                .header("x-sentry-auth", format!("Sentry sentry_key={PUBLIC_KEY}"))
                .body(envelope)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        for _ in 0..100 {
            if got.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "one issue.created per new issue");
        let mut ids = Vec::new();
        for (headers, body) in &got {
            assert_eq!(headers["sentry-hook-resource"], "issue");
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"client-secret").unwrap();
            mac.update(body);
            assert_eq!(
                headers["sentry-hook-signature"].to_str().unwrap(),
                hex::encode(mac.finalize().into_bytes())
            );
            let body: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(body["action"], "created");
            assert!(body["data"]["issue"]["firstSeen"]
                .as_str()
                .unwrap()
                .starts_with("2026-12-07T"));
            ids.push(body["data"]["issue"]["id"].as_str().unwrap().to_owned());
        }
        ids.sort();
        assert_eq!(ids, ["1", "2"]);
    }

    #[test]
    fn the_schema_check_accepts_sentrys_example_and_refuses_bad_fields() {
        let good = json!({"data": [{"action": "created", "change_id": 9734362632u64,
            "created_at": "2024-12-12T00:00:00+00:00",
            "created_by": {"id": "someone@example.com", "type": "email"}, "flag": "test-flag"}],
            "meta": {"version": 1}});
        assert!(validate(&good).is_empty());
        let mut bad = good.clone();
        bad["data"][0]["action"] = json!("toggled");
        bad["data"][0]["created_at"] = json!("2024-12-12 00:00:00");
        bad["data"][0]["flag"] = json!("x".repeat(101));
        bad["data"][0]["change_id"] = json!("12");
        assert_eq!(validate(&bad).len(), 4);
        assert!(is_iso8601_with_offset("2024-12-12T00:00:00.123Z"));
        assert!(!is_iso8601_with_offset("2024-12-12T00:00:00"));
    }
}
