//! Who changed a flag, as Sentry's audit log shows it: the kill switch's alert rule when its
//! record explains the change ([`kill_switch`]), else VWO's account timeline (`/feeds`), when it
//! says.
//!
//! Whether flag changes appear in the timeline is not documented; the lookup is best-effort and
//! falls back to `{"type": "name", "id": "vwo"}`.

use std::collections::HashMap;

use bridge_platform::{Error, Result};
use bridge_sentry::change_tracking::{Actor, ActorKind, MAX_FLAG_LEN};
use bridge_state::kill_record::KillRecord;
use bridge_vwo::api::{TokenSource, VwoClient};
use serde_json::Value;

/// Prefix of `created_by.id` for changes the kill switch made.
pub const KILL_SWITCH: &str = "kill switch";

/// The actor for a change the kill switch made: `kill switch: <rule>`, cut to Sentry's 100
/// characters on a character boundary (ending in `…` when cut); `kill switch: rule <id>` or
/// `kill switch` when the alert named no rule. A flag switched as the suspect:
/// `kill switch (suspect of "<rule>")`.
pub fn kill_switch(record: &KillRecord) -> Actor {
    alert_rule(
        record.rule.as_deref(),
        record.rule_id.as_deref(),
        record.suspect,
    )
}

/// [`kill_switch`]'s actor for an alert rule's name and id.
fn alert_rule(rule: Option<&str>, rule_id: Option<&str>, suspect: bool) -> Actor {
    let rule = rule.map(str::trim).filter(|r| !r.is_empty());
    let rule_id = rule_id.filter(|id| !id.is_empty());
    let full = match (rule, rule_id, suspect) {
        (Some(rule), _, false) => format!("{KILL_SWITCH}: {rule}"),
        (_, Some(id), false) => format!("{KILL_SWITCH}: rule {id}"),
        (Some(rule), _, true) => format!("{KILL_SWITCH} (suspect of \"{rule}\")"),
        (_, Some(id), true) => format!("{KILL_SWITCH} (suspect of rule {id})"),
        (None, None, true) => format!("{KILL_SWITCH} (suspect)"),
        (None, None, false) => KILL_SWITCH.to_owned(),
    };
    let id = if full.chars().count() <= MAX_FLAG_LEN {
        full
    } else {
        let mut cut: String = full.chars().take(MAX_FLAG_LEN - 1).collect();
        cut.truncate(cut.trim_end().len());
        cut.push('…');
        cut
    };
    Actor {
        id,
        kind: ActorKind::Name,
    }
}

/// The entries of a timeline page: `_data` as an array (VWO's list envelope), else none.
fn list_items(body: &Value) -> Vec<Value> {
    body["_data"].as_array().cloned().unwrap_or_default()
}

/// Seconds before the webhook's timestamp in which a timeline entry may describe the change.
const LOOK_BACK_SECS: i64 = 300;
/// Seconds after it (clock differences).
const LOOK_AHEAD_SECS: i64 = 60;

/// The actor named by a timeline entry, if it names one that fits Sentry's limits.
fn entry_actor(entry: &Value) -> Option<Actor> {
    let who = &entry["who"];
    let (id, kind) = match (who["email"].as_str(), who["name"].as_str()) {
        (Some(email), _) if !email.is_empty() => (email, ActorKind::Email),
        (_, Some(name)) if !name.trim().is_empty() => (name.trim(), ActorKind::Name),
        _ => return None,
    };
    (id.chars().count() <= MAX_FLAG_LEN).then(|| Actor {
        id: id.to_owned(),
        kind,
    })
}

/// Whether a timeline entry is about the flag `key`.
fn mentions(entry: &Value, key: &str) -> bool {
    let named = ["feature", "featureFlag"].iter().any(|f| {
        entry[*f]["featureKey"].as_str() == Some(key) || entry[*f]["key"].as_str() == Some(key)
    });
    named
        || entry["what"]
            .as_str()
            .is_some_and(|what| what.to_lowercase().contains(&key.to_lowercase()))
}

