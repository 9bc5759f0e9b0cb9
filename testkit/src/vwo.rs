//! A VWO API stand-in: flags the test edits, scripted failures, and a record of every request.
//!
//! The response shapes are the bridge's assumptions about VWO's undocumented bodies (see the
//! README): `{"_data": ...}` envelopes, flags with `id`, `featureKey`, `name`, and per-environment
//! `environments[]` entries with `id`, `key`, `sdkKey`, `isEnabled` and `rules`.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

/// A request VWO received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path as sent, percent-encoding intact.
    pub raw_path: String,
    /// Query string as sent, if any.
    pub query: Option<String>,
    /// The `token` header.
    pub token: Option<String>,
    /// JSON body (`Null` if none).
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// What the stand-in does with the next API request, before normal handling.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answer with this status (and `Retry-After`, and VWO's error envelope).
    Status(u16, Option<u64>),
    /// Wait this long, then answer normally (for timeouts).
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

/// One environment of the fake project.
#[derive(Clone, Debug)]
pub struct FakeEnv {
    /// Numeric id.
    pub id: u64,
    /// Key, e.g. `production`.
    pub key: String,
    /// SDK key.
    pub sdk_key: String,
}

/// A flag and its per-environment state.
#[derive(Clone, Debug)]
pub struct FakeFlag {
    /// Numeric id.
    pub id: u64,
    /// `featureKey`.
    pub key: String,
    /// Enabled state per environment key.
    pub enabled: Vec<(String, bool)>,
    /// Rules per environment key.
    pub rules: Vec<(String, Value)>,
}

#[derive(Default)]
struct Inner {
    envs: Vec<FakeEnv>,
    flags: Vec<FakeFlag>,
    tokens: HashSet<String>,
    script: VecDeque<Script>,
    requests: Vec<Recorded>,
    list_includes_state: bool,
    feeds: Vec<Value>,
    next_id: u64,
}

/// Handle on a running VWO stand-in.
#[derive(Clone)]
pub struct FakeVwo {
    /// Listening address.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

fn envelope_error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [("content-type", "application/json")],
        json!({"_errors": [{"code": status, "message": message}]}).to_string(),
    )
        .into_response()
}

