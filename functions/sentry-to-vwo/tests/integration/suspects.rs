//! `feature=@suspect`: an issue alert's rule names no flag, and the kill switch switches off the
//! flag change that started the issue — the flags on the alert's event (`contexts.flags.values`,
//! as Sentry's SDKs record them and `Event.as_dict()` passes them on) whose latest change, as
//! change tracking kept it, came shortly before the event. Payloads: the `event_alert` sample
//! (`events/sentry/event_alert.triggered.json`, shaped by Sentry's `_webhook_event_data`) with
//! the event's `contexts` and `datetime` set. The issue (`1170820242`, the sample's) began at the
//! event's time, as its `issue.created` said; the evidence is the alert's event alone
//! (`SUSPECT_EVIDENCE=event`): what the issue's events say is tested in `suspect_evidence`.

use std::time::Instant;
use testkit::answers::assert_says;

use bridge_platform::clock::unix_secs;
use bridge_state::issue_start::IssueStarts;
use bridge_state::latest_change::{ChangeKind, LatestChange, LatestChanges};
use serde_json::{json, Value};
use testkit::sample;
use testkit::vwo::FakeRule;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::handler::{fire_event_alert, send_alert, setup, Ctx};

/// The issue of the `event_alert` sample's event (`issue_id`).
pub(crate) const ISSUE: &str = "1170820242";

/// A kill switch with a state table holding `changes` (flag, environment id, seconds before
/// the event, kind).
async fn with_changes(
    name: &str,
    extra: &[(&str, &str)],
    changes: &[(&str, &str, i64, ChangeKind)],
) -> (Ctx, i64) {
    let kept = |event_at: i64| {
        let change = |(flag, env, before, kind): &(&str, &str, i64, ChangeKind)| LatestChange {
            environment_id: (*env).into(),
            flag: (*flag).into(),
            at: event_at - before,
            kind: *kind,
            by: "ana@example.com".into(),
            rule: None,
            earlier: Vec::new(),
        };
        changes.iter().map(change).collect()
    };
    with_latest(name, extra, kept).await
}

/// A kill switch with a state table holding the changes `kept` makes of the event's time (five
/// seconds ago); that time.
async fn with_latest(
    name: &str,
    extra: &[(&str, &str)],
    kept: impl FnOnce(i64) -> Vec<LatestChange>,
) -> (Ctx, i64) {
    let table = format!("suspect-{name}");
    crate::moto().create_table(&table).await;
    let mut vars = vec![
        ("STATE_TABLE", table.as_str()),
        ("SUSPECT_EVIDENCE", "event"),
    ];
    vars.extend_from_slice(extra);
    let ctx = setup(name, &vars).await;
    let event_at = unix_secs() as i64 - 5;
    let aws = bridge_platform::aws::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let store = LatestChanges::new(dynamodb.clone(), table.clone());
    store.put_all(&kept(event_at), unix_secs()).await.unwrap();
    let starts = IssueStarts::new(dynamodb, table);
    starts.put(ISSUE, event_at, unix_secs()).await.unwrap();
    (ctx, event_at)
}

/// An issue alert for `@suspect` in production whose event carries `flags` (flag, result) at
/// `event_at`; `None`: the event has no flags context.
fn alert(flags: Option<&[(&str, bool)]>, event_at: i64) -> Vec<u8> {
    alert_in("production", flags, event_at)
}

/// As [`alert`], for the rule's `environment`.
fn alert_in(environment: &str, flags: Option<&[(&str, bool)]>, event_at: i64) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&sample("sentry/event_alert.triggered.json")).unwrap();
    body["data"]["issue_alert"]["settings"] = json!([
        {"name": "feature", "value": "@suspect"}, {"name": "environment", "value": environment}]);
    let datetime = OffsetDateTime::from_unix_timestamp(event_at)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    body["data"]["event"]["datetime"] = json!(datetime);
    if let Some(flags) = flags {
        let values: Vec<Value> = flags
            .iter()
            .map(|(flag, result)| json!({"flag": flag, "result": result}))
            .collect();
        body["data"]["event"]["contexts"] =
            json!({"flags": {"values": values}, "os": {"name": "Linux"}});
    }
    serde_json::to_vec(&body).unwrap()
}

