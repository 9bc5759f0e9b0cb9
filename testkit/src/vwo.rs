//! A VWO stand-in: the REST API (`/api/v2/...`) and the SDK settings endpoint
//! (`/server-side/v2-settings`, `/server-side/v2-pull`) on one loopback port, over one model of a
//! workspace that tests edit as a person in VWO's UI would. Every request is recorded.
//!
//! Shapes follow VWO's published material (the sources are listed in `tests/fixtures/README.md`):
//! - flag resource (list and details): exactly `id`, `featureKey`, `name`, `description`,
//!   `featureType`, `variables[]`, `rulesCount`, `variations[]`, `goals[]` — no per-environment
//!   state (VWO API reference, "Feature Flag Resource Representation");
//! - list pages: `_data` is a bare array, no total (VWO API reference examples);
//! - projects: `_data` is an array of projects with `environments[]` of `{id, name, isEnabled,
//!   token}`, `token` being the SDK key (VWO API reference, project resource representation;
//!   `wingify/vwo-fme-mcp` `lib/utils/ResponseMessages.ts` reads `_data` as an array);
//! - workspace: `GET /accounts/current` → `_data.id` numeric;
//! - settings file: `accountId`, `sdkKey`, `version`, `features[]`, `campaigns[]` as in
//!   `wingify/vwo-fme-sdk-e2e-test-settings-n-cases` `src/settings/OnlyRolloutSettings.json` and
//!   validated like `wingify/vwo-fme-node-sdk` `lib/models/schemas/SettingsSchemaValidation.ts`;
//!   query `i=<SDK key>&a=<account id>` (`lib/utils/NetworkUtil.ts` `getSettingsPath`).
//!
//! **Assumed** (no source settles it): how a flag that is off in an environment shows in that
//! environment's settings file. [`OffFlags`] serves either answer; tests run both.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

/// The numeric workspace id the stand-in answers for `accounts/current`.
pub const ACCOUNT_ID: u64 = 654_321;

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

impl Recorded {
    /// Whether this was a read of an SDK settings file.
    pub fn is_settings(&self) -> bool {
        self.raw_path.starts_with("/server-side/")
    }

    /// A query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url_pairs(self.query.as_deref().unwrap_or_default())
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the stand-in does with the next request (of the REST API or of the settings endpoint,
/// each has its own queue), before normal handling.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answer with this status (and `Retry-After`, and VWO's error envelope).
    Status(u16, Option<u64>),
    /// Wait this long, then answer normally (for timeouts).
    Delay(Duration),
    /// Hang far beyond any client timeout.
    Drop,
    /// Answer 200 with an HTML maintenance page.
    Html,
    /// Answer 200 with the normal body cut in half.
    Truncated,
    /// Answer 200 with this JSON body instead of the normal one.
    Body(Value),
    /// Answer 200 with a body of this many bytes (a JSON string), for size caps.
    Huge(usize),
}

/// How a flag that is off in an environment appears in that environment's settings file.
/// **Assumed**: VWO's material does not say; the bridge must work with either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffFlags {
    /// Left out of `features[]` (the default here).
    #[default]
    Omitted,
    /// Listed with `"status": "OFF"`.
    StatusOff,
}

/// How a paused rule appears in its environment's settings file. **Assumed**: VWO's material does
/// not say (docs/protocols.md §6); the bridge must work with either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PausedRules {
    /// The rule and its campaign are left out (the default here).
    #[default]
    Omitted,
    /// The campaign is listed with `"status": "PAUSED"`.
    StatusPaused,
}

/// One environment of the fake project.
#[derive(Clone, Debug)]
pub struct FakeEnv {
    /// Numeric id.
    pub id: u64,
    /// Name, e.g. `production`.
    pub name: String,
    /// SDK key (VWO's `token` of the environment).
    pub sdk_key: String,
}

/// One rule of a flag in one environment, with its campaign's details.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeRule {
    /// `ruleKey`.
    pub key: String,
    /// `FLAG_ROLLOUT`, `FLAG_TESTING`, ...
    pub kind: String,
    /// The campaign's `percentTraffic`.
    pub traffic: u32,
    /// Variations: `(id, name, weight)`.
    pub variations: Vec<(u64, String, u32)>,
    /// The campaign's `segments`.
    pub segments: Value,
    /// Whether the rule serves (a rule toggle sets it).
    pub enabled: bool,
}

