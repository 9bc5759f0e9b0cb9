//! A flag's latest change in a VWO environment, as change tracking reported it to Sentry: the
//! evidence the kill switch weighs when an alert asks it to switch off the issue's **suspect**
//! (the flag change that started the issue).
//!
//! Change tracking writes one [`LatestChange`] per flag it reported, once Sentry accepted the
//! batch (a change Sentry did not take is never a suspect), keyed by VWO's environment **id** —
//! whatever identifier either function was given — so the kill switch finds what change tracking
//! wrote. Items: [`keys::latest_change`] keys with `at` (VWO's webhook `timestamp`, Unix
//! seconds), `kind`, `by` (the actor id sent to Sentry) and `expires_at` ([`KEEP`] later), and,
//! once the flag changed again within [`KEEP`], `earlier`: the flag's earlier changes in that
//! time (JSON, newest first, at most [`MAX_EARLIER`]). A change that started an issue and a later
//! edit of the same flag are both found: the kill switch judges each against the issue's start.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::dynamo::{batch_get, batch_put};
use crate::keys::{self, EXPIRES_AT, PARTITION_KEY};
use bridge_platform::error::Result;

/// How long a change is kept: the longest suspect window the kill switch accepts.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Most earlier changes kept beside a flag's latest one.
pub const MAX_EARLIER: usize = 16;

/// What a change did to the flag in the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// A new flag, on.
    Created,
    /// Turned on (it was off or left out of the settings file).
    SwitchedOn,
    /// Still on, with other rules, traffic, variations or variables.
    Changed,
    /// Turned off (or created off).
    SwitchedOff,
    /// Deleted from VWO.
    Deleted,
}

impl ChangeKind {
    /// The change as change tracking saw it: `created`/`deleted` (Sentry's actions) and whether
    /// the flag was on before and is on after.
    pub fn of(created: bool, deleted: bool, was_on: bool, on: bool) -> ChangeKind {
        match (deleted, on, created, was_on) {
            (true, _, _, _) => ChangeKind::Deleted,
            (false, false, _, _) => ChangeKind::SwitchedOff,
            (false, true, true, _) => ChangeKind::Created,
            (false, true, false, false) => ChangeKind::SwitchedOn,
            (false, true, false, true) => ChangeKind::Changed,
        }
    }

    /// Whether the change can have started an issue: it turned the flag on or changed what it
    /// serves. A change that switched it off (or deleted it) is no suspect.
    pub fn may_start_an_issue(self) -> bool {
        matches!(
            self,
            ChangeKind::Created | ChangeKind::SwitchedOn | ChangeKind::Changed
        )
    }

    /// As stored and as people read it: `created`, `switched on`, `changed`, `switched off`,
    /// `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::SwitchedOn => "switched on",
            ChangeKind::Changed => "changed",
            ChangeKind::SwitchedOff => "switched off",
            ChangeKind::Deleted => "deleted",
        }
    }

    fn parse(text: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Created,
            ChangeKind::SwitchedOn,
            ChangeKind::Changed,
            ChangeKind::SwitchedOff,
            ChangeKind::Deleted,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One flag's latest reported change in one environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatestChange {
    /// VWO's id of the environment.
    pub environment_id: String,
    /// The flag's key.
    pub flag: String,
    /// When (VWO's webhook `timestamp`, Unix seconds).
    pub at: i64,
    /// What it did.
    pub kind: ChangeKind,
    /// Who made it, as sent to Sentry (`ana@example.com`, `kill switch: <rule>`, `vwo`).
    pub by: String,
    /// The one rule of the flag it changed (by key), when that was the whole change: the
    /// suspect kill then pauses that rule alone. `None`: the flag's change (and in records
    /// written before rules were kept).
    pub rule: Option<String>,
    /// The flag's earlier changes within [`KEEP`], newest first (each without earlier ones):
    /// the change that started an issue stays found behind a later edit.
    pub earlier: Vec<LatestChange>,
}

impl LatestChange {
    /// This change and each earlier one, newest first.
    pub fn all(&self) -> impl Iterator<Item = &LatestChange> {
        std::iter::once(self).chain(&self.earlier)
    }

