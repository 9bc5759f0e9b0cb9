//! Each flag's latest change, kept for the kill switch once Sentry accepted it: when (VWO's
//! webhook `timestamp`), what ([`ChangeKind`]) and who (the actor sent to Sentry), keyed by
//! VWO's environment id ([`bridge_state::latest_change`]).
//!
//! Written after Sentry took the batch and before the snapshot is committed: a write that fails
//! fails the delivery, so VWO's retry reports and records the change again (the same change ids)
//! and a change Sentry did not accept is never a suspect.

use bridge_platform::clock::unix_secs;
use bridge_platform::Result;
use bridge_state::latest_change::{ChangeKind, LatestChange, LatestChanges};
use bridge_vwo::settings_file::snapshot::Snapshot;

use crate::delivery::diff::Change;
use bridge_sentry::change_tracking::{FlagAction, FlagChange};

/// What a change did, as kept for the kill switch's suspect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct What {
    /// What it did to the flag.
    pub kind: ChangeKind,
    /// The one rule it changed, when that was the whole change.
    pub rule: Option<String>,
}

/// What `change` did to its flag.
pub fn what(change: &Change) -> What {
    let kind = ChangeKind::of(
        change.action == FlagAction::Created,
        change.action == FlagAction::Deleted,
        change.was_on,
        change.on,
    );
    What {
        kind,
        rule: change.rule.clone(),
    }
}

/// Records the `sent` changes (each with what it did) made at `timestamp` in the environment of
/// `current` (its VWO id; without one nothing can be keyed and nothing is recorded), under the
/// flags' own keys (`prefix`, the webhook URL's `flagPrefix`, is Sentry's name only).
pub async fn record(
    store: &LatestChanges,
    current: &Snapshot,
    timestamp: i64,
    prefix: &str,
    sent: &[(What, &FlagChange)],
) -> Result<()> {
    let Some(environment_id) = current.environment_id.as_deref() else {
        tracing::warn!("the environment's VWO id is unknown (an ?sdkKey= URL with a name in ?environment=): its changes are not kept for the kill switch's suspect; put the environment's id in the URL");
        return Ok(());
    };
    let changes: Vec<LatestChange> = sent
        .iter()
        .map(|(what, change)| LatestChange {
            environment_id: environment_id.to_owned(),
            flag: change
                .flag
                .strip_prefix(prefix)
                .unwrap_or(&change.flag)
                .to_owned(),
            at: timestamp,
            kind: what.kind,
            by: change.created_by.id.clone(),
            rule: what.rule.clone(),
            earlier: Vec::new(),
        })
        .collect();
    store.record(environment_id, changes, unix_secs()).await
}
