//! Reading an environment's flags from VWO's API into a [`Snapshot`].
//!
//! VWO's response bodies are undocumented, so parsing is tolerant (see the README):
//! - lists and details come in a `{"_data": ...}` envelope (a bare body is accepted too);
//! - a list is `_data` as an array (or an object holding one array);
//! - a flag has `id`, and `featureKey` (or `key`);
//! - per-environment state sits in `environments`, an array of objects matched on `id`, `key`,
//!   `sdkKey` or `name`, or an object keyed by environment, each with a boolean `isEnabled`.

use bridge_shared::vwo::{TokenSource, VwoClient};
use bridge_shared::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::snapshot::{FlagRecord, Snapshot};

/// Most pages read in one delivery (a guard against an API that never ends a listing).
const MAX_PAGES: u32 = 200;

/// Keys that change without the flag changing (timestamps), left out of fingerprints.
const VOLATILE_KEYS: &[&str] = &[
    "updatedAt",
    "updatedOn",
    "modifiedAt",
    "modifiedOn",
    "lastModified",
    "lastUpdated",
    "lastUpdatedAt",
    "lastUpdatedOn",
];

/// The body inside VWO's `_data` envelope, or the body itself.
fn unwrap_data(body: &Value) -> &Value {
    body.get("_data").unwrap_or(body)
}