impl FakeRule {
    /// A rollout rule to 100% of traffic, as in VWO's `OnlyRolloutSettings.json`.
    pub fn rollout(key: &str) -> FakeRule {
        FakeRule {
            key: key.into(),
            kind: "FLAG_ROLLOUT".into(),
            traffic: 100,
            variations: vec![(1, "Rollout-rule-1".into(), 100)],
            segments: json!({}),
            enabled: true,
        }
    }

    /// A testing rule (`FLAG_TESTING`, an A/B test) to `traffic` percent of users, its two
    /// variations half and half, shaped as VWO's published samples (`docs/protocols.md` §3b).
    pub fn testing(key: &str, traffic: u32, variations: [&str; 2]) -> FakeRule {
        FakeRule {
            kind: "FLAG_TESTING".into(),
            traffic,
            variations: vec![(1, variations[0].into(), 50), (2, variations[1].into(), 50)],
            ..FakeRule::rollout(key)
        }
    }
}

/// A flag: workspace-wide identity, per-environment state and rules.
#[derive(Clone, Debug)]
pub struct FakeFlag {
    /// Numeric id.
    pub id: u64,
    /// `featureKey`.
    pub key: String,
    /// `name`, as a person gave it in VWO's UI.
    pub name: String,
    /// Enabled state per environment name.
    pub enabled: BTreeMap<String, bool>,
    /// Rules per environment name.
    pub rules: BTreeMap<String, Vec<FakeRule>>,
}

#[derive(Default)]
struct Inner {
    envs: Vec<FakeEnv>,
    flags: Vec<FakeFlag>,
    tokens: HashSet<String>,
    script: VecDeque<Script>,
    settings_script: VecDeque<Script>,
    requests: Vec<Recorded>,
    feeds: Vec<Value>,
    next_id: u64,
    off_flags: OffFlags,
    paused_rules: PausedRules,
    settings_version: u64,
    sdk_events: Vec<String>,
    /// VWO's "1 request per second per token", when enforced: the interval and each token's
    /// last accepted request.
    rate_limit: Option<Duration>,
    last_by_token: HashMap<String, std::time::Instant>,
    rate_violations: Vec<Recorded>,
}

