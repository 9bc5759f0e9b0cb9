//! Stage 5, send: who made each change — the kill switch (its own records, no VWO read) or a
//! person (VWO's timeline) — and the batch posted to Sentry's change log, signed, once.

pub mod actor;
pub mod attribution;

use std::collections::HashMap;

use bridge_platform::secrets::Reread;
use bridge_platform::Result;
use bridge_sentry::change_tracking::{self, Actor, FlagBatch, FlagChange};
use bridge_state::kill_record::KillRecord;
use bridge_vwo::settings_file::snapshot::Snapshot;

use super::diff::Change;
use super::Delivery;
use crate::config::COMMIT_MARGIN;

/// What was sent: the changes as Sentry received them, and the kill switch's records that
/// explained some of them.
#[derive(Debug)]
pub struct Sent {
    /// The changes posted, in order.
    pub changes: Vec<FlagChange>,
    /// The kill switch's records, by flag key, of the changes it made.
    pub kills: HashMap<String, KillRecord>,
}

/// Posts `reportable` (the changes from `previous` to `current`) to Sentry, each with who made
/// it.
pub async fn send(
    delivery: &Delivery<'_>,
    previous: &Snapshot,
    current: &Snapshot,
    reportable: &[Change],
) -> Result<Sent> {
    let (app, target, timestamp) = (delivery.app, &delivery.target, delivery.timestamp);
    let deadline = delivery.deadline;
    let config = &app.config;
    let token = app.token();
    let account = config.common.vwo.default_account.as_str();
    // The kill switch's own toggles are the alert rule's, ahead of VWO's timeline (which
    // would name the owner of the API token the kill switch used); they cost no VWO read.
    let environment = target.environment.as_str();
    let candidates = attribution::candidates(account, environment, previous, current, reportable);
    let kills = attribution::kill_switch_changes(&app.kill_records, &candidates).await;
    let unexplained: Vec<String> = reportable
        .iter()
        .map(|c| c.key.clone())
        .filter(|key| !kills.contains_key(key))
        .collect();
    let actors = if config.feeds_lookup && !unexplained.is_empty() {
        actor::who_changed(&app.vwo, token, account, timestamp, &unexplained).await?
    } else {
        Default::default()
    };
    for (flag, record) in &kills {
        tracing::info!(
            flag = flag.as_str(),
            rule = record.rule.as_deref(),
            rule_id = record.rule_id.as_deref(),
            web_url = record.web_url.as_deref(),
            "change made by the kill switch"
        );
    }
    let created_at = change_tracking::iso8601(timestamp)?;
    let sent: Vec<FlagChange> = reportable
        .iter()
        .map(|c| FlagChange {
            change_id: change_tracking::change_id(environment, &c.key, c.action, timestamp),
            created_at: created_at.clone(),
            created_by: kills
                .get(&c.key)
                .map(actor::kill_switch)
                .or_else(|| actors.get(&c.key).cloned())
                .unwrap_or_else(Actor::vwo),
            action: c.action,
            flag: format!("{}{}", target.flag_prefix, c.key),
        })
        .collect();
    let batch = FlagBatch::new(sent.clone());
    // Post only if the answer and the commit still fit in the lease and the invocation.
    let post = config.sentry_timeout + COMMIT_MARGIN;
    deadline.require(post, "post to Sentry and commit")?;
    let signing = config.signing_secret_param.as_str();
    let mut posts = 0u32;
    app.secrets
        .use_rotating(&[signing], Reread::Always, |values| {
            posts += 1;
            let again = posts > 1;
            let batch = &batch;
            async move {
                if again {
                    deadline.require(post, "post to Sentry again and commit")?;
                }
                app.sentry.send(batch, values.require(signing)?).await
            }
        })
        .await?;
    Ok(Sent {
        changes: sent,
        kills,
    })
}
