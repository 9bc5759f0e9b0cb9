//! What change tracking remembers of an environment's flags: a snapshot of its settings file.

use compact_str::CompactString;
use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use super::rules::RuleDigests;

/// The snapshot layout this version writes. A stored snapshot of another layout (an earlier
/// version's) is replaced by a new baseline rather than compared. 3: fingerprints of the
/// canonical encoding (`canonical.rs` beside this file) instead of serde_json's text.
pub const FORMAT: u32 = 3;

/// One flag as last seen in one environment. Its texts are [`CompactString`]s: an id, a key
/// of up to 24 bytes, a status and a fingerprint are kept inline, so a snapshot of 10,000 flags
/// costs no allocation per flag (the same JSON as `String`s when stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagRecord {
    /// The flag's key.
    pub key: CompactString,
    /// The flag's `status` in the environment's settings file; `None` when the file leaves the
    /// flag out although VWO still has it (the flag is off in this environment).
    pub status: Option<CompactString>,
    /// Hash of the flag's rules and their campaigns in this environment (empty when absent).
    pub fingerprint: CompactString,
    /// Hash of the same as the settings file's raw text (empty when absent): while it is
    /// unchanged, the fingerprint is not computed again. Not part of what the flag does.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub raw: u64,
    /// Digests of the flag's own settings and of each rule, to tell a change of one rule
    /// ([`RuleDigests`]); shared with the previous snapshot while the flag is unchanged. `None`
    /// in snapshots written before they were kept, and for a flag left out of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Arc<RuleDigests>>,
}

impl FlagRecord {
    /// A flag as a settings file showed it: `status` (`None`: left out of the file), and its
    /// fingerprint (the raw text's hash unknown).
    pub fn seen(key: &str, status: Option<&str>, fingerprint: &str) -> Self {
        FlagRecord {
            key: key.into(),
            status: status.map(Into::into),
            fingerprint: fingerprint.into(),
            raw: 0,
            rules: None,
        }
    }

    /// A flag VWO has that the settings file leaves out: off in this environment.
    pub fn off(key: impl Into<CompactString>) -> Self {
        FlagRecord {
            key: key.into(),
            status: None,
            fingerprint: CompactString::default(),
            raw: 0,
            rules: None,
        }
    }

    /// Whether the flag does the same in both: key, status and fingerprint (the raw text's hash
    /// may differ when VWO lays out the same settings differently).
    pub fn same_as(&self, other: &FlagRecord) -> bool {
        self.key == other.key
            && self.status == other.status
            && self.fingerprint == other.fingerprint
    }

    /// Whether the flag serves its rules in this environment.
    pub fn is_on(&self) -> bool {
        self.status.as_deref() == Some("ON")
    }

    /// The key of the one rule this (the flag now) changed against `before`, when that was the
    /// whole change ([`RuleDigests::only_changed_rule`]); `None` when either lacks digests.
    pub fn only_changed_rule(&self, before: &FlagRecord) -> Option<&str> {
        let (now, before) = (self.rules.as_deref()?, before.rules.as_deref()?);
        now.only_changed_rule(before)
    }
}

/// An environment's flags by VWO flag id, in the order the settings file lists them (and
/// stored in that order). A delivery looks up each of the file's flags in the previous
/// snapshot and builds the new one: in file order both walk their flags front to back, and the
/// hashed index is only 8 bytes a flag (at 10,000 flags, a map holding the records themselves
/// made the lookups miss the cache: a sixth of a delivery). Hashed with Fx: the ids are VWO's.
pub type Flags = IndexMap<CompactString, FlagRecord, FxBuildHasher>;

/// All flags of an environment, by VWO flag id, and how to read the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Layout version ([`FORMAT`]); 0 for snapshots written before it existed.
    #[serde(default)]
    pub format: u32,
    /// The environment's SDK key, looked up once and kept here.
    #[serde(default)]
    pub sdk_key: Option<String>,
    /// VWO's id of the environment, looked up once and kept here (the key of the latest-change
    /// records the kill switch reads); `None` in snapshots written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    /// Flags by id, in the settings file's order (see [`Flags`]).
    pub flags: Flags,
    /// Where the workspace's flag list stands: the offset of the next page to read, `None` once
    /// it ended (change tracking's `flag_listing`). Snapshots of earlier versions read as ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<u32>,
}

