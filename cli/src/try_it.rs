//! `bridge try`: sends a VWO webhook, a signed Sentry alert and another VWO webhook to the local
//! run, and says in plain words what each function decided and what VWO and Sentry received.

use std::path::Path;

use bridge_shared::{Error, Result};
use serde_json::Value;

use crate::send::{send, Sender};

const ALERT: &str = "sentry/metric_alert.critical.json";
const QUERY: &str = "feature=checkout-new-flow&environment=production";

fn sample(root: &Path, name: &str) -> Result<Vec<u8>> {
    let path = root.join("events").join(name);
    std::fs::read(&path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

async fn get_json(url: &str) -> Result<Value> {
    let response = reqwest::get(url)
        .await
        .map_err(|e| Error::Config(format!("is `bridge local` running? {url}: {e}")))?;
    response
        .json()
        .await
        .map_err(|e| Error::Config(format!("{url}: {e}")))
}

fn describe_change_tracking(status: u16, body: &Value) -> String {
    if let Some(flags) = body["baseline"]["flags"].as_u64() {
        return format!("change tracking recorded a baseline of {flags} flags in production (nothing sent to Sentry)");
    }
    if body["unchanged"] == true {
        return "change tracking found no flag changes".into();
    }
    if let Some(sent) = body["sent"].as_array() {
        let list: Vec<String> = sent
            .iter()
            .map(|c| {
                format!(
                    "{} {} (change_id {})",
                    c["flag"].as_str().unwrap_or("?"),
                    c["action"].as_str().unwrap_or("?"),
                    c["change_id"]
                )
            })
            .collect();
        return format!(
            "change tracking sent {} change(s) to Sentry: {}",
            sent.len(),
            list.join(", ")
        );
    }
    format!("change tracking answered {status}: {body}")
}

fn describe_kill_switch(status: u16, body: &Value) -> String {
    let t = &body["toggled"];
    if t.is_object() {
        let state = if t["isEnabled"] == true { "ON" } else { "OFF" };
        return format!(
            "the kill switch turned {} {} in {} (VWO answered {} after {} attempt(s))",
            t["feature"].as_str().unwrap_or("?"),
            state,
            t["environment"].as_str().unwrap_or("?"),
            t["vwoStatus"],
            t["attempts"]
        );
    }
    let q = &body["queued"];
    if status == 202 && q.is_object() {
        return format!(
            "the kill switch accepted the kill and queued it ({}); the worker completes it",
            q["reason"].as_str().unwrap_or("VWO not ready")
        );
    }
    format!("the kill switch answered {status}: {body}")
}

/// PATCH requests VWO has received so far.
async fn toggles_at_vwo(base: &str) -> Result<Vec<Value>> {
    let asked = get_json(&format!("{base}/_local/vwo")).await?;
    Ok(asked["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["method"] == "PATCH")
        .cloned()
        .collect())
}

/// Runs the three steps against `base` (e.g. `http://127.0.0.1:9000`); returns the lines to print.
pub async fn run(base: &str, secrets_path: &Path, root: &Path) -> Result<Vec<String>> {
    let secrets = crate::local::dev_secrets(secrets_path)?;
    let secret = |k: &str| secrets.get(k).cloned().unwrap_or_default();
    let base = base.trim_end_matches('/');
    let vwo_hook = br#"{"timestamp": 1795416000, "event": "settings_changed", "action": "feature_flag_updated", "triggered_by": "vwo"}"#;
    let tracking_url = format!("{base}/vwo-to-sentry?environment=production");
    let mut lines = Vec::new();

    let first = send(
        &tracking_url,
        vwo_hook,
        Sender::Vwo,
        "",
        &secret("vwo_webhook_secret"),
    )
    .await?;
    let body: Value = serde_json::from_str(&first.body).unwrap_or(Value::Null);
    lines.push(format!(
        "1. VWO webhook → {}",
        describe_change_tracking(first.status, &body)
    ));

    let alert = sample(root, ALERT)?;
    let kill = send(
        &format!("{base}/sentry-to-vwo?{QUERY}"),
        &alert,
        Sender::Sentry,
        "metric_alert",
        &secret("sentry_client_secret"),
    )
    .await?;
    let body: Value = serde_json::from_str(&kill.body).unwrap_or(Value::Null);
    lines.push(format!(
        "2. Sentry alert (events/{ALERT}, signed) → {}",
        describe_kill_switch(kill.status, &body)
    ));
    // A queued kill: wait (up to 30 s) for the local worker to complete it.
    let mut toggles = toggles_at_vwo(base).await?;
    if kill.status == 202 {
        for _ in 0..60 {
            if toggles
                .iter()
                .any(|r| r["status"] == 200 || r["body"]["isEnabled"] == false)
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            toggles = toggles_at_vwo(base).await?;
        }
    }
    for r in &toggles {
        lines.push(format!(
            "   VWO was asked: {} {} {} (token header set, not in the URL)",
            r["method"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or(""),
            r["body"]
        ));
    }

    let hook = br#"{"timestamp": 1795416060, "event": "settings_changed", "action": "feature_flag_updated", "triggered_by": "vwo"}"#;
    let second = send(
        &tracking_url,
        hook,
        Sender::Vwo,
        "",
        &secret("vwo_webhook_secret"),
    )
    .await?;
    let body: Value = serde_json::from_str(&second.body).unwrap_or(Value::Null);
    lines.push(format!(
        "3. VWO webhook → {}",
        describe_change_tracking(second.status, &body)
    ));
    let received = get_json(&format!("{base}/_local/sentry")).await?;
    for c in received["changes"].as_array().into_iter().flatten() {
        lines.push(format!("   Sentry received (signature verified): {c}"));
    }
    let killed = matches!(kill.status, 200 | 202) && !toggles.is_empty();
    if !killed || first.status != 200 || second.status != 200 {
        return Err(Error::Config(lines.join("\n")));
    }
    Ok(lines)
}