/// Pairs each key with the actor of the newest timeline entry that mentions it.
pub fn match_actors(entries: &[Value], keys: &[String]) -> HashMap<String, Actor> {
    keys.iter()
        .filter_map(|key| {
            let actor = entries
                .iter()
                .filter(|e| mentions(e, key))
                .find_map(entry_actor)?;
            Some((key.clone(), actor))
        })
        .collect()
}

/// Reads the timeline around `timestamp` and matches it to `keys`. The lookup is best effort:
/// a failed read is logged and gives an empty map — except when the token's budget is the
/// kills' (no request slot free, or VWO asked the token to wait): then the delivery fails, and
/// VWO's redelivery asks again rather than report the change as `vwo`'s.
pub async fn who_changed(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    timestamp: i64,
    keys: &[String],
) -> Result<HashMap<String, Actor>> {
    let query = [
        ("limit", "100".to_owned()),
        ("offset", "0".to_owned()),
        ("startTime", (timestamp - LOOK_BACK_SECS).to_string()),
        ("endTime", (timestamp + LOOK_AHEAD_SECS).to_string()),
    ];
    match client
        .get(token, &["accounts", account, "feeds"], &query)
        .await
    {
        Ok(reply) => Ok(match_actors(&list_items(&reply.body), keys)),
        Err(e @ (Error::SlotBusy { .. } | Error::RateLimited { .. })) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "could not read VWO's timeline; reporting the actor as vwo");
            Ok(HashMap::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kill_switch_actor_names_the_rule_within_sentrys_100_characters() {
        let a = alert_rule(Some("Checkout errors > 50/5m"), Some("7"), false);
        assert_eq!(a.id, "kill switch: Checkout errors > 50/5m");
        assert_eq!(a.kind, ActorKind::Name);
        assert_eq!(alert_rule(None, Some("7"), false).id, "kill switch: rule 7");
        assert_eq!(
            alert_rule(Some("Search errors > 20/5m"), Some("7"), true).id,
            "kill switch (suspect of \"Search errors > 20/5m\")"
        );
        assert_eq!(alert_rule(None, None, true).id, "kill switch (suspect)");
        assert_eq!(alert_rule(Some("  "), None, false).id, "kill switch");

        let long = format!("{} é", "x".repeat(90));
        let cut = alert_rule(Some(&long), None, false).id;
        assert_eq!(cut.chars().count(), MAX_FLAG_LEN);
        assert!(cut.ends_with('…'));
        // A multi-byte character at the cut is never split.
        let accents = "é".repeat(120);
        let cut = alert_rule(Some(&accents), None, false).id;
        assert_eq!(cut.chars().count(), MAX_FLAG_LEN);
    }

    #[test]
    fn the_newest_entry_naming_the_flag_gives_the_actor() {
        let entries = vec![
            json!({"what": "Feature flag <b>checkout-new-flow</b> turned off in production", "who": {"name": "Ada Admin"}}),
            json!({"what": "Feature flag checkout-new-flow created", "who": {"name": "Old Entry"}}),
            json!({"what": "Campaign started", "who": {"name": "Someone"}}),
            json!({"feature": {"featureKey": "search-v2"}, "what": "updated", "who": {"email": "bo@example.com", "name": "Bo"}}),
        ];
        let keys = vec![
            "checkout-new-flow".to_owned(),
            "search-v2".to_owned(),
            "other".to_owned(),
        ];
        let actors = match_actors(&entries, &keys);
        assert_eq!(
            actors["checkout-new-flow"],
            Actor {
                id: "Ada Admin".into(),
                kind: ActorKind::Name
            }
        );
        assert_eq!(
            actors["search-v2"],
            Actor {
                id: "bo@example.com".into(),
                kind: ActorKind::Email
            }
        );
        assert!(!actors.contains_key("other"));
    }

    #[test]
    fn names_too_long_for_sentry_are_not_used() {
        let entries = vec![json!({"what": "flag a changed", "who": {"name": "x".repeat(101)}})];
        assert!(match_actors(&entries, &["a".to_owned()]).is_empty());
    }
}
