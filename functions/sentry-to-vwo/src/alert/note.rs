//! Stage 1b, note: Sentry's issue webhooks (resource `issue`, which an integration subscribed to
//! "issue" receives). An `issue.created` says when the issue began (`data.issue.firstSeen`,
//! `_webhook_issue_data`): kept per issue id for `@suspect` rules, which judge a change against
//! the issue's start. Each is answered 2xx without `Sentry-Hook-Error` (nothing went wrong); an
//! `issue.created` that `TOGGLE_ON` names goes on to the decision as before.

use bridge_platform::clock::unix_secs;
use bridge_platform::Result;
use bridge_sentry::api::seconds;

use super::verify::Alert;
use crate::answer::Handled;
use crate::app::App;

/// What an issue webhook asks of the kill switch: `None` when it goes on to the decision
/// (`TOGGLE_ON` names it), else the note it is answered with.
pub async fn note(app: &App, alert: &Alert) -> Result<Option<Handled>> {
    if alert.resource != "issue" {
        return Ok(None);
    }
    let action = alert.envelope.action.as_str();
    let kept = match action {
        "created" => keep_start(app, alert).await?,
        _ => format!("issue.{action}: nothing to switch"),
    };
    if app.config.toggle_on.contains(&format!("issue.{action}")) {
        return Ok(None);
    }
    Ok(Some(Handled::Noted(kept)))
}

/// Keeps when the issue began, if the webhook says and the state table is there.
async fn keep_start(app: &App, alert: &Alert) -> Result<String> {
    let issue = &alert.envelope.data.issue;
    let id = match &issue["id"] {
        serde_json::Value::String(id) => id.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let first_seen = issue["firstSeen"].as_str().and_then(seconds);
    let (Some(first_seen), false) = (
        first_seen,
        id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()),
    ) else {
        return Ok("issue.created without an issue id and first seen: nothing kept".into());
    };
    let Some(starts) = app.issue_starts() else {
        return Ok(format!(
            "issue {id} began; not kept: @suspect rules need STATE_TABLE"
        ));
    };
    starts.put(&id, first_seen, unix_secs()).await?;
    Ok(format!(
        "issue {id} began at {}: kept for @suspect rules",
        utc(first_seen)
    ))
}

/// `12:03:10 UTC` (or the date too when it is not today) of Unix seconds `at`.
pub fn utc(at: i64) -> String {
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(at) else {
        return at.to_string();
    };
    let today = time::OffsetDateTime::now_utc().date() == time.date();
    let format = if today {
        time::macros::format_description!("[hour]:[minute]:[second] UTC")
    } else {
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")
    };
    time.format(format).unwrap_or_else(|_| at.to_string())
}
