//! Which of an environment's changes the kill switch made: a change is the kill switch's when
//! it is an `updated` that turned the flag on or off, in this environment, to the state of a
//! live kill record (`bridge_state::kill_record`) for that flag — or, for a kill of one rule
//! (`vwo_rule` in the record), an `updated` that changed the flag's rules while the flag stayed
//! on or off. How a paused rule shows in the settings file is **assumed** (its campaign left
//! out, or listed with another `status`): either way the flag's fingerprint changes. Such a change is reported as
//! the alert rule's (`kill switch: <rule>`) and its record is consumed after Sentry accepted
//! the batch, so a later change of the same flag is attributed as before.

use std::collections::HashMap;

use bridge_sentry::change_tracking::FlagAction;
use bridge_state::kill_record::{record_key, KillRecord, KillRecords};

use crate::delivery::diff::Change;
use bridge_vwo::settings_file::snapshot::Snapshot;

/// One change that a kill record could explain, and the record keys to look under (the flag
/// by key and by id: the alert may have named either).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The flag's key, as reported to Sentry.
    pub flag: String,
    /// The flag's state after the change.
    pub on: bool,
    /// The flag stayed on (or off) and its rules changed: only a kill of one rule explains it.
    pub rules_only: bool,
    /// Keys of the records that would explain it.
    pub keys: Vec<String>,
}

/// The changes among `changes` that switched a flag on or off in `environment` (as the webhook
/// URL names it; a kill record may name it by VWO's id instead — as the rule's drop-down does —
/// so the id `current` keeps is looked under too).
pub fn candidates(
    account: &str,
    environment: &str,
    previous: &Snapshot,
    current: &Snapshot,
    changes: &[Change],
) -> Vec<Candidate> {
    changes
        .iter()
        .filter(|c| c.action == FlagAction::Updated)
        .filter_map(|change| {
            let (id, now) = current.flags.iter().find(|(_, f)| f.key == change.key)?;
            let before = previous.flags.get(id)?;
            let rules_only = before.is_on() == now.is_on();
            if rules_only && before.fingerprint == now.fingerprint {
                return None;
            }
            let mut environments = vec![environment];
            environments.extend(
                current
                    .environment_id
                    .as_deref()
                    .filter(|e| *e != environment),
            );
            let mut keys = Vec::new();
            for environment in environments {
                keys.push(record_key(account, environment, &change.key));
                if id.as_str() != change.key {
                    keys.push(record_key(account, environment, id));
                }
            }
            Some(Candidate {
                flag: change.key.clone(),
                on: now.is_on(),
                rules_only,
                keys,
            })
        })
        .collect()
}

/// Pairs each candidate with the record that explains it: one of its keys, switched to the
/// state the flag is now in.
pub fn explained(
    candidates: &[Candidate],
    found: &HashMap<String, KillRecord>,
) -> HashMap<String, KillRecord> {
    candidates
        .iter()
        .filter_map(|c| {
            let record = c.keys.iter().filter_map(|k| found.get(k)).find(|r| {
                if c.rules_only {
                    r.vwo_rule.is_some()
                } else {
                    r.enabled == c.on
                }
            })?;
            Some((c.flag.clone(), record.clone()))
        })
        .collect()
}

/// The changes the kill switch made, by flag key. A failed read is logged and explains
/// nothing: the changes are then reported as VWO's.
pub async fn kill_switch_changes(
    records: &KillRecords,
    candidates: &[Candidate],
) -> HashMap<String, KillRecord> {
    if candidates.is_empty() {
        return HashMap::new();
    }
    let keys: Vec<String> = candidates.iter().flat_map(|c| c.keys.clone()).collect();
    match records.find(&keys).await {
        Ok(found) => explained(candidates, &found),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the kill switch's records; changes are reported as VWO's");
            HashMap::new()
        }
    }
}

