//! Which of a flag's rules a change touched: each rule's digest, kept beside the flag's
//! fingerprint, so that a change to exactly one rule (a rule added, resumed, or its traffic,
//! variations or segments changed) can be told from a change to the flag itself — and the kill
//! switch can pause that rule alone when it is the suspect.
//!
//! Computed with the fingerprint (only for a flag whose text changed since the last delivery, and
//! for every flag at a baseline); carried over, shared, for every other flag. Snapshots written
//! before this have none: a change to such a flag is the whole flag's.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use xxhash_rust::xxh3::xxh3_64;

use super::{canonical, json_text};

/// A flag's own settings (without its rule list) and each of its rules, as digests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDigests {
    /// Digest of the flag's own settings but its `rules` list (8 hex digits).
    pub own: CompactString,
    /// Each rule in VWO's order: its `ruleKey` and the digest of its entry and its campaign.
    pub rules: Vec<(CompactString, CompactString)>,
}

impl RuleDigests {
    /// The digests of the flag whose feature object is `feature` (its text in the settings
    /// file), its own settings read without `skip` and its `rules` list; `campaigns` are the
    /// digests of its rules' campaigns in order (0: a rule whose campaign the file lacks).
    pub fn of(feature: &str, skip: &[&str], campaigns: &[u64]) -> RuleDigests {
        let mut own_skip = skip.to_vec();
        own_skip.push("rules");
        let mut encoded = Vec::new();
        canonical::object_text(&mut encoded, feature, &own_skip);
        let entries = json_text::member(feature, "rules")
            .and_then(|text| serde_json::from_str::<Vec<&RawValue>>(text).ok())
            .unwrap_or_default();
        let objects = entries.iter().filter(|r| r.get().starts_with('{'));
        let rules = objects
            .zip(campaigns)
            .filter_map(|(entry, campaign)| {
                let key = json_text::member(entry.get(), "ruleKey").and_then(json_text::string)?;
                let mut text = Vec::new();
                canonical::object_text(&mut text, entry.get(), &[]);
                text.extend_from_slice(&campaign.to_le_bytes());
                Some((CompactString::from(key.as_ref()), hex(xxh3_64(&text))))
            })
            .collect();
        RuleDigests {
            own: hex(xxh3_64(&encoded)),
            rules,
        }
    }

    /// The key of the one rule this (the flag now) changed against `before`, if the change was
    /// exactly that: one rule new or different, every other rule and the flag's own settings as
    /// they were (a rule removed counts as a change of its own). `None` for anything else.
    pub fn only_changed_rule(&self, before: &RuleDigests) -> Option<&str> {
        if self.own != before.own {
            return None;
        }
        let added: Vec<&(CompactString, CompactString)> = self
            .rules
            .iter()
            .filter(|rule| !before.rules.contains(rule))
            .collect();
        let removed: Vec<&(CompactString, CompactString)> = before
            .rules
            .iter()
            .filter(|rule| !self.rules.contains(rule))
            .collect();
        match (added.as_slice(), removed.as_slice()) {
            ([(key, _)], []) => Some(key),
            ([(key, _)], [(was, _)]) if key == was => Some(key),
            _ => None,
        }
    }
}

/// 8 hex digits (32 bits) of a digest: enough to tell a changed rule (a miss is one chance in
/// four billion), half the snapshot's growth of 16.
fn hex(digest: u64) -> CompactString {
    compact_str::format_compact!("{:08x}", digest as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKIP: &[&str] = &["metrics", "name"];

    fn digests(feature: serde_json::Value, campaigns: &[u64]) -> RuleDigests {
        RuleDigests::of(&feature.to_string(), SKIP, campaigns)
    }

    fn flag(rules: serde_json::Value, status: &str) -> serde_json::Value {
        serde_json::json!({"id": 1, "key": "checkout", "status": status, "name": "x", "rules": rules})
    }

    #[test]
    fn one_rule_added_or_changed_is_told_apart_from_every_other_change() {
        let rollout =
            serde_json::json!({"ruleKey": "rollout", "type": "FLAG_ROLLOUT", "campaignId": 7});
        let eu = serde_json::json!({"ruleKey": "eu-50", "type": "FLAG_TESTING", "campaignId": 8});
        let us = serde_json::json!({"ruleKey": "us", "type": "FLAG_TESTING", "campaignId": 9});
        let before = digests(flag(serde_json::json!([rollout, eu]), "ON"), &[70, 80]);
        // The eu-50 campaign's traffic changed (its digest), nothing else.
        let traffic = digests(flag(serde_json::json!([rollout, eu]), "ON"), &[70, 81]);
        assert_eq!(traffic.only_changed_rule(&before), Some("eu-50"));
        // A rule added (or back after a pause), first in the list.
        let added = digests(
            flag(serde_json::json!([us, rollout, eu]), "ON"),
            &[90, 70, 80],
        );
        assert_eq!(added.only_changed_rule(&before), Some("us"));
        // Layout and the flag's name do not matter; nothing changed is no rule.
        let renamed = flag(serde_json::json!([rollout, eu]), "ON");
        let mut renamed = renamed.as_object().unwrap().clone();
        renamed.insert("name".into(), "Checkout v3".into());
        let same = digests(serde_json::Value::Object(renamed), &[70, 80]);
        assert_eq!(same, before);
        assert_eq!(same.only_changed_rule(&before), None);
        // Two rules, a removal, the flag's own settings: not one rule's change.
        let two = digests(flag(serde_json::json!([rollout, eu]), "ON"), &[71, 81]);
        assert_eq!(two.only_changed_rule(&before), None);
        let removed = digests(flag(serde_json::json!([rollout]), "ON"), &[70]);
        assert_eq!(removed.only_changed_rule(&before), None);
        let replaced = digests(flag(serde_json::json!([rollout, us]), "ON"), &[70, 90]);
        assert_eq!(replaced.only_changed_rule(&before), None);
        let own = digests(flag(serde_json::json!([rollout, eu]), "OFF"), &[70, 81]);
        assert_eq!(own.only_changed_rule(&before), None);
    }

    #[test]
    fn rules_without_a_key_or_not_objects_are_left_out() {
        let feature = flag(
            serde_json::json!(["odd", {"type": "FLAG_TESTING", "campaignId": 8}, {"ruleKey": "ab", "campaignId": 9}]),
            "ON",
        );
        let read = digests(feature, &[80, 90]);
        assert_eq!(read.rules.len(), 1, "{read:?}");
    }
}
