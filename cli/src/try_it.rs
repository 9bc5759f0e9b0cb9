//! `bridge try`: the whole story against the local run, as it happens in production — a person
//! switches a flag on in VWO, change tracking reports it, the application evaluates the flag (with
//! the real Python integration) and fails, Sentry names the flag as a suspect, an issue alert
//! whose rule names no flag (`@suspect`) fires, the kill switch finds the suspect from the
//! issue's event and the change and turns it off, and Sentry's change log names the rule. Each step is
//! said in plain words as it happens, with only this run's requests.

use std::path::Path;

use bridge_platform::{Error, Result};
use serde_json::Value;

use crate::failure::Failure;
use crate::send::{send, Sender};

/// The issue alert the story fires: Sentry's `event_alert` sample, its rule asking for the
/// issue's suspect (`@suspect`) and its event the application's.
const ALERT: &str = "sentry/event_alert.triggered.json";
/// The flag of the story, and where it lives.
const FLAG: &str = "search-v2";
const ENVIRONMENT: &str = "production";
/// The alert rule of the story (the sample's rule, renamed for it).
const RULE: &str = "Search errors > 20/5m";
/// The person who switches the flag on in VWO (the local VWO's timeline names them).
const PERSON: (&str, &str) = ("Ana Lima", "ana@example.com");

