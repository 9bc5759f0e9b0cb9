//! A flag's latest change in a VWO environment, as change tracking reported it to Sentry: the
//! evidence the kill switch weighs when an alert asks it to switch off the issue's **suspect**
//! (the flag change that started the issue).
//!
//! Change tracking writes one [`LatestChange`] per flag it reported, once Sentry accepted the
//! batch (a change Sentry did not take is never a suspect), keyed by VWO's environment **id** —
//! whatever identifier either function was given — so the kill switch finds what change tracking
//! wrote. Items: [`keys::latest_change`] keys with `at` (VWO's webhook `timestamp`, Unix
//! seconds), `kind`, `by` (the actor id sent to Sentry) and `expires_at` ([`KEEP`] later).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::dynamo::{batch_get, batch_put};
use crate::keys::{self, EXPIRES_AT, PARTITION_KEY};
use bridge_platform::error::Result;

/// How long a change is kept: the longest suspect window the kill switch accepts.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

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
}

impl LatestChange {
    fn to_item(&self, expires_at: u64) -> HashMap<String, AttributeValue> {
        let key = keys::latest_change(&self.environment_id, &self.flag);
        let rule = self
            .rule
            .as_deref()
            .map(|rule| ("rule".to_owned(), s(rule)));
        HashMap::from_iter(rule.into_iter().chain([
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
        Some(LatestChange {
            environment_id: text("vwo_environment_id")?,
            flag: text("flag")?,
            at: item.get("at")?.as_n().ok()?.parse().ok()?,
            kind: ChangeKind::parse(&text("kind")?)?,
            by: text("by")?,
            rule: text("rule"),
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

    /// Records `changes`, each replacing the flag's earlier one, kept [`KEEP`] from `now`
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
}
