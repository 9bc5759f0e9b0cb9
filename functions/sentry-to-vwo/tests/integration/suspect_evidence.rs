//! `@suspect` judged against the issue, never one event's clock (issue 37): when the issue began
//! (its `issue.created`, signed as every delivery, or Sentry's API with the integration's token)
//! and what its events say (Sentry's API: its first event, its latest events in the alert's
//! environment, its event count). Payloads: Sentry's `issue.created` sample (`_webhook_issue_data`)
//! and `event_alert` sample; the API's answers from the Sentry stand-in, in the shapes of
//! Sentry's public schema (`testkit::sentry_api`).

use bridge_platform::clock::unix_secs;
use bridge_state::issue_start::IssueStarts;
use bridge_state::latest_change::{ChangeKind, LatestChange, LatestChanges};
use serde_json::{json, Value};
use testkit::answers::suspect_change;
use testkit::sample;
use testkit::sentry::FakeSentry;
use testkit::sentry_api::{ApiEvent, ApiIssue, ApiScript};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::handler::{fire_event_alert, send_alert, setup, Ctx};

pub(crate) const ISSUE: &str = "1170820242";

/// A kill switch whose state table holds `changes` (flag, seconds before `began`, kind) in
/// production (environment id 1), and, with `token`, Sentry's API at the stand-in.
struct Story {
    ctx: Ctx,
    sentry: FakeSentry,
    table: String,
    began: i64,
}

async fn story(
    name: &str,
    extra: &[(&str, &str)],
    token: bool,
    changes: &[(&str, i64, ChangeKind)],
) -> Story {
    let table = format!("evidence-{name}");
    crate::moto().create_table(&table).await;
    let sentry = FakeSentry::start("unused").await;
    let token_param = format!("/test/kill/{name}/sentry-api-token");
    let api_url = sentry.api_url();
    let mut vars = vec![("STATE_TABLE", table.as_str())];
    if token {
        let value = format!("sntrys_token_{name}");
        testkit::leaks::watch(&[&value]);
        crate::moto().put_secure_string(&token_param, &value).await;
        sentry.set_api_token(&value);
        vars.extend([
            ("SENTRY_API_TOKEN_PARAM", token_param.as_str()),
            ("SENTRY_API_URL", api_url.as_str()),
            ("SENTRY_ORG", testkit::sentry_api::ORG),
        ]);
    }
    vars.extend_from_slice(extra);
    let ctx = setup(name, &vars).await;
    let began = unix_secs() as i64 - 30;
    keep_changes(&table, began, changes).await;
    Story {
        ctx,
        sentry,
        table,
        began,
    }
}

/// Keeps `changes` (flag, seconds before `began`, kind) in production (environment id 1) in
/// `table`, as change tracking does.
pub(crate) async fn keep_changes(table: &str, began: i64, changes: &[(&str, i64, ChangeKind)]) {
    let kept: Vec<LatestChange> = changes
        .iter()
        .map(|(flag, before, kind)| LatestChange {
            environment_id: "1".into(),
            flag: (*flag).into(),
            at: began - before,
            kind: *kind,
            by: "ana@example.com".into(),
            rule: None,
            earlier: Vec::new(),
        })
        .collect();
    let aws = bridge_platform::aws::aws_config().await;
    let store = LatestChanges::new(aws_sdk_dynamodb::Client::new(&aws), table.to_owned());
    store.put_all(&kept, unix_secs()).await.unwrap();
}

/// A kill switch with a Sentry token, and search-v2 switched on four minutes before the issue
/// began.
async fn with_token(name: &str) -> Story {
    story(
        name,
        &[],
        true,
        &[("search-v2", 240, ChangeKind::SwitchedOn)],
    )
    .await
}

/// A kill switch without a token whose operator opted in to the alert's event as the evidence
/// (`SUSPECT_EVIDENCE=event`).
async fn opted_in(name: &str, changes: &[(&str, i64, ChangeKind)]) -> Story {
    story(name, &[("SUSPECT_EVIDENCE", "event")], false, changes).await
}

