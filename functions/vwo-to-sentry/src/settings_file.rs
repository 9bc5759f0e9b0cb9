//! The environment's SDK settings file: the one document that decides every flag in an
//! environment, read as VWO's own server-side SDKs read it after a webhook.
//!
//! Facts (see `docs/protocols.md` §3b): `GET {host}/server-side/v2-pull?i=<SDK key>&a=<account
//! id>` (VWO Node SDK `lib/constants/index.ts` `WEBHOOK_SETTINGS_ENDPOINT`,
//! `lib/utils/NetworkUtil.ts` `getSettingsPath`), no API token. The body has `accountId`,
//! `version`, `campaigns[]` and optionally `features[]`; either list may be `{}` when empty
//! (`lib/models/schemas/SettingsSchemaValidation.ts`, `SettingsService.normalizeSettings`).
//! A feature has `id`, `key`, `status` and `rules[]` of `{ruleKey, type, campaignId,
//! variationId?}`; a rule's details are the campaign with that id.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bridge_shared::upstream::{self, BodyError};
use bridge_shared::{https, Error, Result};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use url::Url;

/// VWO's settings host (`Constants.HOST_NAME` in VWO's Node SDK).
pub const DEFAULT_SETTINGS_BASE_URL: &str = "https://dev.visualwebsiteoptimizer.com";

/// The path VWO's SDKs read after a webhook (`/server-side/v2-settings` is their normal poll).
pub const WEBHOOK_SETTINGS_PATH: &str = "/server-side/v2-pull";

/// Feature fields that do not change what the flag serves, left out of fingerprints.
const NOT_BEHAVIOUR: &[&str] = &["metrics", "name", "impactCampaign"];

/// One flag as the settings file shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsFlag {
    /// The flag's key.
    pub key: String,
    /// The flag's `status` (`ON` in every published sample).
    pub status: String,
    /// Hash of what decides the flag here: status, type, variables, and each rule in order
    /// with its campaign's details (traffic, variations and weights, variables, segments).
    pub fingerprint: String,
}

/// Every flag of the environment, by flag id.
pub type SettingsFlags = BTreeMap<String, SettingsFlag>;

/// Reads settings files over HTTP.
#[derive(Debug)]
pub struct SettingsClient {
    http: reqwest::Client,
    base: Url,
    budget: Duration,
    max_bytes: usize,
}