fn sample(root: &Path, name: &str) -> Result<Vec<u8>> {
    let path = root.join("events").join(name);
    std::fs::read(&path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// GET `url` of `bridge local` as JSON.
async fn get_json(url: &str) -> Result<Value> {
    let response = bridge_platform::tls::client()?
        .get(url)
        .send()
        .await
        .map_err(|e| {
            let hint = "; is `bridge local` still running?";
            crate::failure::unanswered_by("bridge local", url, &e, hint)
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
                    text(&c["flag"]),
                    text(&c["action"]),
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
        let found = match t["suspect"]["change"].as_str() {
            Some(change) => format!("found the issue's suspect ({change}) and "),
            None => String::new(),
        };
        return format!(
            "the kill switch {found}turned {} {} in {} (VWO answered {} after {} attempt(s))",
            text(&t["feature"]),
            state,
            text(&t["environment"]),
            t["vwoStatus"],
            t["attempts"]
        );
    }
    if let Some(message) = body["dryRun"]["message"].as_str() {
        return format!("the kill switch answered {status}: {message}");
    }
    let q = &body["queued"];
    if status == 202 && q.is_object() {
        return format!(
            "the kill switch accepted the kill and queued it ({}); the worker completes it",
            q["reason"].as_str().unwrap_or("VWO not ready")
        );
    }
    if let Some(reason) = body["deferred"]["reason"].as_str() {
        return format!(
            "the kill switch answered {status} at once and decides after the answer ({reason})"
        );
    }
    format!("the kill switch answered {status}: {body}")
}

/// What the local worker decided of a deferred alert whose detail names `issue` (waited for up
/// to 30 s): its outcome and detail.
async fn decided_later(base: &str, issue: &str) -> Result<Option<(String, String)>> {
    for _ in 0..60 {
        let decisions = get_json(&format!("{base}/_local/decisions")).await?;
        let found = decisions["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| text(&d["detail"]).contains(issue) && d["outcome"] != "deferred");
        if let Some(d) = found {
            return Ok(Some((
                text(&d["outcome"]).to_owned(),
                text(&d["detail"]).to_owned(),
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Ok(None)
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
        if bridge_platform::tls::client()?
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

/// The issue alert of the story's rule, as Sentry sends it when the issue fires: the rule's
/// action names no flag but `@suspect` in the story's environment, and `data.event` is the
/// issue's event as the Sentry stand-in received it from the application — its time and its
/// flags (`contexts.flags.values`), as `Event.as_dict()` passes them on. Each run's is new
/// (the kill switch refuses a replayed body).
fn fresh_alert(root: &Path, nonce: u128, issue: &Value) -> Result<Vec<u8>> {
    let mut alert: Value = serde_json::from_slice(&sample(root, ALERT)?)
        .map_err(|e| Error::Config(format!("events/{ALERT}: {e}")))?;
    alert["data"]["triggered_rule"] = Value::String(RULE.into());
    alert["data"]["issue_alert"]["title"] = Value::String(RULE.into());
    alert["data"]["issue_alert"]["settings"] = serde_json::json!([
        {"name": "feature", "value": "@suspect"}, {"name": "environment", "value": ENVIRONMENT}]);
    let event = &mut alert["data"]["event"];
    event["event_id"] = Value::String(format!("{nonce:032x}"));
    event["title"] = issue["title"].clone();
    event["datetime"] = issue["firstSeen"].clone();
    // The issue's id, as `_webhook_event_data` adds it: the kill switch reads the issue with it.
    event["issue_id"] = issue["id"].clone();
    event["contexts"] = serde_json::json!({"flags": {"values": issue["flags"].clone()}});
    serde_json::to_vec(&alert).map_err(|e| Error::Config(e.to_string()))
}

/// A VWO webhook stamped now, as VWO sends it when settings change.
fn vwo_webhook() -> Vec<u8> {
    serde_json::json!({
        "timestamp": bridge_platform::clock::unix_secs(),
        "event": "settings_changed",
        "action": "feature_flag_updated",
        "triggered_by": "vwo",
    })
    .to_string()
    .into_bytes()
}

async fn post_json(url: &str, body: &Value) -> Result<Value> {
    let response = bridge_platform::tls::client()?
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| Error::Config(format!("{url}: {}", crate::failure::root_cause(&e))))?;
    response
        .json()
        .await
        .map_err(|e| Error::Config(format!("{url}: {e}")))
}

/// Changes Sentry has accepted so far.
async fn sentry_changes(base: &str) -> Result<Vec<Value>> {
    Ok(get_json(&format!("{base}/_local/sentry")).await?["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// How often the story delivers a webhook that change tracking answered with a 5xx: VWO retries
/// a failed delivery every 1–2 s for up to an hour (docs/change-tracking.md); the story, a few
/// times a second apart.
const WEBHOOK_DELIVERIES: usize = 5;

/// Delivers a VWO webhook to change tracking, again as VWO does while it answers 5xx (e.g. no
/// VWO request slot free yet), and says what it did and who Sentry was told made each change.
async fn report_changes(
    base: &str,
    secret: &str,
    step: &str,
    say: &mut dyn FnMut(&str),
) -> Result<(u16, Vec<Value>), Failure> {
    let before = sentry_changes(base).await?.len();
    let url = format!("{base}/vwo-to-sentry?environment={ENVIRONMENT}");
    let mut status = 0;
    for delivery in 1..=WEBHOOK_DELIVERIES {
        let answer = send(&url, &vwo_webhook(), Sender::Vwo, "", secret).await?;
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let lead = if delivery == 1 { step } else { "  " };
        let said = describe_change_tracking(answer.status, &body);
        say(&format!("{lead} VWO webhook → {said}"));
        status = answer.status;
        if status < 500 || delivery == WEBHOOK_DELIVERIES {
            break;
        }
        say("   (VWO delivers a failed webhook again: in 1 s)");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let changes: Vec<Value> = sentry_changes(base)
        .await?
        .into_iter()
        .skip(before)
        .collect();
    for c in &changes {
        let said = change_said(c, " ", &c["created_by"]);
        let at = text(&c["created_at"]);
        say(&format!(
            "   Sentry received (signature verified): {said} at {at}"
        ));
    }
    Ok((status, changes))
}

/// How `bridge try` runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Send the alert as a dry run: the story ends with what the kill switch would do.
    pub dry_run: bool,
    /// The application that fails with the flag (step 3).
    pub app: crate::try_app::AppKind,
}

/// The story, step by step, against `base` (e.g. `http://127.0.0.1:9000`), telling `say` each
/// step as it happens and showing only this run's requests.
pub async fn run(
    base: &str,
    secrets_path: &Path,
    root: &Path,
    options: Options,
    say: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let base = base.trim_end_matches('/');
    wait_for_local(base, say).await?;
    let secrets = crate::local::dev_secrets(secrets_path)?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let story = Story {
        base,
        root,
        vwo_secret: secrets
            .get("vwo_webhook_secret")
            .cloned()
            .unwrap_or_default(),
        sentry_secret: secrets
            .get("sentry_client_secret")
            .cloned()
            .unwrap_or_default(),
        run: format!("try-{nonce}"),
        nonce,
    };
    let mut ok = story.baseline(say).await?;
    ok &= story.person_switches_on(say).await?;
    ok &= story.application_fails(options.app, say).await?;
    ok &= story.issue_names_the_suspect(say).await?;
    let (kill_ok, dry) = story.alert_fires(options, say).await?;
    ok &= kill_ok;
    if options.dry_run {
        // Nothing was switched: the story ends with what the kill switch would have done.
        if dry {
            say(&format!(
                "   (dry run: {FLAG} stays on; run `bridge try` without --dry-run to switch it)"
            ));
        }
        return if ok && dry {
            Ok(())
        } else {
            Err(Failure::Failed(
                "the dry run did not go as expected (see above)".into(),
            ))
        };
    }
    ok &= story.change_log_names_the_rule(say).await?;
    ok &= story.yesterdays_issue_is_not_blamed(say).await?;
    if !ok {
        return Err(Failure::Failed(
            "a step did not go as expected (see above); `bridge local`'s terminal shows each request".into(),
        ));
    }
    Ok(())
}

/// One run of the story against a running `bridge local`: each step says what happened and
/// answers whether it went as the story expects.
struct Story<'a> {
    base: &'a str,
    root: &'a Path,
    vwo_secret: String,
    sentry_secret: String,
    /// This run's mark on the application's error.
    run: String,
    nonce: u128,
}

impl Story<'_> {
    fn switch(enabled: bool, (name, email): (&str, &str)) -> Value {
        serde_json::json!({"flag": FLAG, "environment": ENVIRONMENT, "enabled": enabled,
            "name": name, "email": email})
    }

    /// Step 1: Change tracking knows the environment (its baseline on the first run); a flag left on
    /// by an earlier run is switched off first.
    async fn baseline(&self, say: &mut dyn FnMut(&str)) -> Result<bool, Failure> {
        let base = self.base;
        let (status, _) = report_changes(base, &self.vwo_secret, "1.", say).await?;
        let switch = Self::switch(false, ("bridge try", ""));
        let reset = post_json(&format!("{base}/_local/vwo/switch"), &switch).await?;
        if reset["switched"].is_object() {
            say(&format!(
                "   ({FLAG} was left on by an earlier run: switched it off first)"
            ));
            report_changes(base, &self.vwo_secret, "  ", say).await?;
        }
        Ok(status == 200)
    }

    /// Step 2: A person switches the flag on in VWO; change tracking reports it.
    async fn person_switches_on(&self, say: &mut dyn FnMut(&str)) -> Result<bool, Failure> {
        let base = self.base;
        post_json(
            &format!("{base}/_local/vwo/switch"),
            &Self::switch(true, PERSON),
        )
        .await?;
        say(&format!(
            "2. {} ({}) switches {FLAG} ON in {ENVIRONMENT} in VWO",
            PERSON.0, PERSON.1
        ));
        let (status, changes) = report_changes(base, &self.vwo_secret, "  ", say).await?;
        Ok(status == 200 && changes.iter().any(|c| c["flag"] == FLAG))
    }

    /// Step 3: The application evaluates the flag, fails, and its Sentry SDK records the evaluation.
    async fn application_fails(
        &self,
        kind: crate::try_app::AppKind,
        say: &mut dyn FnMut(&str),
    ) -> Result<bool, Failure> {
        let endpoints = get_json(&format!("{}/_local/endpoints", self.base)).await?;
        let app = crate::try_app::run(kind, &endpoints, self.root, &self.run, FLAG).await?;
        say(&format!(
            "3. The application ({}) evaluates {FLAG}: {}",
            kind.describe(),
            if app.enabled { "on" } else { "off" }
        ));
        match &app.error {
            Some(error) => say(&format!(
                "   and fails: SearchIndexError: {error}; its Sentry SDK sends the error with contexts.flags {FLAG} = {}",
                app.enabled
            )),
            None => say("   and does not fail (the flag is off): no issue to show"),
        }
        Ok(app.error.is_some())
    }

    /// Step 4: What Sentry shows on the new issue: its flags and the suspect.
    async fn issue_names_the_suspect(&self, say: &mut dyn FnMut(&str)) -> Result<bool, Failure> {
        let Some(issue) = self.issue().await? else {
            say("4. Sentry received no error event from the application");
            return Ok(false);
        };
        say(&format!(
            "4. Sentry opens the issue \"{}\": Feature Flags section {}",
            text(&issue["title"]),
            issue["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| format!("{} = {}", text(&f["flag"]), f["result"]))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let suspects = issue["suspectFlags"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for s in &suspects {
            let said = change_said(s, " — ", &s["createdBy"]);
            let before = s["secondsBeforeFirstSeen"].as_f64().unwrap_or_default();
            say(&format!(
                "   suspect flag: {said} {before:.0} s before the issue started"
            ));
        }
        Ok(suspects
            .iter()
            .any(|s| s["flag"] == FLAG && s["createdBy"]["id"] == PERSON.1))
    }

    /// This run's issue at the Sentry stand-in, if the application's error reached it.
    async fn issue(&self) -> Result<Option<Value>, Failure> {
        let issues = get_json(&format!("{}/_local/sentry", self.base)).await?["issues"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(issues
            .into_iter()
            .find(|i| i["title"].as_str().is_some_and(|t| t.contains(&self.run))))
    }

    /// Step 5: The alert fires: the kill switch turns the flag off (or, in a dry run, says it would).
    /// Answers whether it went as expected, and whether it was a dry run that switched nothing.
    async fn alert_fires(
        &self,
        options: Options,
        say: &mut dyn FnMut(&str),
    ) -> Result<(bool, bool), Failure> {
        let base = self.base;
        let toggles_before = toggles_at_vwo(base).await?.len();
        let dry_run = if options.dry_run { "&dryRun=true" } else { "" };
        let issue = self.issue().await?.unwrap_or(Value::Null);
        let kill = send(
            &format!("{base}/sentry-to-vwo?environment={ENVIRONMENT}{dry_run}"),
            &fresh_alert(self.root, self.nonce, &issue)?,
            Sender::Sentry,
            "event_alert",
            &self.sentry_secret,
        )
        .await?;
        let body: Value = serde_json::from_str(&kill.body).unwrap_or(Value::Null);
        say(&format!(
            "5. Sentry alert \"{RULE}\" fires: an issue alert whose rule names no flag but @suspect, with the issue's event (events/{ALERT}, signed) → {}",
            describe_kill_switch(kill.status, &body)
        ));
        let toggles = toggles_after(base, toggles_before, kill.status == 202).await?;
        for r in &toggles {
            say(&format!(
                "   VWO was asked: {} {} {} (token header set, not in the URL)",
                r["method"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
                r["body"]
            ));
        }
        let dry = body["dryRun"]["message"].is_string() && toggles.is_empty();
        let ok = options.dry_run || (matches!(kill.status, 200 | 202) && !toggles.is_empty());
        Ok((ok, dry))
    }

    /// Step 6: VWO tells change tracking; Sentry's change log names the alert rule.
    async fn change_log_names_the_rule(&self, say: &mut dyn FnMut(&str)) -> Result<bool, Failure> {
        let (status, changes) = report_changes(self.base, &self.vwo_secret, "6.", say).await?;
        let by_rule = changes.iter().find(|c| {
            c["flag"] == FLAG
                && c["created_by"]["id"].as_str().is_some_and(|id| {
                    id.starts_with(vwo_to_sentry::delivery::send::actor::KILL_SWITCH)
                })
        });
        let Some(c) = by_rule else {
            return Ok(false);
        };
        say(&format!(
            "   Sentry's flag log shows {FLAG} {} by \"{}\": the alert rule, not a person in VWO",
            text(&c["action"]),
            text(&c["created_by"]["id"]),
        ));
        Ok(status == 200)
    }

    /// Step 7: the point of judging against the issue's start: an issue that began yesterday, on
    /// a page where the flag changed today, fires its alert now; nothing is switched, and the
    /// answer says why.
    async fn yesterdays_issue_is_not_blamed(
        &self,
        say: &mut dyn FnMut(&str),
    ) -> Result<bool, Failure> {
        let base = self.base;
        let yesterday = bridge_platform::clock::unix_secs() as i64 - 86_400;
        let id = (1_000_000 + self.nonce % 1_000_000_000).to_string();
        let issue = serde_json::json!({"id": id, "firstSeen": yesterday, "flags": [FLAG],
            "events": 20, "environment": ENVIRONMENT});
        post_json(&format!("{base}/_local/sentry/issues"), &issue).await?;
        let began = time::OffsetDateTime::from_unix_timestamp(yesterday)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        let event = serde_json::json!({"id": id, "title": format!("{} (yesterday's)", self.run),
            "firstSeen": began, "flags": [{"flag": FLAG, "result": true}]});
        let toggles_before = toggles_at_vwo(base).await?.len();
        let kill = send(
            &format!("{base}/sentry-to-vwo?environment={ENVIRONMENT}"),
            &fresh_alert(self.root, self.nonce + 1, &event)?,
            Sender::Sentry,
            "event_alert",
            &self.sentry_secret,
        )
        .await?;
        let body: Value = serde_json::from_str(&kill.body).unwrap_or(Value::Null);
        // Answered at once, or (its evidence slow to come) decided by the worker after the answer.
        let (outcome, reason) = match (kill.status, body["deferred"].is_object()) {
            (202, true) => decided_later(base, &id).await?.unwrap_or_default(),
            _ => ("ignored".to_owned(), text(&body["ignored"]).to_owned()),
        };
        let when = match kill.status {
            202 => " (decided after the answer)",
            _ => "",
        };
        say(&format!(
            "7. The same alert rule fires for an issue that began yesterday ({FLAG} on in its \
             events), after today's change of {FLAG} → nothing switched{when}: {reason}"
        ));
        let untouched = toggles_at_vwo(base).await?.len() == toggles_before;
        let answered = matches!(kill.status, 200 | 202) && outcome == "ignored";
        Ok(answered && reason.starts_with("no suspect") && untouched)
    }
}

/// The toggles VWO received after the first `before`; for a queued kill, waited for (up to
/// 30 s) until the local worker completes it.
async fn toggles_after(base: &str, before: usize, queued: bool) -> Result<Vec<Value>, Failure> {
    let mut toggles: Vec<Value> = toggles_at_vwo(base)
        .await?
        .into_iter()
        .skip(before)
        .collect();
    if queued {
        for _ in 0..60 {
            if !toggles.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            toggles = toggles_at_vwo(base)
                .await?
                .into_iter()
                .skip(before)
                .collect();
        }
    }
    Ok(toggles)
}

/// A flag change as Sentry shows it: `<flag><between><action> by <person>`, the person being
/// `who`'s `id`.
fn change_said(change: &Value, between: &str, who: &Value) -> String {
    let (flag, action) = (text(&change["flag"]), text(&change["action"]));
    format!("{flag}{between}{action} by {}", text(&who["id"]))
}

/// A member of an answer as text, `?` when it is missing or not a string.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}