/// A flag on the event and its result.
type Flag<'a> = (&'a str, bool);

async fn fire(ctx: &Ctx, body: &[u8]) -> (u16, Value, String) {
    fire_event_alert(ctx, body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_one_flag_changed_shortly_before_the_event_is_switched_off() {
    let changes = [
        ("search-v2", "1", 240, ChangeKind::SwitchedOn),
        // Staging's change of the same flag, and an older change: no suspects.
        ("checkout-new-flow", "2", 60, ChangeKind::SwitchedOn),
    ];
    let (ctx, at) = with_changes("one", &[], &changes).await;
    let flags = [
        ("search-v2", true),
        ("checkout-new-flow", true),
        ("legacy", false),
    ];
    let (status, body, _) = fire(&ctx, &alert(Some(&flags), at)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], "search-v2", "{body}");
    assert_eq!(body["toggled"]["isEnabled"], false);
    ctx.vwo.assert_off("search-v2", "production");
    ctx.vwo.assert_on("checkout-new-flow", "production");
    assert_eq!(ctx.vwo.toggles().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspect_change_of_one_rule_pauses_that_rule_and_leaves_the_flag_on() {
    // Change tracking saw the change touch one rule of checkout-new-flow: eu-50's traffic.
    let eu = |event_at: i64| {
        vec![LatestChange {
            environment_id: "1".into(),
            flag: "checkout-new-flow".into(),
            at: event_at - 660,
            kind: ChangeKind::Changed,
            by: "ana@example.com".into(),
            rule: Some("eu-50".into()),
            earlier: Vec::new(),
        }]
    };
    let (ctx, at) = with_latest("one-rule", &[], eu).await;
    let rules = vec![
        FakeRule::rollout("rolloutRule1"),
        FakeRule::testing("eu-50", 50, ["Control", "Variation"]),
    ];
    ctx.vwo.set_rules("checkout-new-flow", "production", rules);
    let flags = [("checkout-new-flow", true), ("search-v2", true)];
    let (status, body, _) = fire(&ctx, &alert(Some(&flags), at)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], "checkout-new-flow", "{body}");
    assert_eq!(body["toggled"]["rule"], "eu-50", "{body}");
    let toggles = ctx.vwo.toggles();
    assert_eq!(toggles.len(), 1);
    assert_eq!(
        toggles[0].raw_path,
        "/api/v2/accounts/current/environments/production/features/checkout-new-flow/rules/eu-50/toggle"
    );
    assert_eq!(toggles[0].body, json!({"isEnabled": false}));
    ctx.vwo.assert_on("checkout-new-flow", "production");
    let paused = ctx.vwo.rules("checkout-new-flow", "production");
    assert_eq!(
        paused
            .iter()
            .map(|r| (r.key.as_str(), r.enabled))
            .collect::<Vec<_>>(),
        [("rolloutRule1", true), ("eu-50", false)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn several_suspects_are_named_and_none_is_switched() {
    let changes = [
        ("search-v2", "1", 240, ChangeKind::SwitchedOn),
        ("checkout-new-flow", "1", 660, ChangeKind::Changed),
    ];
    let (ctx, at) = with_changes("several", &[], &changes).await;
    let flags = [("search-v2", true), ("checkout-new-flow", true)];
    let (status, body, hook_error) = fire(&ctx, &alert(Some(&flags), at)).await;
    assert_eq!(status, 200, "{body}");
    let reason = body["ignored"].as_str().unwrap_or_default();
    assert!(reason.starts_with("2 suspects: search-v2 (switched on by ana@example.com 4 min before issue 1170820242 began (first seen "), "{reason}");
    assert!(reason.contains("; on in the alert's event (SUSPECT_EVIDENCE=event)), checkout-new-flow (changed by ana@example.com 11 min before issue 1170820242 began"), "{reason}");
    assert!(reason.ends_with("; not guessing"), "{reason}");
    // Sentry's request log shows the reason's beginning (the header is bounded).
    let (head, shown) = (
        "ignored: 2 suspects: search-v2 (switched on",
        format!("ignored: {reason}"),
    );
    assert!(
        hook_error.starts_with(head) && shown.starts_with(&hook_error),
        "{hook_error}"
    );
    assert!(ctx.vwo.toggles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_suspect_says_which_case_it_is() {
    let changes = [
        ("search-v2", "1", 4000, ChangeKind::SwitchedOn),
        ("checkout-new-flow", "1", 120, ChangeKind::SwitchedOff),
    ];
    let (ctx, at) = with_changes("none", &[], &changes).await;
    let cases: [(Option<&[Flag]>, &str); 3] = [
        (None, "no suspect: the event carries no flags — the application records none"),
        (Some(&[("search-v2", false)]), "no suspect: none of the 1 flags on the event was on"),
        (
            Some(&[("search-v2", true), ("checkout-new-flow", true)]),
            "no suspect: none of the 2 flags on the event that were on changed in production in the 60 min before issue 1170820242 began (first seen ",
        ),
    ];
    for (flags, reason) in cases {
        let (status, body, _) = fire(&ctx, &alert(flags, at)).await;
        assert_eq!(status, 200, "{body}");
        let ignored = body["ignored"].as_str().unwrap_or_default();
        assert!(ignored.starts_with(reason), "{ignored}");
    }
    // A metric alert (its rule's action set to @suspect) carries no event.
    let mut metric: Value =
        serde_json::from_slice(&sample("sentry/metric_alert.critical.json")).unwrap();
    metric["data"]["metric_alert"]["alert_rule"]["triggers"][0]["actions"][0]["settings"][0]
        ["value"] = json!("@suspect");
    let metric = serde_json::to_vec(&metric).unwrap();
    let (_, body, _) = send_alert(&ctx, "metric_alert", &metric, "").await;
    assert_eq!(
        body["ignored"],
        "no suspect: a metric_alert alert carries no event (feature=@suspect needs an issue alert)"
    );
    assert!(ctx.vwo.toggles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn killable_flags_filters_the_candidates_before_they_are_counted() {
    let changes = [
        ("search-v2", "1", 240, ChangeKind::SwitchedOn),
        ("checkout-new-flow", "1", 300, ChangeKind::SwitchedOn),
    ];
    let (ctx, at) = with_changes(
        "killable",
        &[("KILLABLE_FLAGS", "production:checkout-*")],
        &changes,
    )
    .await;
    let flags = [("search-v2", true), ("checkout-new-flow", true)];
    let (_, body, _) = fire(&ctx, &alert(Some(&flags), at)).await;
    assert_eq!(body["toggled"]["feature"], "checkout-new-flow", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_flags_on_the_event_are_read_at_once() {
    let changes = [("flag-0042", "1", 120, ChangeKind::Created)];
    let (ctx, at) = with_changes("hundred", &[], &changes).await;
    ctx.vwo.add_many_flags(100);
    let names: Vec<String> = (0..100).map(|i| format!("flag-{i:04}")).collect();
    let flags: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), true)).collect();
    let started = Instant::now();
    let (status, body, _) = fire(&ctx, &alert(Some(&flags), at)).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], "flag-0042", "{body}");
    // Sentry waits 1 s; a shared moto under the whole suite is slower than DynamoDB, hence the
    // margin (the lifecycle bench measures the answer).
    eprintln!("a hundred flags on the event: answered in {took:?}");
    assert!(took.as_secs_f64() < 3.0, "answered in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_for_the_suspect_is_saved_with_what_it_will_do() {
    let (ctx, _) = with_changes("save", &[("KILLABLE_FLAGS", "production:checkout-*")], &[]).await;
    let fields = |environment: &str| json!([{"name": "feature", "value": "@suspect"}, {"name": "environment", "value": environment}]);
    let (status, body, _) = crate::handler::send(
        &ctx,
        testkit::rule_action_event(&ctx.secret, fields("production")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("When this issue alert fires, the kill switch switches off the issue's suspect in production"),
        "{message}"
    );
    assert!(
        message.contains("A metric alert carries no event"),
        "{message}"
    );
    // It says what the rule rests on: here an issue.created was received, and the opt-in.
    assert!(
        message.ends_with("Evidence: the issue's start from its issue.created webhook, and the alert's event alone (SUSPECT_EVIDENCE=event)."),
        "{message}"
    );
    let (status, body, _) = crate::handler::send(
        &ctx,
        testkit::rule_action_event(&ctx.secret, fields("prodution")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_says(&body["message"], "\"prodution\"");
    assert!(ctx.vwo.toggles().is_empty());
}

/// Several VWO environments in one Sentry organisation: each names its flags with its own prefix
/// in Sentry (change tracking's and evaluation tracking's `flagPrefix`), and the kill switch,
/// given the same prefix, reads only that environment's flags off the event.
#[tokio::test(flavor = "multi_thread")]
async fn with_a_flag_prefix_only_that_environments_flags_are_suspects() {
    let changes = [
        ("search-v2", "2", 240, ChangeKind::SwitchedOn),
        ("checkout-new-flow", "2", 300, ChangeKind::SwitchedOn),
    ];
    let (ctx, at) = with_changes("prefix", &[], &changes).await;
    ctx.vwo.set_enabled("search-v2", "staging", true);
    // Production's flag of the same key on the event is not staging's.
    let flags = [("staging:search-v2", true), ("checkout-new-flow", true)];
    let body = alert_in("staging", Some(&flags), at);
    let (status, answer, _) = send_alert(&ctx, "event_alert", &body, "flagPrefix=staging%3A").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["toggled"]["feature"], "search-v2", "{answer}");
    assert_eq!(answer["toggled"]["environment"], "staging", "{answer}");
    ctx.vwo.assert_off("search-v2", "staging");
}

/// `SUSPECTS=all` (or `suspects=all` in the URL): each suspect is switched, at most three, most
/// recent change first; the answer has each one's.
#[tokio::test(flavor = "multi_thread")]
async fn with_suspects_all_each_suspect_is_switched_at_most_three() {
    let changes = [
        ("flag-0001", "1", 60, ChangeKind::SwitchedOn),
        ("flag-0002", "1", 120, ChangeKind::Changed),
        ("flag-0003", "1", 180, ChangeKind::Created),
        ("flag-0004", "1", 240, ChangeKind::SwitchedOn),
    ];
    let (ctx, at) = with_changes("all", &[], &changes).await;
    ctx.vwo.add_many_flags(5);
    let flags: Vec<Flag> = ["flag-0001", "flag-0002", "flag-0003", "flag-0004"]
        .iter()
        .map(|f| (*f, true))
        .collect();
    let body = alert(Some(&flags), at);
    let (status, answer, _) = send_alert(&ctx, "event_alert", &body, "suspects=all").await;
    assert_eq!(status, 200, "{answer}");
    let switched: Vec<&str> = answer["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["toggled"]["feature"].as_str().unwrap())
        .collect();
    assert_eq!(
        switched,
        ["flag-0001", "flag-0002", "flag-0003"],
        "{answer}"
    );
    for flag in ["flag-0001", "flag-0002", "flag-0003"] {
        ctx.vwo.assert_off(flag, "production");
    }
    ctx.vwo.assert_on("flag-0004", "production");
    assert_eq!(ctx.vwo.toggles().len(), 3);
    // The same delivery again is a replay: nothing more is switched.
    send_alert(&ctx, "event_alert", &body, "suspects=all").await;
    assert_eq!(ctx.vwo.toggles().len(), 3);
}

/// Sentry's "Send Test Notification" for a @suspect rule: its sample event has no flags, so the
/// answer says what a real alert would do with it — nothing, and why — and nothing is switched.
#[tokio::test(flavor = "multi_thread")]
async fn a_test_notification_for_the_suspect_says_no_suspect() {
    let (ctx, _) = with_changes("test-notification", &[], &[]).await;
    let mut body: Value =
        serde_json::from_slice(&sample("sentry/event_alert.test_notification.json")).unwrap();
    body["data"]["issue_alert"]["settings"] = json!([
        {"name": "feature", "value": "@suspect"}, {"name": "environment", "value": "production"}]);
    let body = serde_json::to_vec(&body).unwrap();
    let (status, answer, _) = send_alert(&ctx, "event_alert", &body, "").await;
    assert_eq!(status, 200, "{answer}");
    assert_says(
        &answer["tested"]["message"],
        "no suspect: the event carries no flags",
    );
    assert!(ctx.vwo.toggles().is_empty());
    assert!(
        ctx.vwo.api_requests().is_empty(),
        "a test calls VWO for nothing"
    );
}