/// Deletes the records that explained changes Sentry accepted. A record that stays (failure)
/// expires with its window; it is logged.
pub async fn consume(records: &KillRecords, used: &HashMap<String, KillRecord>) {
    for record in used.values() {
        match records.consume(record).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(feature = %record.feature, "the kill record was replaced by a newer toggle before it was consumed")
            }
            Err(e) => {
                tracing::warn!(error = %e, feature = %record.feature, "could not consume the kill record; it expires by itself")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_vwo::settings_file::snapshot::FlagRecord;

    fn snapshot(status: Option<&str>, fingerprint: &str) -> Snapshot {
        let mut s = Snapshot::default();
        s.flags.insert(
            "42".into(),
            FlagRecord::seen("checkout", status, fingerprint),
        );
        s
    }

    fn change(action: FlagAction, on: bool) -> Change {
        Change {
            action,
            key: "checkout".into(),
            on,
            was_on: !on,
            rule: None,
        }
    }

    fn record(feature: &str, enabled: bool) -> KillRecord {
        KillRecord {
            account: "1".into(),
            environment: "production".into(),
            feature: feature.into(),
            enabled,
            suspect: false,
            rule: Some("Checkout errors".into()),
            rule_id: None,
            web_url: None,
            vwo_rule: None,
            at_ms: 1,
            expires_at: u64::MAX,
        }
    }

    #[test]
    fn a_switch_or_a_rules_edit_is_a_candidate_under_the_flags_key_and_id() {
        let on = snapshot(Some("ON"), "a");
        let off = snapshot(None, "a");
        // Candidates in workspace 1's production, from `old` to `new` with one update.
        let from = |old, new, now_on| {
            candidates(
                "1",
                "production",
                old,
                new,
                &[change(FlagAction::Updated, now_on)],
            )
        };
        let c = from(&on, &off, false);
        assert_eq!(c.len(), 1);
        assert!(!c[0].on);
        assert_eq!(
            c[0].keys,
            vec![
                record_key("1", "production", "checkout"),
                record_key("1", "production", "42")
            ]
        );
        // Rules edited, flag still on: a candidate only for a kill of one rule.
        let edited = snapshot(Some("ON"), "b");
        let c = from(&on, &edited, true);
        assert_eq!(c.len(), 1);
        assert!(c[0].rules_only);
        let flag_kill = HashMap::from([(
            record_key("1", "production", "checkout"),
            record("checkout", true),
        )]);
        assert!(
            explained(&c, &flag_kill).is_empty(),
            "a flag's toggle is no rule edit"
        );
        let mut rule = record("checkout", false);
        rule.vwo_rule = Some("risky-exp".into());
        let rule_kill = HashMap::from([(record_key("1", "production", "checkout"), rule)]);
        assert_eq!(
            explained(&c, &rule_kill)["checkout"].vwo_rule.as_deref(),
            Some("risky-exp")
        );
        // Nothing changed: no candidate.
        assert!(from(&on, &on, true).is_empty());
        // Created and deleted flags are never explained by a toggle.
        assert!(candidates(
            "1",
            "production",
            &on,
            &off,
            &[change(FlagAction::Created, false)]
        )
        .is_empty());
    }

    #[test]
    fn a_record_explains_a_change_only_to_the_state_it_set() {
        let c = candidates(
            "1",
            "production",
            &snapshot(Some("ON"), "a"),
            &snapshot(None, "a"),
            &[change(FlagAction::Updated, false)],
        );
        let by_id = HashMap::from([(record_key("1", "production", "42"), record("42", false))]);
        assert_eq!(explained(&c, &by_id)["checkout"].feature, "42");
        let turned_on = HashMap::from([(
            record_key("1", "production", "checkout"),
            record("checkout", true),
        )]);
        assert!(explained(&c, &turned_on).is_empty());
    }

    /// The rule's drop-down names the environment by VWO's id; the webhook URL by its name.
    #[test]
    fn a_record_under_the_environments_id_explains_a_change_reported_by_name() {
        let mut off = snapshot(None, "a");
        off.environment_id = Some("7".into());
        let c = candidates(
            "1",
            "production",
            &snapshot(Some("ON"), "a"),
            &off,
            &[change(FlagAction::Updated, false)],
        );
        assert!(c[0].keys.contains(&record_key("1", "7", "checkout")));
        let mut kill = record("checkout", false);
        kill.environment = "7".into();
        let by_env_id = HashMap::from([(record_key("1", "7", "checkout"), kill)]);
        assert_eq!(explained(&c, &by_env_id)["checkout"].environment, "7");
    }
}
