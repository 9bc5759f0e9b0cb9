//! A toggle that the kill switch accepted and must complete: what travels on the queue.

use bridge_state::keys;
use bridge_vwo::api::FlagTarget;
use serde::{Deserialize, Serialize};

/// One accepted decision for one flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToggleJob {
    /// The flag.
    pub target: FlagTarget,
    /// The state to set.
    pub enabled: bool,
    /// Whether this restores the flag after a resolved alert.
    pub restore: bool,
    /// The flag's decision counter when this decision was accepted: a job whose generation is
    /// not the flag's latest was overtaken by a later decision and is dropped.
    pub generation: u64,
    /// When Sentry's alert was accepted (Unix seconds); the retry horizon counts from here.
    pub accepted_at: u64,
    /// The alert rule's name, for logs and the dead-letter queue.
    #[serde(default)]
    pub rule: Option<String>,
    /// The alert rule's id, for the kill record (absent in jobs queued by earlier versions).
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Sentry's page for the alert, for the kill record.
    #[serde(default)]
    pub web_url: Option<String>,
    /// Unix milliseconds before which nobody calls VWO for this job: VWO's wait for the token
    /// when it is longer than SQS can delay a message (900 s). A re-delivery before then waits
    /// out the rest without calling VWO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
    /// When the alert asked for the suspect: the suspect's change, for people
    /// (`switched on by ana@example.com 4 min before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
    /// VWO's id of the environment, when the kill switch already knew it: the kill record is
    /// keyed by it (change tracking looks under the id and under its URL's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
}

impl ToggleJob {
    /// A job to set `target` to `enabled` (`restore` after a resolved alert), accepted at
    /// `accepted_at` (Unix seconds): generation 0 until the state table counts it, no alert
    /// details, no wait.
    pub fn new(target: FlagTarget, enabled: bool, restore: bool, accepted_at: u64) -> Self {
        ToggleJob {
            target,
            enabled,
            restore,
            generation: 0,
            accepted_at,
            rule: None,
            rule_id: None,
            web_url: None,
            not_before_ms: None,
            suspect: None,
            environment_id: None,
        }
    }

    /// The flag's key in the state table: `kill#<account>/<environment>/<feature>`, each part
    /// length-prefixed so that no two flags share a key.
    pub fn flag_key(&self) -> String {
        flag_key(&self.target)
    }
}

/// The state-table key of a flag's ordering record.
/// A rule of the flag is ordered on its own (`/<rule>` appended), so decisions for one rule
/// never overtake another rule's or the flag's.
pub fn flag_key(target: &FlagTarget) -> String {
    keys::flag_order(
        &target.account,
        &target.environment,
        &target.feature,
        target.rule.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(account: &str, environment: &str, feature: &str) -> FlagTarget {
        FlagTarget::flag(account, environment, feature)
    }

    #[test]
    fn flag_keys_cannot_collide_by_moving_characters_between_parts() {
        assert_ne!(
            flag_key(&target("a", "b/c", "d")),
            flag_key(&target("a", "b", "c/d"))
        );
        assert_eq!(
            flag_key(&target("current", "production", "checkout")),
            "kill#7:current/10:production/8:checkout"
        );
    }

    #[test]
    fn jobs_round_trip_as_json() {
        let job = ToggleJob {
            generation: 3,
            rule: Some("Checkout errors".into()),
            rule_id: Some("31".into()),
            ..ToggleJob::new(target("current", "production", "checkout"), false, false, 9)
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<ToggleJob>(&text).unwrap(), job);
    }
}
