//! `bridge try`: sends a VWO webhook, a signed Sentry alert and another VWO webhook to the local
//! run, and says in plain words what each function decided and what VWO and Sentry received.

use std::path::Path;

use bridge_shared::{Error, Result};
use serde_json::Value;

use crate::failure::Failure;
use crate::send::{send, Sender};

const ALERT: &str = "sentry/metric_alert.critical.json";
const QUERY: &str = "feature=checkout-new-flow&environment=production";

fn sample(root: &Path, name: &str) -> Result<Vec<u8>> {
    let path = root.join("events").join(name);
    std::fs::read(&path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

async fn get_json(url: &str) -> Result<Value> {
    let response = bridge_shared::https::client()?
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Upstream {
            service: "bridge local",
            status: None,
            message: format!(
                "nothing answered at {url} ({}); is `bridge local` still running?",
                crate::failure::root_cause(&e)
            ),
        })?;
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

/// Waits (up to a minute) until `bridge local` answers at `base`, saying so once.
async fn wait_for_local(base: &str, say: &mut dyn FnMut(&str)) -> Result<(), Failure> {
    let probe = format!("{base}/_local/vwo");
    for attempt in 0..120 {
        if bridge_shared::https::client()?
            .get(&probe)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if attempt == 0 {
            say(&format!(
                "waiting for `bridge local` at {base} (start it in another terminal: cargo run -p bridge -- local) ..."
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(Failure::Failed(format!(
        "nothing answered at {base} for a minute: start `cargo run -p bridge -- local` first, or pass --url with the address it printed"
    )))
}

/// An alert body of this run's own: the kill switch refuses a signed body it has seen before
/// (replay protection), so each run changes the alert's id.
fn fresh_alert(root: &Path) -> Result<Vec<u8>> {
    let mut alert: Value = serde_json::from_slice(&sample(root, ALERT)?)
        .map_err(|e| Error::Config(format!("events/{ALERT}: {e}")))?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    alert["data"]["metric_alert"]["id"] = Value::String(format!("try-{nonce}"));
    serde_json::to_vec(&alert).map_err(|e| Error::Config(e.to_string()))
}

/// Runs the three steps against `base` (e.g. `http://127.0.0.1:9000`), telling `say` each step
/// as it happens and showing only this run's requests.
pub async fn run(
    base: &str,
    secrets_path: &Path,
    root: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let base = base.trim_end_matches('/');
    wait_for_local(base, say).await?;
    let secrets = crate::local::dev_secrets(secrets_path)?;
    let secret = |k: &str| secrets.get(k).cloned().unwrap_or_default();
    let vwo_hook = br#"{"timestamp": 1795416000, "event": "settings_changed", "action": "feature_flag_updated", "triggered_by": "vwo"}"#;
    let tracking_url = format!("{base}/vwo-to-sentry?environment=production");
    let toggles_before = toggles_at_vwo(base).await?.len();
    let changes_before = get_json(&format!("{base}/_local/sentry")).await?["changes"]
        .as_array()
        .map_or(0, Vec::len);

    let first = send(
        &tracking_url,
        vwo_hook,
        Sender::Vwo,
        "",
        &secret("vwo_webhook_secret"),
    )
    .await?;
    let body: Value = serde_json::from_str(&first.body).unwrap_or(Value::Null);
    say(&format!(
        "1. VWO webhook → {}",
        describe_change_tracking(first.status, &body)
    ));

    let alert = fresh_alert(root)?;
    let kill = send(
        &format!("{base}/sentry-to-vwo?{QUERY}"),
        &alert,
        Sender::Sentry,
        "metric_alert",
        &secret("sentry_client_secret"),
    )
    .await?;
    let body: Value = serde_json::from_str(&kill.body).unwrap_or(Value::Null);
    say(&format!(
        "2. Sentry alert (events/{ALERT}, signed) → {}",
        describe_kill_switch(kill.status, &body)
    ));
    // A queued kill: wait (up to 30 s) for the local worker to complete it.
    let mut toggles: Vec<Value> = toggles_at_vwo(base)
        .await?
        .into_iter()
        .skip(toggles_before)
        .collect();
    if kill.status == 202 {
        for _ in 0..60 {
            if !toggles.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let all = toggles_at_vwo(base).await?;
            toggles = all.into_iter().skip(toggles_before).collect();
        }
    }
    for r in &toggles {
        say(&format!(
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
    say(&format!(
        "3. VWO webhook → {}",
        describe_change_tracking(second.status, &body)
    ));
    let received = get_json(&format!("{base}/_local/sentry")).await?;
    for c in received["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(changes_before)
    {
        say(&format!("   Sentry received (signature verified): {c}"));
        if let Some(by) = c["created_by"]["id"]
            .as_str()
            .filter(|id| id.starts_with(vwo_to_sentry::actor::KILL_SWITCH))
        {
            say(&format!(
                "   Sentry's flag audit log shows {} {} by \"{by}\": the alert rule, not a person in VWO",
                c["flag"].as_str().unwrap_or("?"),
                c["action"].as_str().unwrap_or("?"),
            ));
        }
    }
    let killed = matches!(kill.status, 200 | 202) && !toggles.is_empty();
    if !killed || first.status != 200 || second.status != 200 {
        return Err(Failure::Failed(
            "a step did not go as expected (see above); `bridge local`'s terminal shows each request".into(),
        ));
    }
    Ok(())
}