impl Story {
    /// Keeps the issue's start as its `issue.created` would have.
    async fn began_at(&self, at: i64) {
        let aws = bridge_platform::aws::aws_config().await;
        let starts = IssueStarts::new(aws_sdk_dynamodb::Client::new(&aws), self.table.clone());
        starts.put(ISSUE, at, unix_secs()).await.unwrap();
    }

    /// Sentry's API knows the issue: it began at `began`, with `events` (oldest first).
    fn issue(&self, events: Vec<ApiEvent>) {
        self.sentry.add_issue(ApiIssue {
            id: ISSUE.into(),
            first_seen: self.began,
            events,
        });
    }
}

/// The issue alert of a `@suspect` rule in production whose event (now) carries `flags` on.
pub(crate) fn alert(flags: &[&str]) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&sample("sentry/event_alert.triggered.json")).unwrap();
    body["data"]["issue_alert"]["settings"] = json!([
        {"name": "feature", "value": "@suspect"}, {"name": "environment", "value": "production"}]);
    body["data"]["event"]["datetime"] = json!(iso(unix_secs() as i64));
    let values: Vec<Value> = flags
        .iter()
        .map(|f| json!({"flag": f, "result": true}))
        .collect();
    body["data"]["event"]["contexts"] = json!({"flags": {"values": values}});
    serde_json::to_vec(&body).unwrap()
}

