//! What change tracking remembers of an environment's flags, and how two snapshots differ.

use std::collections::BTreeMap;

use bridge_shared::sentry_flags::FlagAction;
use serde::{Deserialize, Serialize};

/// One flag as last seen in one environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagRecord {
    /// The flag's key (`featureKey`), if VWO gave one.
    pub key: Option<String>,
    /// Whether it was enabled in the environment, if VWO said.
    pub enabled: Option<bool>,
    /// Hash of the flag's details as seen from the environment (rules, variations, variables).
    pub fingerprint: String,
    /// Hash of the flag's entry in the list, to skip re-reading details that cannot have changed.
    pub summary: String,
}

/// All flags of an environment, by VWO flag id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Flags by id.
    pub flags: BTreeMap<String, FlagRecord>,
}

/// One change between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub action: FlagAction,
    /// The flag's key (the new one, or the last known one for a deletion).
    pub key: String,
}

/// The changes from `old` to `new`: new ids are `created`, missing ones `deleted`, and ids whose
/// state or fingerprint differ `updated`. Flags without a key cannot be reported and are left out.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, now) in &new.flags {
        let action = match old.flags.get(id) {
            None => Some(FlagAction::Created),
            Some(before)
                if before.enabled != now.enabled || before.fingerprint != now.fingerprint =>
            {
                Some(FlagAction::Updated)
            }
            Some(_) => None,
        };
        if let (Some(action), Some(key)) = (action, &now.key) {
            changes.push(Change {
                action,
                key: key.clone(),
            });
        }
    }
    for (id, before) in &old.flags {
        if !new.flags.contains_key(id) {
            if let Some(key) = &before.key {
                changes.push(Change {
                    action: FlagAction::Deleted,
                    key: key.clone(),
                });
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, enabled: bool, fingerprint: &str) -> FlagRecord {
        FlagRecord {
            key: Some(key.into()),
            enabled: Some(enabled),
            fingerprint: fingerprint.into(),
            summary: "s".into(),
        }
    }

    fn snapshot(items: &[(&str, FlagRecord)]) -> Snapshot {
        Snapshot {
            flags: items
                .iter()
                .map(|(id, r)| (id.to_string(), r.clone()))
                .collect(),
        }
    }

    #[test]
    fn created_updated_and_deleted_are_told_apart() {
        let old = snapshot(&[
            ("1", record("a", true, "x")),
            ("2", record("b", true, "x")),
            ("3", record("c", true, "x")),
        ]);
        let new = snapshot(&[
            ("1", record("a", false, "x")),
            ("2", record("b", true, "y")),
            ("4", record("d", true, "x")),
        ]);
        let changes = diff(&old, &new);
        let c = |action, key: &str| Change {
            action,
            key: key.into(),
        };
        assert_eq!(
            changes,
            vec![
                c(FlagAction::Updated, "a"),
                c(FlagAction::Updated, "b"),
                c(FlagAction::Created, "d"),
                c(FlagAction::Deleted, "c"),
            ]
        );
    }

    #[test]
    fn an_unchanged_snapshot_has_no_changes_even_if_summaries_moved() {
        let old = snapshot(&[("1", record("a", true, "x"))]);
        let mut new = old.clone();
        new.flags.get_mut("1").unwrap().summary = "other".into();
        assert!(diff(&old, &new).is_empty());
    }

    #[test]
    fn a_renamed_key_is_an_update_under_the_new_key() {
        let old = snapshot(&[("1", record("a", true, "x"))]);
        let new = snapshot(&[("1", record("a2", true, "y"))]);
        assert_eq!(
            diff(&old, &new),
            vec![Change {
                action: FlagAction::Updated,
                key: "a2".into()
            }]
        );
    }
}