/// Where VWO's SDKs post their tracking events on the settings host (`/events/t`; VWO Node SDK
/// `lib/enums/UrlEnum.ts` `EVENTS`, seen sent by both SDKs with `en=vwo_fmeSdkInit`,
/// `en=vwo_variationShown`).
pub const SDK_EVENTS_PATH: &str = "/events/t";

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
                    name: "production".into(),
                    sdk_key: "sdk-prod-1111".into(),
                },
                FakeEnv {
                    id: 2,
                    name: "staging".into(),
                    sdk_key: "sdk-stage-2222".into(),
                },
            ],
            tokens: HashSet::from([token.to_owned()]),
            next_id: 100,
            settings_version: 1,
            ..Inner::default()
        }));
        // VWO's browser SDK reads the settings file and posts its events from the page's origin
        // (XMLHttpRequest): the settings host must allow any origin (assumed, docs/protocols.md).
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone())
            .layer(tower_http::cors::CorsLayer::permissive());
        let addr = crate::serve(app).await;
        FakeVwo { addr, inner }
    }

    /// The variables that point a function at this stand-in: `VWO_API_BASE_URL` and
    /// `VWO_SETTINGS_BASE_URL`.
    pub fn env(&self) -> [(String, String); 2] {
        [
            ("VWO_API_BASE_URL".to_owned(), self.base_url()),
            ("VWO_SETTINGS_BASE_URL".to_owned(), self.settings_base_url()),
        ]
    }

    /// The API root to configure as `VWO_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    /// The settings host to configure as `VWO_SETTINGS_BASE_URL`.
    pub fn settings_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The SDK key of an environment (by name).
    pub fn sdk_key(&self, env: &str) -> String {
        let inner = self.inner.lock().unwrap();
        inner
            .envs
            .iter()
            .find(|e| e.name == env)
            .map(|e| e.sdk_key.clone())
            .expect("environment exists")
    }

    /// Replaces the accepted tokens.
    pub fn accept_tokens(&self, tokens: &[&str]) {
        self.inner.lock().unwrap().tokens = tokens.iter().map(|t| t.to_string()).collect();
    }

    /// Queues scripted answers for the next REST API requests.
    pub fn script(&self, steps: impl IntoIterator<Item = Script>) {
        self.inner.lock().unwrap().script.extend(steps);
    }

    /// Queues scripted answers for the next settings-file requests.
    pub fn script_settings(&self, steps: impl IntoIterator<Item = Script>) {
        self.inner.lock().unwrap().settings_script.extend(steps);
    }

    /// Chooses how flags that are off show in settings files.
    pub fn off_flags(&self, mode: OffFlags) {
        self.inner.lock().unwrap().off_flags = mode;
    }

    /// How paused rules appear in the settings files from now on.
    pub fn paused_rules(&self, mode: PausedRules) {
        let mut inner = self.inner.lock().unwrap();
        inner.paused_rules = mode;
        inner.settings_version += 1;
    }

    /// Adds a flag, enabled as given in every environment, with one rollout rule in each;
    /// returns its id.
    pub fn add_flag(&self, key: &str, enabled: bool) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let id = inner.next_id;
        let names: Vec<String> = inner.envs.iter().map(|e| e.name.clone()).collect();
        inner.flags.push(FakeFlag {
            id,
            key: key.into(),
            name: key.replace(['-', '_', '.'], " "),
            enabled: names.iter().map(|e| (e.clone(), enabled)).collect(),
            rules: names
                .iter()
                .map(|e| (e.clone(), vec![FakeRule::rollout("rolloutRule1")]))
                .collect(),
        });
        inner.settings_version += 1;
        id
    }

    /// Renames an environment (`production` → `Production`, as VWO's UI names them); its flags'
    /// states and rules go with it. The API then finds it by id, SDK key, or name in any case
    /// (**assumed** to stand for VWO's "environment key": docs/protocols.md).
    pub fn rename_environment(&self, from: &str, to: &str) {
        let mut inner = self.inner.lock().unwrap();
        for env in inner.envs.iter_mut().filter(|e| e.name == from) {
            env.name = to.to_owned();
        }
        for flag in &mut inner.flags {
            if let Some(enabled) = flag.enabled.remove(from) {
                flag.enabled.insert(to.to_owned(), enabled);
            }
            if let Some(rules) = flag.rules.remove(from) {
                flag.rules.insert(to.to_owned(), rules);
            }
        }
        inner.settings_version += 1;
    }

    /// Renames a flag (its `name`; the key stays).
    pub fn set_flag_name(&self, key: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(flag) = inner.flags.iter_mut().find(|f| f.key == key) {
            flag.name = name.to_owned();
        }
        inner.settings_version += 1;
    }

    /// Adds `count` flags named `flag-0001`... enabled everywhere (for scale tests).
    pub fn add_many_flags(&self, count: usize) {
        for i in 0..count {
            self.add_flag(&format!("flag-{i:04}"), true);
        }
    }

    /// Removes a flag.
    pub fn remove_flag(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.flags.retain(|f| f.key != key);
        inner.settings_version += 1;
    }

    fn edit(&self, key: &str, change: impl FnOnce(&mut FakeFlag)) {
        let mut inner = self.inner.lock().unwrap();
        let flag = inner
            .flags
            .iter_mut()
            .find(|f| f.key == key)
            .expect("flag exists");
        change(flag);
        inner.settings_version += 1;
    }

    /// Sets a flag's state in an environment (by name), as a person in VWO's UI would.
    pub fn set_enabled(&self, key: &str, env: &str, enabled: bool) {
        self.edit(key, |flag| {
            flag.enabled.insert(env.to_owned(), enabled);
        });
    }

    /// Replaces a flag's rules in an environment.
    pub fn set_rules(&self, key: &str, env: &str, rules: Vec<FakeRule>) {
        self.edit(key, |flag| {
            flag.rules.insert(env.to_owned(), rules);
        });
    }

    /// A flag's rules in an environment.
    pub fn rules(&self, key: &str, env: &str) -> Vec<FakeRule> {
        let inner = self.inner.lock().unwrap();
        inner
            .flags
            .iter()
            .find(|f| f.key == key)
            .and_then(|f| f.rules.get(env).cloned())
            .unwrap_or_default()
    }

    /// Whether a flag is enabled in an environment (by name).
    pub fn is_enabled(&self, key: &str, env: &str) -> Option<bool> {
        let inner = self.inner.lock().unwrap();
        let flag = inner.flags.iter().find(|f| f.key == key)?;
        flag.enabled.get(env).copied()
    }

    /// Asserts that flag `key` is on in `env` (it exists there and serves).
    #[track_caller]
    pub fn assert_on(&self, key: &str, env: &str) {
        assert_eq!(self.is_enabled(key, env), Some(true), "{key} in {env}");
    }

    /// Asserts that flag `key` is off in `env` (it exists there and does not serve).
    #[track_caller]
    pub fn assert_off(&self, key: &str, env: &str) {
        assert_eq!(self.is_enabled(key, env), Some(false), "{key} in {env}");
    }

    /// Sets the account timeline returned by `/feeds`.
    pub fn set_feeds(&self, feeds: Vec<Value>) {
        self.inner.lock().unwrap().feeds = feeds;
    }

    /// Adds an entry to the account's timeline (`/feeds`), newest first as VWO lists it.
    pub fn add_feed(&self, entry: Value) {
        self.inner.lock().unwrap().feeds.insert(0, entry);
    }

    /// The settings file of an environment (by name), as the stand-in serves it now.
    pub fn settings_file(&self, env: &str) -> Value {
        let inner = self.inner.lock().unwrap();
        let env = inner
            .envs
            .iter()
            .find(|e| e.name == env)
            .expect("environment exists");
        settings_json(&inner, env)
    }

    /// Every request received so far (HEAD warm-ups excluded).
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Answers 429 (`Retry-After: 60`) to an API request that comes within `interval` of the
    /// previous one with the same token, as VWO's rate limit does (1 request/s per token).
    pub fn enforce_rate_limit(&self, interval: Duration) {
        self.inner.lock().unwrap().rate_limit = Some(interval);
    }

    /// The API requests refused by the enforced rate limit.
    pub fn rate_violations(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().rate_violations.clone()
    }

    /// The names (`en`) of the tracking events VWO's SDKs posted, in order.
    pub fn sdk_events(&self) -> Vec<String> {
        self.inner.lock().unwrap().sdk_events.clone()
    }

    /// The settings-file reads received so far.
    pub fn settings_reads(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_settings)
            .collect()
    }

    /// The REST API requests received so far.
    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_settings())
            .collect()
    }

    /// The toggle requests received so far.
    pub fn toggles(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect()
    }

    /// The raw paths of the REST API requests received so far.
    pub fn api_paths(&self) -> Vec<String> {
        self.api_requests()
            .into_iter()
            .map(|r| r.raw_path)
            .collect()
    }

    /// The token each toggle request carried, in order (empty when it carried none).
    pub fn toggle_tokens(&self) -> Vec<String> {
        let toggles = self.toggles().into_iter();
        toggles.map(|t| t.token.unwrap_or_default()).collect()
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// The flag resource representation: no per-environment state.
fn flag_json(flag: &FakeFlag) -> Value {
    let rules_count: usize = flag.rules.values().map(Vec::len).sum();
    json!({
        "id": flag.id,
        "featureKey": flag.key,
        "name": flag.name,
        "description": "",
        "featureType": "TEMPORARY",
        "variables": [{"id": 1, "variableName": "copy", "dataType": "string", "defaultValue": "on"}],
        "rulesCount": rules_count,
        "variations": [{"id": 1, "key": "default", "name": "Default", "variables": []}],
        "goals": [],
    })
}

/// Campaign ids: unique per flag, environment and rule position.
fn campaign_id(flag: &FakeFlag, env: &FakeEnv, position: usize) -> u64 {
    flag.id * 1000 + env.id * 100 + position as u64 + 1
}

fn settings_json(inner: &Inner, env: &FakeEnv) -> Value {
    let mut features = Vec::new();
    let mut campaigns = Vec::new();
    for flag in &inner.flags {
        let on = flag.enabled.get(&env.name).copied().unwrap_or(false);
        if !on && inner.off_flags == OffFlags::Omitted {
            continue;
        }
        let rules = flag.rules.get(&env.name).cloned().unwrap_or_default();
        let mut rule_refs = Vec::new();
        for (position, rule) in rules.iter().enumerate() {
            if !rule.enabled && inner.paused_rules == PausedRules::Omitted {
                continue;
            }
            let id = campaign_id(flag, env, position);
            let mut reference = json!({"ruleKey": rule.key, "type": rule.kind, "campaignId": id});
            if rule.kind == "FLAG_ROLLOUT" {
                if let Some((variation, _, _)) = rule.variations.first() {
                    reference["variationId"] = json!(variation);
                }
            }
            rule_refs.push(reference);
            let key = format!("{}_{}", flag.key, rule.key);
            campaigns.push(json!({
                "id": id,
                "key": key,
                "name": key,
                "type": rule.kind,
                "status": if rule.enabled { "RUNNING" } else { "PAUSED" },
                "percentTraffic": rule.traffic,
                "segments": rule.segments,
                "isForcedVariationEnabled": false,
                "salt": format!("salt-{id}"),
                "variations": rule.variations.iter().map(|(id, name, weight)| json!({
                    "id": id, "name": name, "weight": weight, "segments": {},
                    "variables": [{"id": 1, "key": "copy", "type": "string", "value": name}],
                })).collect::<Vec<Value>>(),
            }));
        }
        features.push(json!({
            "id": flag.id,
            "key": flag.key,
            "name": flag.name,
            "status": if on { "ON" } else { "OFF" },
            "type": "FEATURE_FLAG",
            "metrics": [{"id": 1, "type": "CUSTOM_GOAL", "identifier": "conversion", "mca": -1}],
            "impactCampaign": {},
            "rules": rule_refs,
            "variables": [{"id": 1, "key": "copy", "type": "string", "value": "on"}],
        }));
    }
    // An environment without flags: VWO sends `{}` for both lists
    // (`SettingsWithNoFeatureAndCampign.json`).
    let list = |items: Vec<Value>| {
        if items.is_empty() {
            json!({})
        } else {
            Value::Array(items)
        }
    };
    json!({
        "accountId": ACCOUNT_ID,
        "sdkKey": env.sdk_key,
        "version": inner.settings_version,
        "features": list(features),
        "campaigns": list(campaigns),
        "groups": {},
        "pollInterval": 600000,
    })
}

fn projects_json(inner: &Inner) -> Value {
    json!({"_data": [{
        "id": 7,
        "name": "Web app",
        "environments": inner.envs.iter().map(|e| json!({
            "id": e.id, "name": e.name, "isEnabled": true, "token": e.sdk_key,
        })).collect::<Vec<Value>>(),
    }]})
}

/// A refusal: status and VWO error message.
struct Refusal(u16, &'static str);

impl Refusal {
    fn response(self) -> Response {
        envelope_error(self.0, self.1)
    }
}

/// A JSON answer, or a refusal.
type Answer = Result<Value, Refusal>;

fn scripted(step: Script, normal: impl FnOnce() -> Answer) -> Option<Response> {
    match step {
        Script::Status(status, retry_after) => {
            let mut response = envelope_error(status, "scripted failure");
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            Some(response)
        }
        Script::Html => Some(
            (
                StatusCode::OK,
                [("content-type", "text/html")],
                "<html><body>Down for maintenance</body></html>",
            )
                .into_response(),
        ),
        Script::Truncated => Some(match normal() {
            Ok(value) => {
                let text = value.to_string();
                let half = text[..text.len() / 2].to_owned();
                (StatusCode::OK, [("content-type", "application/json")], half).into_response()
            }
            Err(refused) => refused.response(),
        }),
        Script::Body(value) => Some(ok(value)),
        Script::Huge(size) => {
            let mut text = String::with_capacity(size + 2);
            text.push('"');
            text.extend(std::iter::repeat_n('x', size));
            text.push('"');
            Some((StatusCode::OK, [("content-type", "application/json")], text).into_response())
        }
        Script::Delay(_) | Script::Drop => None,
    }
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
    if method == Method::POST && uri.path() == SDK_EVENTS_PATH {
        // VWO's SDKs report their own events (init, variation shown) to the settings host:
        // kept apart from the API requests tests count.
        let name = url_pairs(uri.query().unwrap_or_default())
            .into_iter()
            .find(|(k, _)| k == "en")
            .map(|(_, v)| v)
            .unwrap_or_default();
        inner.lock().unwrap().sdk_events.push(name);
        return (StatusCode::OK, [("content-type", "application/json")], "{}").into_response();
    }
    let token = headers
        .get("token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let settings = uri.path().starts_with("/server-side/");
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
        if let (false, Some(interval), Some(token)) = (settings, guard.rate_limit, token.clone()) {
            let now = std::time::Instant::now();
            let too_soon = guard
                .last_by_token
                .get(&token)
                .is_some_and(|last| now.duration_since(*last) < interval);
            if too_soon {
                let refused = guard.requests.pop().expect("just recorded");
                guard.rate_violations.push(refused);
                drop(guard);
                let mut response =
                    envelope_error(429, "Too many requests: 1 request per second per token");
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("60"));
                return response;
            }
            guard.last_by_token.insert(token, now);
        }
        if settings {
            guard.settings_script.pop_front()
        } else {
            guard.script.pop_front()
        }
    };
    match &step {
        Some(Script::Delay(d)) => tokio::time::sleep(*d).await,
        Some(Script::Drop) => tokio::time::sleep(Duration::from_secs(3600)).await,
        _ => {}
    }
    let query: Vec<(String, String)> = uri.query().map(url_pairs).unwrap_or_default();
    let normal = || {
        let guard = inner.lock().unwrap();
        if settings {
            settings_answer(&guard, &method, uri.path(), &query)
        } else {
            api_read(&guard, &method, &uri, &query, token.as_deref())
        }
    };
    if let Some(step) = step {
        if let Some(response) = scripted(step, normal) {
            return response;
        }
    }
    if settings {
        return normal().map_or_else(Refusal::response, ok);
    }
    let mut guard = inner.lock().unwrap();
    if let Some(refused) = check_token(&guard, token.as_deref()) {
        return refused.response();
    }
    let segments = path_segments(&uri);
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let (
        "PATCH",
        ["api", "v2", "accounts", _, "environments", env, "features", feature, "toggle"],
    ) = (method.as_str(), segs.as_slice())
    {
        return toggle(&mut guard, env, feature, &body);
    }
    // One rule (`fme-toggle-feature-flag-rule-status`): `{"isEnabled": bool}`, answered `{}`.
    if let (
        "PATCH",
        ["api", "v2", "accounts", _, "environments", env, "features", feature, "rules", rule, "toggle"],
    ) = (method.as_str(), segs.as_slice())
    {
        return toggle_rule(&mut guard, env, feature, rule, &body);
    }
    api_read(&guard, &method, &uri, &query, token.as_deref()).map_or_else(Refusal::response, ok)
}

fn check_token(inner: &Inner, token: Option<&str>) -> Option<Refusal> {
    match token {
        None => Some(Refusal(401, "Token missing")),
        Some(t) if !inner.tokens.contains(t) => Some(Refusal(403, "Invalid token")),
        Some(_) => None,
    }
}

fn path_segments(uri: &Uri) -> Vec<String> {
    uri.path()
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect()
}

fn toggle_rule(inner: &mut Inner, env: &str, feature: &str, rule: &str, body: &[u8]) -> Response {
    let (is_enabled, env_name, flag) = match toggle_request(inner, env, feature, body) {
        Ok(found) => found,
        Err(refused) => return refused.response(),
    };
    let Some(found) = flag
        .rules
        .get_mut(&env_name)
        .and_then(|rules| rules.iter_mut().find(|r| r.key == rule))
    else {
        return envelope_error(404, "Rule not found");
    };
    found.enabled = is_enabled;
    inner.settings_version += 1;
    (StatusCode::OK, [("content-type", "application/json")], "{}").into_response()
}

/// A toggle's `isEnabled`, its environment's name and its flag, or VWO's refusal.
fn toggle_request<'a>(
    inner: &'a mut Inner,
    env: &str,
    feature: &str,
    body: &[u8],
) -> Result<(bool, String, &'a mut FakeFlag), Refusal> {
    let Some(is_enabled) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b["isEnabled"].as_bool())
    else {
        return Err(Refusal(400, "isEnabled must be a boolean"));
    };
    let Some(env_name) = inner
        .envs
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(env) || e.id.to_string() == env || e.sdk_key == env)
        .map(|e| e.name.clone())
    else {
        return Err(Refusal(404, "Environment not found"));
    };
    let Some(flag) = inner
        .flags
        .iter_mut()
        .find(|f| f.key == feature || f.id.to_string() == feature)
    else {
        return Err(Refusal(404, "Feature not found"));
    };
    Ok((is_enabled, env_name, flag))
}