impl FakeVwo {
    /// Starts a stand-in with environments `production` (id 1) and `staging` (id 2), accepting `token`.
    pub async fn start(token: &str) -> FakeVwo {
        let inner = Arc::new(Mutex::new(Inner {
            envs: vec![
                FakeEnv {
                    id: 1,
                    key: "production".into(),
                    sdk_key: "sdk-prod-1111".into(),
                },
                FakeEnv {
                    id: 2,
                    key: "staging".into(),
                    sdk_key: "sdk-stage-2222".into(),
                },
            ],
            tokens: HashSet::from([token.to_owned()]),
            next_id: 100,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let addr = crate::serve(app).await;
        FakeVwo { addr, inner }
    }

    /// The API root to configure as `VWO_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    /// Replaces the accepted tokens.
    pub fn accept_tokens(&self, tokens: &[&str]) {
        self.inner.lock().unwrap().tokens = tokens.iter().map(|t| t.to_string()).collect();
    }

    /// Queues scripted answers for the next requests.
    pub fn script(&self, steps: impl IntoIterator<Item = Script>) {
        self.inner.lock().unwrap().script.extend(steps);
    }

    /// Whether list entries carry per-environment state (default: no, details are needed).
    pub fn list_includes_state(&self, yes: bool) {
        self.inner.lock().unwrap().list_includes_state = yes;
    }

    /// Adds a flag, enabled as given in every environment; returns its id.
    pub fn add_flag(&self, key: &str, enabled: bool) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let id = inner.next_id;
        let envs: Vec<String> = inner.envs.iter().map(|e| e.key.clone()).collect();
        inner.flags.push(FakeFlag {
            id,
            key: key.into(),
            enabled: envs.iter().map(|e| (e.clone(), enabled)).collect(),
            rules: envs.iter().map(|e| (e.clone(), json!([]))).collect(),
        });
        id
    }

    /// Removes a flag.
    pub fn remove_flag(&self, key: &str) {
        self.inner.lock().unwrap().flags.retain(|f| f.key != key);
    }

    /// Sets a flag's state in an environment (by key), as a person in VWO's UI would.
    pub fn set_enabled(&self, key: &str, env: &str, enabled: bool) {
        let mut inner = self.inner.lock().unwrap();
        let flag = inner
            .flags
            .iter_mut()
            .find(|f| f.key == key)
            .expect("flag exists");
        for (e, state) in &mut flag.enabled {
            if e == env {
                *state = enabled;
            }
        }
    }

    /// Replaces a flag's rules in an environment.
    pub fn set_rules(&self, key: &str, env: &str, rules: Value) {
        let mut inner = self.inner.lock().unwrap();
        let flag = inner
            .flags
            .iter_mut()
            .find(|f| f.key == key)
            .expect("flag exists");
        for (e, r) in &mut flag.rules {
            if e == env {
                *r = rules.clone();
            }
        }
    }

    /// Whether a flag is enabled in an environment (by key).
    pub fn is_enabled(&self, key: &str, env: &str) -> Option<bool> {
        let inner = self.inner.lock().unwrap();
        let flag = inner.flags.iter().find(|f| f.key == key)?;
        flag.enabled.iter().find(|(e, _)| e == env).map(|(_, s)| *s)
    }

    /// Sets the account timeline returned by `/feeds`.
    pub fn set_feeds(&self, feeds: Vec<Value>) {
        self.inner.lock().unwrap().feeds = feeds;
    }

    /// Every API request received so far (HEAD warm-ups excluded).
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The toggle requests received so far.
    pub fn toggles(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect()
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn flag_json(inner: &Inner, flag: &FakeFlag, with_state: bool, with_rules: bool) -> Value {
    let mut value = json!({
        "id": flag.id,
        "featureKey": flag.key,
        "name": flag.key.replace(['-', '_', '.'], " "),
        "featureType": "TEMPORARY",
        "variables": [{"variableName": "enabled-copy", "dataType": "string", "defaultValue": "on"}],
    });
    if with_state {
        let envs: Vec<Value> = inner
            .envs
            .iter()
            .map(|e| {
                let enabled = flag
                    .enabled
                    .iter()
                    .find(|(k, _)| *k == e.key)
                    .is_some_and(|(_, s)| *s);
                let mut env =
                    json!({"id": e.id, "key": e.key, "sdkKey": e.sdk_key, "isEnabled": enabled});
                if with_rules {
                    env["rules"] = flag
                        .rules
                        .iter()
                        .find(|(k, _)| *k == e.key)
                        .map(|(_, r)| r.clone())
                        .unwrap_or(json!([]));
                }
                env
            })
            .collect();
        value["environments"] = Value::Array(envs);
    }
    value
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::HEAD {
        return StatusCode::NO_CONTENT.into_response();
    }
    let token = headers
        .get("token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let step = {
        let mut guard = inner.lock().unwrap();
        guard.requests.push(Recorded {
            method: method.to_string(),
            raw_path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            token: token.clone(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: std::time::Instant::now(),
        });
        guard.script.pop_front()
    };
    match step {
        Some(Script::Status(status, retry_after)) => {
            let mut response = envelope_error(status, "scripted failure");
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return response;
        }
        Some(Script::Delay(d)) => tokio::time::sleep(d).await,
        Some(Script::Drop) => {
            // Hang far beyond any client timeout; the client gives up and the connection closes.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        None => {}
    }
    let mut guard = inner.lock().unwrap();
    match token {
        None => return envelope_error(401, "Token missing"),
        Some(t) if !guard.tokens.contains(&t) => return envelope_error(403, "Invalid token"),
        Some(_) => {}
    }
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query: Vec<(String, String)> = uri.query().map(url_pairs).unwrap_or_default();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (method.as_str(), segs.as_slice()) {
        (
            "PATCH",
            ["api", "v2", "accounts", _, "environments", env, "features", feature, "toggle"],
        ) => {
            let Some(is_enabled) = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|b| b["isEnabled"].as_bool())
            else {
                return envelope_error(400, "isEnabled must be a boolean");
            };
            let Some(env_key) = guard
                .envs
                .iter()
                .find(|e| e.key == *env || e.id.to_string() == *env || e.sdk_key == *env)
                .map(|e| e.key.clone())
            else {
                return envelope_error(404, "Environment not found");
            };
            let Some(flag) = guard
                .flags
                .iter_mut()
                .find(|f| f.key == *feature || f.id.to_string() == *feature)
            else {
                return envelope_error(404, "Feature not found");
            };
            for (e, state) in &mut flag.enabled {
                if *e == env_key {
                    *state = is_enabled;
                }
            }
            let key = flag.key.clone();
            ok(json!({"_data": {key: {"isEnabled": is_enabled}}}))
        }
        ("GET", ["api", "v2", "accounts", _, "features"]) => {
            let limit: usize = q("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10)
                .min(100);
            let offset: usize = q("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = guard
                .flags
                .iter()
                .skip(offset)
                .take(limit)
                .map(|f| flag_json(&guard, f, guard.list_includes_state, false))
                .collect();
            ok(json!({"_data": page, "_total": guard.flags.len()}))
        }
        ("GET", ["api", "v2", "accounts", _, "features", feature]) => {
            match guard
                .flags
                .iter()
                .find(|f| f.key == *feature || f.id.to_string() == *feature)
            {
                Some(f) => ok(json!({"_data": flag_json(&guard, f, true, true)})),
                None => envelope_error(404, "Feature not found"),
            }
        }
        ("GET", ["api", "v2", "accounts", _, "feeds"]) => ok(json!({"_data": guard.feeds})),
        _ => envelope_error(404, "Not found"),
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(&v.replace('+', " ")))
        })
        .collect()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