impl Snapshot {
    /// The flag with `id`, looked up first where `next` says (just after the flag the previous
    /// lookup found: a settings file lists its flags in the order they were stored), then by
    /// hashing; `next` is moved past what is found.
    pub fn find_in_order(&self, id: &str, next: &mut usize) -> Option<&FlagRecord> {
        let (at, record) = match self.flags.get_index(*next) {
            Some((key, record)) if key == id => (*next, record),
            _ => self
                .flags
                .get_full(id)
                .map(|(at, _, record)| (at, record))?,
        };
        *next = at + 1;
        Some(record)
    }

    /// Ids of flags the previous snapshot had in the settings file that are missing now: each
    /// needs one lookup to tell "switched off" from "deleted".
    /// `now` is the snapshot of the current settings file alone.
    pub fn vanished<'a>(&'a self, now: &'a Snapshot) -> impl Iterator<Item = &'a CompactString> {
        self.flags
            .iter()
            .filter(|(id, r)| r.status.is_some() && !now.flags.contains_key(*id))
            .map(|(id, _)| id)
    }
}

/// A snapshot of this layout ([`FORMAT`]) holding `flags` (id, record) in the given order, with
/// no SDK key and a complete flag list.
impl<'a> FromIterator<(&'a str, FlagRecord)> for Snapshot {
    fn from_iter<I: IntoIterator<Item = (&'a str, FlagRecord)>>(flags: I) -> Self {
        Snapshot {
            format: FORMAT,
            sdk_key: None,
            environment_id: None,
            listing: None,
            flags: flags.into_iter().map(|(id, r)| (id.into(), r)).collect(),
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags on, as `(id, key, digest)`, in this order.
    fn on(flags: &[(&str, &str, &str)]) -> Snapshot {
        let seen = |&(id, key, digest)| (id, FlagRecord::seen(key, Some("ON"), digest));
        flags.iter().map(seen).collect()
    }

    #[test]
    fn a_stored_snapshot_keeps_the_order_of_the_settings_file() {
        let stored = on(&[("9", "i", "x"), ("10", "j", "x"), ("1", "a", "x")]);
        let text = serde_json::to_string(&stored).unwrap();
        let (one, ten, nine) = (
            text.find(r#""1":"#).unwrap(),
            text.find(r#""10":"#).unwrap(),
            text.find(r#""9":"#).unwrap(),
        );
        assert!(nine < ten && ten < one, "{text}");
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, stored);
        assert!(back.flags.keys().eq(["9", "10", "1"]));
        // Written before this order: sorted by id, read all the same.
        let sorted = text.replace(r#""9":"#, r#""0":"#);
        assert_eq!(
            serde_json::from_str::<Snapshot>(&sorted)
                .unwrap()
                .flags
                .len(),
            3
        );
    }

    #[test]
    fn a_flag_is_found_in_order_or_out_of_it() {
        let stored = on(&[("9", "i", "x"), ("10", "j", "y"), ("1", "a", "z")]);
        let mut next = 0;
        let mut find = |id| stored.find_in_order(id, &mut next).map(|r| r.key.clone());
        // In order, with one missing; then out of order, and past the end.
        assert_eq!(find("9").as_deref(), Some("i"));
        assert_eq!(find("5"), None);
        assert_eq!(find("10").as_deref(), Some("j"));
        assert_eq!(find("1").as_deref(), Some("a"));
        assert_eq!(find("9").as_deref(), Some("i"));
        assert_eq!(find("1").as_deref(), Some("a"));
        assert_eq!(find("10").as_deref(), Some("j"));
        assert_eq!(find("10").as_deref(), Some("j"));
    }
}