fn toggle(inner: &mut Inner, env: &str, feature: &str, body: &[u8]) -> Response {
    let (is_enabled, env_name, flag) = match toggle_request(inner, env, feature, body) {
        Ok(found) => found,
        Err(refused) => return refused.response(),
    };
    flag.enabled.insert(env_name, is_enabled);
    let key = flag.key.clone();
    inner.settings_version += 1;
    ok(json!({"_data": {key: {"isEnabled": is_enabled}}}))
}

/// Answers to the API's reads (the token is checked first).
fn api_read(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    query: &[(String, String)],
    token: Option<&str>,
) -> Answer {
    if let Some(refused) = check_token(inner, token) {
        return Err(refused);
    }
    let segments = path_segments(uri);
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let account_ok = |a: &str| a == "current" || a == ACCOUNT_ID.to_string();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["api", "v2", "accounts", a]) if account_ok(a) => {
            Ok(json!({"_data": {"id": ACCOUNT_ID, "name": "Main workspace"}}))
        }
        ("GET", ["api", "v2", "accounts", a, ..]) if !account_ok(a) => {
            Err(Refusal(404, "Workspace not found"))
        }
        ("GET", ["api", "v2", "accounts", _, "projects"]) => Ok(projects_json(inner)),
        ("GET", ["api", "v2", "accounts", _, "features"]) => {
            let limit: usize = q("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10)
                .min(100);
            let offset: usize = q("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = inner
                .flags
                .iter()
                .skip(offset)
                .take(limit)
                .map(flag_json)
                .collect();
            Ok(json!({"_data": page}))
        }
        ("GET", ["api", "v2", "accounts", _, "features", feature]) => inner
            .flags
            .iter()
            .find(|f| f.key == *feature || f.id.to_string() == *feature)
            .map(|f| json!({"_data": flag_json(f)}))
            .ok_or(Refusal(404, "Feature not found")),
        ("GET", ["api", "v2", "accounts", _, "feeds"]) => Ok(json!({"_data": inner.feeds})),
        // A flag's rules in an environment (`fme-get-all-feature-flags-rules`; the spec's
        // example answer is `{}`, so the shape is **assumed**): 404 for an unknown flag or
        // environment, by key or id.
        (
            "GET",
            ["api", "v2", "accounts", _, "environments", env, "features", feature, "rules"],
        ) => {
            let (env, flag) = env_and_flag(inner, env, feature)?;
            let rules: Vec<Value> = flag
                .rules
                .get(&env.name)
                .into_iter()
                .flatten()
                .map(|r| json!({"key": r.key, "type": r.kind, "isEnabled": true}))
                .collect();
            Ok(json!({"_data": rules}))
        }
        // One rule's details (`fme-get-details-of-a-specific-feature-flag-rule`; the answer's
        // shape is **assumed**, like the list's): 404 for an unknown rule, flag or environment.
        (
            "GET",
            ["api", "v2", "accounts", _, "environments", env, "features", feature, "rules", rule],
        ) => {
            let (env, flag) = env_and_flag(inner, env, feature)?;
            flag.rules
                .get(&env.name)
                .into_iter()
                .flatten()
                .find(|r| r.key == *rule)
                .map(|r| json!({"_data": {"key": r.key, "type": r.kind, "isEnabled": true}}))
                .ok_or(Refusal(404, "Rule not found"))
        }
        _ => Err(Refusal(404, "Not found")),
    }
}