    /// This change as the flag's latest, with `before` (the flag's latest until now) and its
    /// earlier changes kept behind it while they are within [`KEEP`] of `now`.
    fn after(mut self, before: LatestChange, now: u64) -> LatestChange {
        let oldest = now as i64 - KEEP.as_secs() as i64;
        let mut earlier = before.earlier.clone();
        earlier.insert(
            0,
            LatestChange {
                earlier: Vec::new(),
                ..before
            },
        );
        earlier.retain(|c| c.at >= oldest && c.at <= self.at);
        earlier.truncate(MAX_EARLIER);
        self.earlier = earlier;
        self
    }

    fn earlier_json(&self) -> String {
        let list: Vec<serde_json::Value> = self
            .earlier
            .iter()
            .map(|c| serde_json::json!({"at": c.at, "kind": c.kind.as_str(), "by": c.by, "rule": c.rule}))
            .collect();
        serde_json::Value::Array(list).to_string()
    }

    fn earlier_from(&self, json: &str) -> Vec<LatestChange> {
        let list: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
        list.iter()
            .filter_map(|c| {
                Some(LatestChange {
                    environment_id: self.environment_id.clone(),
                    flag: self.flag.clone(),
                    at: c["at"].as_i64()?,
                    kind: ChangeKind::parse(c["kind"].as_str()?)?,
                    by: c["by"].as_str()?.to_owned(),
                    rule: c["rule"].as_str().map(str::to_owned),
                    earlier: Vec::new(),
                })
            })
            .take(MAX_EARLIER)
            .collect()
    }

    fn to_item(&self, expires_at: u64) -> HashMap<String, AttributeValue> {
        let key = keys::latest_change(&self.environment_id, &self.flag);
        let rule = self
            .rule
            .as_deref()
            .map(|rule| ("rule".to_owned(), s(rule)));
        let earlier =
            (!self.earlier.is_empty()).then(|| ("earlier".to_owned(), s(&self.earlier_json())));
        HashMap::from_iter(rule.into_iter().chain(earlier).chain([
            (PARTITION_KEY.to_owned(), AttributeValue::S(key)),
            ("vwo_environment_id".to_owned(), s(&self.environment_id)),
            ("flag".to_owned(), s(&self.flag)),
            ("at".to_owned(), AttributeValue::N(self.at.to_string())),
            ("kind".to_owned(), s(self.kind.as_str())),
            ("by".to_owned(), s(&self.by)),
            (
                EXPIRES_AT.to_owned(),
                AttributeValue::N(expires_at.to_string()),
            ),
        ]))
    }

    fn from_item(item: &HashMap<String, AttributeValue>, now: u64) -> Option<LatestChange> {
        let text = |name: &str| item.get(name)?.as_s().ok().cloned();
        let expires_at: u64 = item.get(EXPIRES_AT)?.as_n().ok()?.parse().ok()?;
        (now < expires_at).then_some(())?;
        let latest = LatestChange {
            environment_id: text("vwo_environment_id")?,
            flag: text("flag")?,
            at: item.get("at")?.as_n().ok()?.parse().ok()?,
            kind: ChangeKind::parse(&text("kind")?)?,
            by: text("by")?,
            rule: text("rule"),
            earlier: Vec::new(),
        };
        let earlier = text("earlier").map(|json| latest.earlier_from(&json));
        Some(LatestChange {
            earlier: earlier.unwrap_or_default(),
            ..latest
        })
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The latest changes in the state table.
#[derive(Clone, Debug)]
pub struct LatestChanges {
    client: Client,
    table: String,
}

impl LatestChanges {
    /// The changes in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        LatestChanges {
            client,
            table: table.into(),
        }
    }

    /// Records `changes` of the environment `environment_id`, each as its flag's latest, with
    /// the flag's earlier changes within [`KEEP`] of `now` (Unix seconds) kept behind it. Change
    /// tracking writes under the environment's lease, so no other delivery writes meanwhile.
    pub async fn record(
        &self,
        environment_id: &str,
        changes: Vec<LatestChange>,
        now: u64,
    ) -> Result<()> {
        let flags: Vec<&str> = changes.iter().map(|c| c.flag.as_str()).collect();
        let mut before = self.get(environment_id, &flags, now).await?;
        let changes: Vec<LatestChange> = changes
            .into_iter()
            .map(|c| match before.remove(&c.flag) {
                Some(previous) => c.after(previous, now),
                None => c,
            })
            .collect();
        self.put_all(&changes, now).await
    }

