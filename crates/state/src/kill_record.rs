//! What the kill switch did, for change tracking to say so: closing the loop between the two
//! functions through the stack's state table.
//!
//! When VWO confirms a toggle, the kill switch writes one [`KillRecord`] (which flag, in which
//! environment, to which state, for which Sentry alert rule). When change tracking then reports
//! an `updated` for that flag in that environment whose new state matches a recent record, it
//! names the rule as the actor (`{"type": "name", "id": "kill switch: <rule>"}`) instead of
//! `vwo`, and deletes the record: a later, manual change is attributed as before.
//!
//! Items (key attribute `environment`, shared with the other records of the table):
//! `toggled#<account>/<environment>/<feature>`, each part length-prefixed, with `enabled`,
//! `rule`, `rule_id`, `web_url` (when Sentry sent them), `at_ms`, and `expires_at` (seconds,
//! the table's TTL attribute). DynamoDB deletes expired items lazily, so readers also check
//! `expires_at` themselves.
//!
//! The kill switch and change tracking may name an environment or a flag differently (VWO
//! accepts an id or a key/name in either URL): the kill switch records under the names its
//! alert used, and change tracking looks up every name it knows for the flag and environment.

use crate::keys::{self, EXPIRES_AT, PARTITION_KEY};
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::dynamo::{batch_get, condition};
use bridge_platform::clock::unix_millis;
use bridge_platform::error::{Error, Result};

/// How long a record can explain a change, unless configured (`KILL_ATTRIBUTION_WINDOW_SECS`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

/// Most keys one lookup reads (change tracking asks for a few names per changed flag; read in
/// batches of 100).
const MAX_BATCH_KEYS: usize = 1000;

/// One toggle VWO confirmed to the kill switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillRecord {
    /// VWO account (`current` or a workspace id), as the kill switch called VWO.
    pub account: String,
    /// VWO environment id or key, as the alert named it.
    pub environment: String,
    /// VWO feature flag id or key, as the alert named it.
    pub feature: String,
    /// The state VWO confirmed.
    pub enabled: bool,
    /// The Sentry alert rule's name, when the alert had one.
    pub rule: Option<String>,
    /// The Sentry alert rule's id, when the alert had one.
    pub rule_id: Option<String>,
    /// Sentry's link to the event or incident, when the alert had one.
    pub web_url: Option<String>,
    /// Whether the flag was the suspect (`@suspect`) rather than named by the rule.
    pub suspect: bool,
    /// The VWO rule the kill switch switched, when it switched one rule rather than the flag.
    pub vwo_rule: Option<String>,
    /// When VWO confirmed the toggle (Unix milliseconds).
    pub at_ms: u64,
    /// When the record stops explaining changes (Unix seconds).
    pub expires_at: u64,
}

/// The state-table key of the record for one flag in one environment.
pub fn record_key(account: &str, environment: &str, feature: &str) -> String {
    keys::kill_record(account, environment, feature)
}

impl KillRecord {
    /// This record's key in the state table.
    pub fn key(&self) -> String {
        record_key(&self.account, &self.environment, &self.feature)
    }

    /// Whether the record still explains changes at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms / 1000 < self.expires_at
    }

    fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (PARTITION_KEY.to_owned(), s(self.key())),
            ("account".to_owned(), s(&self.account)),
            ("vwo_environment".to_owned(), s(&self.environment)),
            ("feature".to_owned(), s(&self.feature)),
            ("enabled".to_owned(), AttributeValue::Bool(self.enabled)),
            ("suspect".to_owned(), AttributeValue::Bool(self.suspect)),
            ("at_ms".to_owned(), n(self.at_ms)),
            (EXPIRES_AT.to_owned(), n(self.expires_at)),
        ]);
        for (name, value) in [
            ("rule", &self.rule),
            ("rule_id", &self.rule_id),
            ("web_url", &self.web_url),
            ("vwo_rule", &self.vwo_rule),
        ] {
            if let Some(value) = value {
                item.insert(name.to_owned(), s(value));
            }
        }
        item
    }

    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<KillRecord> {
        let text = |name: &str| item.get(name)?.as_s().ok().cloned();
        let number = |name: &str| item.get(name)?.as_n().ok()?.parse().ok();
        Some(KillRecord {
            account: text("account")?,
            environment: text("vwo_environment")?,
            feature: text("feature")?,
            enabled: *item.get("enabled")?.as_bool().ok()?,
            // Records written before suspects existed have none.
            suspect: item
                .get("suspect")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            rule: text("rule"),
            rule_id: text("rule_id"),
            web_url: text("web_url"),
            vwo_rule: text("vwo_rule"),
            at_ms: number("at_ms")?,
            expires_at: number(EXPIRES_AT)?,
        })
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The kill records in the state table.
#[derive(Clone, Debug)]
pub struct KillRecords {
    client: Client,
    table: String,
}

impl KillRecords {
    /// The records in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        KillRecords {
            client,
            table: table.into(),
        }
    }

    /// Writes `record`, replacing the flag's earlier one: the latest confirmed toggle is the
    /// one a change can be about.
    pub async fn put(&self, record: &KillRecord) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.to_item()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::State(format!(
                    "PutItem (kill record): {}",
                    DisplayErrorContext(&e)
                ))
            })
    }

    /// The live records under `keys` (at most 100 are read; more are ignored with a warning),
    /// by key.
    pub async fn find(&self, keys: &[String]) -> Result<HashMap<String, KillRecord>> {
        let mut unique: Vec<&String> = Vec::new();
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        if unique.len() > MAX_BATCH_KEYS {
            tracing::warn!(
                keys = unique.len(),
                "more kill-record keys than one read takes; the rest are not checked"
            );
            unique.truncate(MAX_BATCH_KEYS);
        }
        if unique.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = unique.iter().map(|key| keys::key(key.as_str())).collect();
        let now = unix_millis();
        let found = batch_get(&self.client, &self.table, keys, "kill records")
            .await?
            .iter()
            .filter_map(KillRecord::from_item)
            .filter(|r| r.is_live(now))
            .map(|record| (record.key(), record))
            .collect();
        Ok(found)
    }

    /// Deletes `record` if it is still the one stored (a newer toggle replaces it). Returns
    /// whether this call deleted it.
    pub async fn consume(&self, record: &KillRecord) -> Result<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, s(record.key()))
            .condition_expression("at_ms = :at")
            .expression_attribute_values(":at", n(record.at_ms))
            .send()
            .await;
        condition("DeleteItem (kill record)", result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rule: Option<&str>, rule_id: Option<&str>) -> KillRecord {
        KillRecord {
            account: "123".into(),
            environment: "production".into(),
            feature: "checkout-new-flow".into(),
            enabled: false,
            suspect: false,
            rule: rule.map(Into::into),
            rule_id: rule_id.map(Into::into),
            web_url: None,
            vwo_rule: None,
            at_ms: 1_700_000_000_000,
            expires_at: 1_700_003_600,
        }
    }

    #[test]
    fn records_survive_the_round_trip_through_an_item_and_keys_cannot_collide() {
        let mut r = record(Some("rule"), None);
        r.web_url = Some("https://sentry.io/organizations/o/issues/1/".into());
        assert_eq!(KillRecord::from_item(&r.to_item()), Some(r.clone()));
        assert_ne!(record_key("1", "a/b", "c"), record_key("1", "a", "b/c"));
        assert!(r.is_live(r.expires_at * 1000 - 1));
        assert!(!r.is_live(r.expires_at * 1000));
    }
}
