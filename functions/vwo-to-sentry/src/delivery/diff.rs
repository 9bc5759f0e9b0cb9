//! Stage 4, diff: how two snapshots of an environment's settings file differ, as Sentry's change
//! actions, and which of them Sentry can take.

use bridge_vwo::settings_file::snapshot::{FlagRecord, Snapshot};

use bridge_sentry::change_tracking::{FlagAction, MAX_FLAG_LEN};

use super::Delivery;
use crate::answer::Handled;

/// A delivery's changes: those to report, and the keys of those too long for Sentry.
#[derive(Debug)]
pub struct Changes {
    /// Changes whose flag key, with the delivery's prefix, fits Sentry's 100 characters.
    pub reportable: Vec<Change>,
    /// Keys of the changes that do not fit (logged, not reported).
    pub skipped: Vec<String>,
}

impl Changes {
    /// The outcome of a delivery with nothing to report: unchanged, or only skipped keys.
    pub(crate) fn unreported(self) -> Handled {
        if self.skipped.is_empty() {
            Handled::Unchanged
        } else {
            Handled::Sent {
                sent: Vec::new(),
                skipped: self.skipped,
            }
        }
    }
}

/// The changes from `previous` to `current`, split by whether Sentry can take their key with
/// the delivery's `flagPrefix`.
pub fn reportable(delivery: &Delivery<'_>, previous: &Snapshot, current: &Snapshot) -> Changes {
    let prefix = delivery.target.flag_prefix.chars().count();
    let (reportable, skipped): (Vec<Change>, Vec<Change>) = diff(previous, current)
        .into_iter()
        .partition(|c| prefix + c.key.chars().count() <= MAX_FLAG_LEN);
    for change in &skipped {
        tracing::warn!(flag_prefix = %change.key.chars().take(40).collect::<String>(), "flag key longer than Sentry's 100 characters; change not reported");
    }
    Changes {
        reportable,
        skipped: skipped.into_iter().map(|c| c.key).collect(),
    }
}

/// One change between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub action: FlagAction,
    /// The flag's key (the new one, or the last known one for a deletion).
    pub key: String,
    /// Whether the flag is on in the environment after the change.
    pub on: bool,
    /// Whether it was on before (`false` for a flag new to the snapshot).
    pub was_on: bool,
    /// The one rule the change touched, by key, when it changed that rule alone and the flag
    /// stayed on (a rule added, resumed, or its traffic, variations or segments changed).
    pub rule: Option<String>,
}

/// The changes from `old` to `new`, by flag key: new ids are `created`, missing ones `deleted`,
/// and ids whose status, presence or fingerprint differ `updated`. While `old`'s flag list is incomplete, a
/// new id may be a flag that was off and not listed yet: it is reported `updated` (**assumed**
/// the safer claim: no source tells a new flag from one switched on without the list).
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    // How many of `old`'s flags `new` has: when all, none was deleted, and the second loop (as
    // many lookups again) is not needed.
    let (mut kept, mut next) = (0, 0);
    for (id, now) in &new.flags {
        let before = old.find_in_order(id, &mut next);
        kept += usize::from(before.is_some());
        let action = match before {
            None if old.listing.is_some() => Some(FlagAction::Updated),
            None => Some(FlagAction::Created),
            Some(before) if !before.same_as(now) => Some(FlagAction::Updated),
            Some(_) => None,
        };
        if let Some(action) = action {
            let was_on = before.is_some_and(FlagRecord::is_on);
            let rule = before
                .filter(|_| was_on && now.is_on())
                .and_then(|before| now.only_changed_rule(before))
                .map(str::to_owned);
            changes.push(Change {
                action,
                key: now.key.to_string(),
                on: now.is_on(),
                was_on,
                rule,
            });
        }
    }
    if kept < old.flags.len() {
        for (id, before) in &old.flags {
            if !new.flags.contains_key(id) {
                changes.push(Change {
                    action: FlagAction::Deleted,
                    key: before.key.to_string(),
                    on: false,
                    was_on: before.is_on(),
                    rule: None,
                });
            }
        }
    }
    changes.sort_by(|a, b| (&a.key, a.action).cmp(&(&b.key, b.action)));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_updated_and_deleted_are_told_apart() {
        let old = Snapshot::from_iter([
            ("1", FlagRecord::seen("a", Some("ON"), "x")),
            ("2", FlagRecord::seen("b", Some("ON"), "x")),
            ("3", FlagRecord::seen("c", Some("ON"), "x")),
            ("5", FlagRecord::seen("e", Some("ON"), "x")),
        ]);
        let new = Snapshot::from_iter([
            ("1", FlagRecord::seen("a", None, "")),
            ("2", FlagRecord::seen("b", Some("ON"), "y")),
            ("4", FlagRecord::seen("d", Some("ON"), "x")),
            ("5", FlagRecord::seen("e", Some("ON"), "x")),
        ]);
        let c = |action, key: &str, on, was_on| Change {
            action,
            key: key.into(),
            on,
            was_on,
            rule: None,
        };
        // By key, whatever order the maps hold them in.
        assert_eq!(
            diff(&old, &new),
            vec![
                c(FlagAction::Updated, "a", false, true),
                c(FlagAction::Updated, "b", true, true),
                c(FlagAction::Deleted, "c", false, true),
                c(FlagAction::Created, "d", true, false),
            ]
        );
    }

    #[test]
    fn a_status_other_than_on_is_off_and_a_change_of_it_is_an_update() {
        let old = Snapshot::from_iter([("1", FlagRecord::seen("a", Some("ON"), "x"))]);
        let new = Snapshot::from_iter([("1", FlagRecord::seen("a", Some("OFF"), "x"))]);
        assert!(!new.flags["1"].is_on());
        assert_eq!(diff(&old, &new)[0].action, FlagAction::Updated);
    }

    #[test]
    fn only_flags_that_left_the_settings_file_need_a_lookup() {
        let old = Snapshot::from_iter([
            ("1", FlagRecord::seen("a", Some("ON"), "x")),
            ("2", FlagRecord::seen("b", None, "")),
            ("3", FlagRecord::seen("c", Some("ON"), "x")),
        ]);
        let now = Snapshot::from_iter([("3", FlagRecord::seen("c", Some("ON"), "x"))]);
        assert_eq!(old.vanished(&now).collect::<Vec<_>>(), vec!["1"]);
    }

    #[test]
    fn a_flag_new_to_an_incomplete_list_is_an_update() {
        let mut old = Snapshot::from_iter([("1", FlagRecord::seen("a", Some("ON"), "x"))]);
        let new = Snapshot::from_iter([
            ("1", FlagRecord::seen("a", Some("ON"), "x")),
            ("2", FlagRecord::seen("b", Some("ON"), "x")),
        ]);
        assert_eq!(diff(&old, &new)[0].action, FlagAction::Created);
        old.listing = Some(25);
        assert_eq!(diff(&old, &new)[0].action, FlagAction::Updated);
    }

    #[test]
    fn a_renamed_key_is_an_update_under_the_new_key() {
        let old = Snapshot::from_iter([("1", FlagRecord::seen("a", Some("ON"), "x"))]);
        let new = Snapshot::from_iter([("1", FlagRecord::seen("a2", Some("ON"), "x"))]);
        assert_eq!(diff(&old, &new)[0].key, "a2");
    }
}