fn failed(status: Option<u16>, message: impl Into<String>) -> Error {
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
        let http = https::build(https::client_builder()?.connect_timeout(budget))?;
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

    /// Reads and checks the settings file. Transport failures and 5xx are retried within the
    /// budget; 429 and 503 end the read at once ([`Error::RateLimited`]); a body that is not a
    /// settings file for `account_id` is an upstream error, never an empty environment.
    pub async fn fetch(&self, sdk_key: &str, account_id: u64) -> Result<Value> {
        let now = Instant::now();
        let deadline = now.checked_add(self.budget).unwrap_or(now);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .without_max_times()
            .build();
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
                    match upstream::read_capped(response, self.max_bytes).await {
                        Ok(bytes) if status.is_success() => {
                            return parse_document(&bytes, account_id)
                        }
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

/// Parses a settings file body, refusing anything that is not one for `account_id`.
pub fn parse_document(bytes: &[u8], account_id: u64) -> Result<Value> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| failed(Some(200), format!("body is not JSON ({e})")))?;
    let Some(object) = doc.as_object() else {
        return Err(failed(Some(200), "body is not a JSON object"));
    };
    for required in ["accountId", "version", "campaigns"] {
        if !object.contains_key(required) {
            return Err(failed(Some(200), format!("body has no {required}")));
        }
    }
    let account = match &doc["accountId"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    if account != Some(account_id) {
        return Err(failed(Some(200), "body is the settings of another account"));
    }
    Ok(doc)
}

/// A list that VWO sends as an array, or as `{}` when empty.
fn list<'a>(doc: &'a Value, field: &str) -> Result<&'a [Value]> {
    match &doc[field] {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        Value::Object(map) if map.is_empty() => Ok(&[]),
        _ => Err(failed(Some(200), format!("{field} is not a list"))),
    }
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The flags of a checked settings document, by id, with their fingerprints.
pub fn flags(doc: &Value) -> Result<SettingsFlags> {
    let campaigns: HashMap<String, &Value> = list(doc, "campaigns")?
        .iter()
        .filter_map(|c| Some((id_text(&c["id"])?, c)))
        .collect();
    let mut flags = SettingsFlags::new();
    for feature in list(doc, "features")? {
        let (Some(id), Some(key), Some(status)) = (
            id_text(&feature["id"]),
            feature["key"].as_str().filter(|k| !k.is_empty()),
            feature["status"].as_str(),
        ) else {
            return Err(failed(Some(200), "a feature lacks its id, key or status"));
        };
        flags.insert(
            id,
            SettingsFlag {
                key: key.to_owned(),
                status: status.to_owned(),
                fingerprint: fingerprint(feature, &campaigns),
            },
        );
    }
    Ok(flags)
}

/// Hash of the feature as it decides users: its own fields but those in [`NOT_BEHAVIOUR`],
/// each rule (in order) with its campaign's details inlined.
fn fingerprint(feature: &Value, campaigns: &HashMap<String, &Value>) -> String {
    let mut seen: Map<String, Value> = feature
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !NOT_BEHAVIOUR.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(Value::Array(rules)) = seen.get_mut("rules") {
        for rule in rules.iter_mut() {
            let campaign = id_text(&rule["campaignId"])
                .and_then(|id| campaigns.get(&id).map(|c| (*c).clone()))
                .unwrap_or(Value::Null);
            if let Value::Object(map) = rule {
                map.insert("campaign".into(), campaign);
            }
        }
    }
    // serde_json's maps are sorted by key, so equal documents give equal text.
    let digest = Sha256::digest(Value::Object(seen).to_string().as_bytes());
    hex::encode(&digest[..12])
}

/// A settings document with the given features and campaigns (for tests and benchmarks).
pub fn document(account_id: u64, features: Vec<Value>, campaigns: Vec<Value>) -> Value {
    json!({"accountId": account_id, "version": 1, "sdkKey": "sdk", "features": features, "campaigns": campaigns})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VWO's published sample `src/settings/RolloutAndTestingSettings.json`
    /// (`wingify/vwo-fme-sdk-e2e-test-settings-n-cases`), reduced to one variation each.
    fn sample(traffic: u64, weight: u64) -> Value {
        document(
            12345,
            vec![
                json!({"key": "feature1", "name": "Feature1", "id": 1, "status": "ON",
                "type": "FEATURE_FLAG", "impactCampaign": {},
                "metrics": [{"id": 1, "type": "REVENUE_TRACKING", "identifier": "custom1", "mca": -1}],
                "rules": [{"variationId": 1, "type": "FLAG_ROLLOUT", "campaignId": 1, "ruleKey": "rolloutRule1"},
                          {"campaignId": 2, "type": "FLAG_TESTING", "ruleKey": "testingRule1"}]}),
            ],
            vec![
                json!({"key": "feature1_rolloutRule1", "name": "feature1_rolloutRule1", "id": 1,
                    "segments": {}, "isForcedVariationEnabled": false, "type": "FLAG_ROLLOUT",
                    "status": "RUNNING", "variations": [{"id": 1, "segments": {}, "weight": 100, "name": "Rollout-rule-1"}]}),
                json!({"key": "feature1_testingRule1", "name": "feature1_testingRule1", "id": 2,
                    "percentTraffic": traffic, "segments": {}, "type": "FLAG_TESTING", "status": "RUNNING",
                    "variations": [{"id": 1, "weight": weight, "name": "Default"},
                                   {"id": 2, "weight": 100 - weight, "name": "Variation-1"}]}),
            ],
        )
    }

    #[test]
    fn published_samples_parse_and_empty_lists_may_be_objects() {
        let flags = flags(&sample(100, 50)).unwrap();
        assert_eq!(flags.len(), 1);
        assert_eq!(flags["1"].key, "feature1");
        assert_eq!(flags["1"].status, "ON");
        // `SettingsWithNoFeatureAndCampign.json`: `"features": {}, "campaigns": {}`.
        let empty = parse_document(
            br#"{"version":1,"accountId":12345,"sdkKey":"x","features":{},"campaigns":{}}"#,
            12345,
        )
        .unwrap();
        assert!(super::flags(&empty).unwrap().is_empty());
    }

    #[test]
    fn traffic_weights_and_rule_order_change_the_fingerprint_metrics_do_not() {
        let base = flags(&sample(100, 50)).unwrap()["1"].fingerprint.clone();
        assert_ne!(base, flags(&sample(50, 50)).unwrap()["1"].fingerprint);
        assert_ne!(base, flags(&sample(100, 20)).unwrap()["1"].fingerprint);
        let mut reordered = sample(100, 50);
        reordered["features"][0]["rules"]
            .as_array_mut()
            .unwrap()
            .reverse();
        assert_ne!(base, flags(&reordered).unwrap()["1"].fingerprint);
        let mut metrics = sample(100, 50);
        metrics["features"][0]["metrics"] = json!([]);
        metrics["features"][0]["name"] = json!("Renamed");
        metrics["version"] = json!(2);
        assert_eq!(base, flags(&metrics).unwrap()["1"].fingerprint);
    }

    #[test]
    fn bodies_that_are_not_settings_files_are_refused() {
        for body in [
            &b"<html><body>Down for maintenance</body></html>"[..],
            br#"{"version":1,"accountId":12345,"features":[{"id":1"#,
            b"null",
            b"[]",
            br#"{"_data": []}"#,
            br#"{"version":1,"accountId":999,"campaigns":[]}"#,
        ] {
            let err = parse_document(body, 12345).unwrap_err();
            assert_eq!(err.status(), 502, "{}", String::from_utf8_lossy(body));
        }
        let no_key = document(12345, vec![json!({"id": 1, "status": "ON"})], vec![]);
        assert!(flags(&no_key).is_err());
        let bad_list = json!({"accountId": 12345, "version": 1, "campaigns": [], "features": "x"});
        assert!(flags(&bad_list).is_err());
    }

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
}