    /// Writes `changes` as they are, each replacing its flag's item, kept [`KEEP`] from `now`
    /// (Unix seconds).
    pub async fn put_all(&self, changes: &[LatestChange], now: u64) -> Result<()> {
        let expires_at = now + KEEP.as_secs();
        let items = changes.iter().map(|c| c.to_item(expires_at)).collect();
        batch_put(&self.client, &self.table, items, "latest changes").await
    }

    /// The latest change of each of `flags` in the environment `environment_id` that has one
    /// (not expired at `now`, Unix seconds), by flag key: one read per hundred flags.
    pub async fn get(
        &self,
        environment_id: &str,
        flags: &[&str],
        now: u64,
    ) -> Result<HashMap<String, LatestChange>> {
        let mut unique: Vec<&str> = flags.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let keys = unique
            .iter()
            .map(|flag| keys::key(keys::latest_change(environment_id, flag)))
            .collect();
        Ok(batch_get(&self.client, &self.table, keys, "latest changes")
            .await?
            .iter()
            .filter_map(|item| LatestChange::from_item(item, now))
            .filter(|c| c.environment_id == environment_id)
            .map(|c| (c.flag.clone(), c))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_a_suspect_only_when_it_turned_the_flag_on_or_changed_it() {
        use ChangeKind::*;
        assert_eq!(ChangeKind::of(true, false, false, true), Created);
        assert_eq!(ChangeKind::of(false, false, false, true), SwitchedOn);
        assert_eq!(ChangeKind::of(false, false, true, true), Changed);
        assert_eq!(ChangeKind::of(false, false, true, false), SwitchedOff);
        assert_eq!(ChangeKind::of(true, false, false, false), SwitchedOff);
        assert_eq!(ChangeKind::of(false, true, true, false), Deleted);
        let suspects: Vec<bool> = [Created, SwitchedOn, Changed, SwitchedOff, Deleted]
            .map(ChangeKind::may_start_an_issue)
            .to_vec();
        assert_eq!(suspects, [true, true, true, false, false]);
    }

    #[test]
    fn a_change_reads_back_as_written_until_it_expires() {
        let change = LatestChange {
            environment_id: "1".into(),
            flag: "search-v2".into(),
            at: 1_796_500_000,
            kind: ChangeKind::SwitchedOn,
            by: "ana@example.com".into(),
            rule: None,
            earlier: Vec::new(),
        };
        let item = change.to_item(1_796_600_000);
        assert_eq!(
            item[PARTITION_KEY].as_s().unwrap(),
            "change#1:1/9:search-v2"
        );
        assert!(!item.contains_key("rule"), "written as before when no rule");
        assert_eq!(
            LatestChange::from_item(&item, 1_796_599_999),
            Some(change.clone())
        );
        assert_eq!(LatestChange::from_item(&item, 1_796_600_000), None);
        // A change of one rule keeps the rule.
        let rule = LatestChange {
            kind: ChangeKind::Changed,
            rule: Some("eu-50".into()),
            ..change
        };
        let item = rule.to_item(1_796_600_000);
        assert_eq!(LatestChange::from_item(&item, 1_796_599_999), Some(rule));
    }

    #[test]
    fn a_later_edit_keeps_the_change_before_it_until_it_expires() {
        let at = 1_796_500_000;
        let change = |at: i64, kind| LatestChange {
            environment_id: "1".into(),
            flag: "search-v2".into(),
            at,
            kind,
            by: "ana@example.com".into(),
            rule: None,
            earlier: Vec::new(),
        };
        let now = at as u64 + 600;
        let first = change(at, ChangeKind::SwitchedOn);
        let second = change(at + 300, ChangeKind::Changed).after(first.clone(), now);
        let third = change(at + 600, ChangeKind::Changed).after(second.clone(), now);
        let kinds: Vec<i64> = third.all().map(|c| c.at).collect();
        assert_eq!(kinds, [at + 600, at + 300, at]);
        let item = third.to_item(now + KEEP.as_secs());
        assert_eq!(LatestChange::from_item(&item, now), Some(third.clone()));
        // A day later the first change is gone from behind the next one.
        let later = at as u64 + KEEP.as_secs() + 100;
        let fourth = change(later as i64, ChangeKind::Changed).after(third, later);
        assert_eq!(fourth.all().count(), 3, "{fourth:?}");
        assert!(fourth.all().all(|c| c.at > at));
    }
}