/// The list of flags in a list response.
pub fn list_items(body: &Value) -> Vec<Value> {
    match unwrap_data(body) {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map
            .values()
            .find_map(|v| v.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The flag's id as text.
pub fn flag_id(flag: &Value) -> Option<String> {
    match &flag["id"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The flag's key: `featureKey`, else `key`.
pub fn flag_key(flag: &Value) -> Option<String> {
    flag["featureKey"]
        .as_str()
        .or_else(|| flag["key"].as_str())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

fn names_environment(entry: &Value, environment: &str) -> bool {
    ["id", "key", "sdkKey", "name"]
        .iter()
        .any(|field| match &entry[*field] {
            Value::String(s) => s == environment,
            Value::Number(n) => n.to_string() == environment,
            _ => false,
        })
}

/// The flag's entry for `environment`, if the flag carries per-environment data.
pub fn environment_entry<'a>(flag: &'a Value, environment: &str) -> Option<&'a Value> {
    match &flag["environments"] {
        Value::Array(entries) => entries.iter().find(|e| names_environment(e, environment)),
        Value::Object(map) => map
            .get(environment)
            .or_else(|| map.values().find(|e| names_environment(e, environment))),
        _ => None,
    }
}

/// Whether the flag is enabled in `environment`, if the flag says.
pub fn enabled_in(flag: &Value, environment: &str) -> Option<bool> {
    environment_entry(flag, environment)?["isEnabled"].as_bool()
}

fn without_volatile(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !VOLATILE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without_volatile(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_volatile).collect()),
        other => other.clone(),
    }
}

fn hash(value: &Value) -> String {
    // serde_json's maps are sorted by key, so equal values give equal text.
    let digest = Sha256::digest(value.to_string().as_bytes());
    hex::encode(&digest[..12])
}

/// Hash of the flag as seen from `environment`: its own fields and this environment's entry
/// (rules included), other environments and timestamps left out.
pub fn fingerprint(flag: &Value, environment: &str) -> String {
    let mut seen = without_volatile(flag);
    if let Some(map) = seen.as_object_mut() {
        map.remove("environments");
        if let Some(entry) = environment_entry(flag, environment) {
            map.insert("environment".into(), without_volatile(entry));
        }
    }
    hash(&seen)
}

/// Hash of a list entry as a whole.
pub fn summary(flag: &Value) -> String {
    hash(flag)
}

/// Reads every flag of `environment` in `account`.
///
/// Details are read only for flags whose list entry lacks this environment's state, or whose
/// list entry changed since `previous`; otherwise the previous record is kept.
pub async fn read_snapshot(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    environment: &str,
    previous: &Snapshot,
    page_size: u32,
) -> Result<Snapshot> {
    let mut snapshot = Snapshot::default();
    let mut offset: u64 = 0;
    for _ in 0..MAX_PAGES {
        let reply = client
            .get(
                token,
                &["accounts", account, "features"],
                &[
                    ("limit", page_size.to_string()),
                    ("offset", offset.to_string()),
                ],
            )
            .await?;
        let page = list_items(&reply.body);
        let total = reply.body["_total"].as_u64();
        for entry in &page {
            let Some(id) = flag_id(entry) else {
                tracing::warn!("VWO listed a flag without an id; skipped");
                continue;
            };
            let summary = summary(entry);
            let reusable = previous
                .flags
                .get(&id)
                .filter(|before| before.summary == summary);
            let record = match (enabled_in(entry, environment), reusable) {
                (Some(_), Some(before)) => before.clone(),
                _ => match read_details(client, token, account, &id).await? {
                    Some(details) => FlagRecord {
                        key: flag_key(&details).or_else(|| flag_key(entry)),
                        enabled: enabled_in(&details, environment)
                            .or_else(|| enabled_in(entry, environment)),
                        fingerprint: fingerprint(&details, environment),
                        summary,
                    },
                    // Deleted between the list and the details: absent.
                    None => continue,
                },
            };
            snapshot.flags.insert(id, record);
        }
        offset += page.len() as u64;
        let finished = page.is_empty()
            || (page.len() as u64) < u64::from(page_size)
            || total.is_some_and(|t| offset >= t);
        if finished {
            return Ok(snapshot);
        }
    }
    Err(Error::Upstream {
        service: "VWO",
        status: None,
        message: format!("flag listing did not end after {MAX_PAGES} pages"),
    })
}

/// A flag's details, or `None` if VWO says it does not exist (404).
async fn read_details(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    id: &str,
) -> Result<Option<Value>> {
    match client
        .get(token, &["accounts", account, "features", id], &[])
        .await
    {
        Ok(reply) => Ok(Some(unwrap_data(&reply.body).clone())),
        Err(Error::Upstream {
            status: Some(404), ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_found_in_the_envelope_or_bare() {
        assert_eq!(list_items(&json!({"_data": [{"id": 1}]})).len(), 1);
        assert_eq!(
            list_items(&json!({"_data": {"features": [{"id": 1}, {"id": 2}]}})).len(),
            2
        );
        assert_eq!(list_items(&json!([{"id": 1}])).len(), 1);
        assert!(list_items(&json!({"_data": "x"})).is_empty());
    }

    #[test]
    fn ids_and_keys_are_read_from_either_field() {
        assert_eq!(flag_id(&json!({"id": 12})).as_deref(), Some("12"));
        assert_eq!(flag_id(&json!({"id": "ab"})).as_deref(), Some("ab"));
        assert_eq!(flag_id(&json!({})), None);
        assert_eq!(
            flag_key(&json!({"featureKey": "a", "key": "b"})).as_deref(),
            Some("a")
        );
        assert_eq!(flag_key(&json!({"key": "b"})).as_deref(), Some("b"));
        assert_eq!(flag_key(&json!({"featureKey": ""})), None);
    }

    #[test]
    fn environment_state_is_matched_on_id_key_or_sdk_key() {
        let flag = json!({"environments": [
            {"id": 1, "key": "production", "sdkKey": "sdk-1", "isEnabled": true},
            {"id": 2, "key": "staging", "isEnabled": false}]});
        assert_eq!(enabled_in(&flag, "production"), Some(true));
        assert_eq!(enabled_in(&flag, "1"), Some(true));
        assert_eq!(enabled_in(&flag, "sdk-1"), Some(true));
        assert_eq!(enabled_in(&flag, "2"), Some(false));
        assert_eq!(enabled_in(&flag, "qa"), None);
        let keyed = json!({"environments": {"production": {"isEnabled": false}}});
        assert_eq!(enabled_in(&keyed, "production"), Some(false));
        assert_eq!(enabled_in(&json!({"id": 1}), "production"), None);
    }

    #[test]
    fn fingerprints_see_rules_of_this_environment_only_and_ignore_timestamps() {
        let flag = |prod_rules: Value, stage_rules: Value, updated: u64| {
            json!({"id": 1, "featureKey": "a", "updatedAt": updated, "environments": [
                {"key": "production", "isEnabled": true, "rules": prod_rules},
                {"key": "staging", "isEnabled": true, "rules": stage_rules}]})
        };
        let base = fingerprint(&flag(json!([]), json!([]), 1), "production");
        assert_eq!(
            base,
            fingerprint(&flag(json!([]), json!([{"r": 1}]), 2), "production")
        );
        assert_ne!(
            base,
            fingerprint(&flag(json!([{"r": 1}]), json!([]), 1), "production")
        );
    }
}