/// The environment (by name, id or SDK key) and the flag (by key or id) a path names; 404 with
/// VWO's words for either unknown.
fn env_and_flag<'a>(
    inner: &'a Inner,
    env: &str,
    feature: &str,
) -> Result<(&'a FakeEnv, &'a FakeFlag), Refusal> {
    let env = inner
        .envs
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(env) || e.id.to_string() == env || e.sdk_key == env)
        .ok_or(Refusal(404, "Environment not found"))?;
    let flag = inner
        .flags
        .iter()
        .find(|f| f.key == feature || f.id.to_string() == feature)
        .ok_or(Refusal(404, "Feature not found"))?;
    Ok((env, flag))
}

/// The settings endpoint: `GET /server-side/v2-settings|v2-pull?i=<SDK key>&a=<account id>`.
/// **Assumed**: an unknown SDK key or account is answered with 400 (VWO's answer is unknown).
fn settings_answer(
    inner: &Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
) -> Answer {
    if method != Method::GET || !matches!(path, "/server-side/v2-settings" | "/server-side/v2-pull")
    {
        return Err(Refusal(404, "Not found"));
    }
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if q("a") != Some(ACCOUNT_ID.to_string().as_str()) {
        return Err(Refusal(400, "Invalid account id"));
    }
    inner
        .envs
        .iter()
        .find(|e| Some(e.sdk_key.as_str()) == q("i"))
        .map(|env| settings_json(inner, env))
        .ok_or(Refusal(400, "Invalid SDK key"))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
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