fn iso(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

/// Sentry's `issue.created` for the sample's issue, begun at `at`.
pub(crate) fn issue_created(at: i64) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&sample("sentry/issue.created.json")).unwrap();
    body["data"]["issue"]["firstSeen"] = json!(iso(at));
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_created_is_kept_quietly_and_the_alert_after_it_switches_the_cause() {
    let s = opted_in("webhook", &[("search-v2", 240, ChangeKind::SwitchedOn)]).await;
    let (status, body, response) = send_alert(&s.ctx, "issue", &issue_created(s.began), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["noted"]
            .as_str()
            .unwrap()
            .starts_with("issue 1170820242 began at "),
        "{body}"
    );
    assert!(response.headers().get("sentry-hook-error").is_none());
    // Its other actions, which the same subscription brings, are answered 2xx too.
    let mut resolved: Value = serde_json::from_slice(&issue_created(s.began)).unwrap();
    resolved["action"] = json!("resolved");
    let (status, body, _) =
        send_alert(&s.ctx, "issue", &serde_json::to_vec(&resolved).unwrap(), "").await;
    assert_eq!(
        (status, &body["noted"]),
        (200, &json!("issue.resolved: nothing to switch"))
    );
    let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], "search-v2", "{body}");
    s.ctx.vwo.assert_off("search-v2", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issue_that_began_yesterday_is_not_blamed_on_todays_change() {
    let s = opted_in("yesterday", &[("new-header", 600, ChangeKind::SwitchedOn)]).await;
    // The change came ten minutes ago; the issue began a day before.
    s.began_at(s.began - 600 - 86_400).await;
    let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["new-header"])).await;
    assert_eq!(status, 200, "{body}");
    let ignored = body["ignored"].as_str().unwrap_or_default();
    assert!(ignored.starts_with("no suspect: none of the 1 flags on the event that were on changed in production in the 60 min before issue 1170820242 began"), "{ignored}");
    assert!(s.ctx.vwo.toggles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_more_than_a_minute_after_the_issue_began_is_no_suspect() {
    let s = opted_in(
        "late",
        &[
            ("late", -61, ChangeKind::SwitchedOn),
            ("checkout-new-flow", -30, ChangeKind::SwitchedOn),
        ],
    )
    .await;
    s.began_at(s.began).await;
    let (_, body, _) = fire_event_alert(&s.ctx, &alert(&["late"])).await;
    assert!(
        body["ignored"]
            .as_str()
            .unwrap_or_default()
            .starts_with("no suspect"),
        "{body}"
    );
    let (_, body, _) = fire_event_alert(&s.ctx, &alert(&["checkout-new-flow"])).await;
    assert_eq!(body["toggled"]["feature"], "checkout-new-flow", "{body}");
    assert!(
        suspect_change(&body).contains("30 s after issue 1170820242 began"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn neither_a_start_nor_a_token_switches_nothing_and_says_what_to_set_up() {
    let s = story(
        "neither",
        &[],
        false,
        &[("search-v2", 240, ChangeKind::SwitchedOn)],
    )
    .await;
    let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ignored"],
        "cannot tell when issue 1170820242 began: subscribe the integration to issue webhooks, or give the kill switch a Sentry token (SENTRY_API_TOKEN_PARAM)"
    );
    // A start but no token: the alert's event alone is not evidence unless the operator opts in.
    s.began_at(s.began).await;
    let (_, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
    let ignored = body["ignored"].as_str().unwrap_or_default();
    assert!(ignored.contains("the issue's events are read with a Sentry token (SENTRY_API_TOKEN_PARAM); to act on the alert's event alone, set SUSPECT_EVIDENCE=event"), "{ignored}");
    assert!(s.ctx.vwo.toggles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_the_issues_events_back_the_suspect_and_the_answer_says_so() {
    let s = with_token("token").await;
    s.issue(vec![ApiEvent::on("production", &["search-v2"]); 37]);
    let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], "search-v2", "{body}");
    let suspect = suspect_change(&body);
    assert!(
        suspect.starts_with(
            "switched on by ana@example.com 4 min before issue 1170820242 began (first seen "
        ),
        "{body}"
    );
    assert!(
        suspect.ends_with("; on in 37 of 37 of its latest events in production"),
        "{body}"
    );
    // Three reads: the issue, its oldest event, its latest events in production.
    let reads = s.sentry.api_reads();
    assert_eq!(reads.len(), 3, "{reads:?}");
    // Made at once, in any order.
    let issue = "/api/0/organizations/acme/issues/1170820242/";
    for read in [
        format!("{issue}?"),
        format!("{issue}events/oldest/?"),
        format!("{issue}events/?full=true&per_page=100&environment=production"),
    ] {
        assert!(reads.contains(&read), "{read} in {reads:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_forged_event_is_not_enough() {
    let s = with_token("forged").await;
    // The issue's real events never carried the flag; the alert's event (forged) does.
    let mut events = vec![ApiEvent::on("production", &[]); 20];
    events.push(ApiEvent::on("production", &["search-v2"]));
    s.issue(events);
    let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ignored"],
        "no suspect: the issue's events do not back it — search-v2: off in the issue's first event"
    );
    assert!(s.ctx.vwo.toggles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_a_reason_and_a_failing_api_switches_nothing() {
    let s = with_token("refused").await;
    s.issue(vec![ApiEvent::on("production", &["search-v2"]); 3]);
    s.sentry.set_api_token("another-token");
    let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ignored"],
        "no suspect: Sentry refused the API token (SENTRY_API_TOKEN_PARAM): revoked or mistyped"
    );
    // Without the queue, 5xx and 429 fail the alert: nothing is switched on a guess (with it,
    // the decision waits: `deferred`).
    for script in [ApiScript::Status(502), ApiScript::RateLimited(7)] {
        let s = story(
            &format!("failing-{}", matches!(script, ApiScript::Status(_))),
            &[],
            true,
            &[("search-v2", 240, ChangeKind::SwitchedOn)],
        )
        .await;
        s.issue(vec![ApiEvent::on("production", &["search-v2"]); 3]);
        s.sentry.script_api([script]);
        let (status, body, _) = fire_event_alert(&s.ctx, &alert(&["search-v2"])).await;
        assert!(matches!(status, 502 | 503), "{status} {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("Sentry"),
            "{body}"
        );
        assert!(s.ctx.vwo.toggles().is_empty());
    }
}
