//! Decisions that wait on the queue (issue 37): an `@suspect` alert whose evidence is not there
//! within Sentry's second is answered 202 at once and decided by the worker — the alert that
//! arrives before its issue's `issue.created` (Sentry sends them in no fixed order), and Sentry's
//! API failing for a while (5xx, 429 with `X-Sentry-Rate-Limit-Reset`). Through the handler, moto's
//! DynamoDB and SQS, the worker, the Sentry stand-in (its API's answers scripted) and the VWO
//! stand-in; every assertion is what Sentry got back or what VWO received.

use std::time::{Duration, Instant};

use bridge_platform::clock::unix_secs;
use bridge_state::latest_change::ChangeKind;
use sentry_to_vwo::toggle::worker::Worker;
use sentry_to_vwo::App;
use serde_json::Value;
use testkit::sentry::FakeSentry;
use testkit::sentry_api::{ApiEvent, ApiIssue, ApiScript};
use testkit::sentry_hook_event;

use crate::durable::{self, Ctx};
use crate::suspect_evidence::{alert, issue_created, keep_changes, ISSUE};

/// A durable kill switch (state table, queue, worker) whose state table holds search-v2 switched
/// on four minutes before the issue began; with `token`, Sentry's API at the stand-in knows
/// the issue (37 events, search-v2 on in each); without, the operator opted in to the alert's
/// event (`SUSPECT_EVIDENCE=event`).
struct Waiting {
    ctx: Ctx,
    app: App,
    worker: Worker,
    sentry: FakeSentry,
    began: i64,
}

async fn waiting(name: &str, token: bool) -> Waiting {
    let sentry = FakeSentry::start("unused").await;
    let token_param = format!("/test/deferred/{name}/sentry-api-token");
    let api_url = sentry.api_url();
    let mut vars = vec![("SUSPECT_EVIDENCE", "event")];
    if token {
        let value = format!("sntrys_token_{name}");
        testkit::leaks::watch(&[&value]);
        crate::moto().put_secure_string(&token_param, &value).await;
        sentry.set_api_token(&value);
        vars = vec![
            ("SENTRY_API_TOKEN_PARAM", token_param.as_str()),
            ("SENTRY_API_URL", api_url.as_str()),
            ("SENTRY_ORG", testkit::sentry_api::ORG),
        ];
    }
    let ctx = durable::setup(name, &vars).await;
    ctx.vwo.add_flag("search-v2", true);
    let began = unix_secs() as i64 - 30;
    let changes = [("search-v2", 240, ChangeKind::SwitchedOn)];
    keep_changes(&format!("kill-{name}"), began, &changes).await;
    sentry.add_issue(ApiIssue {
        id: ISSUE.into(),
        first_seen: began,
        events: vec![ApiEvent::on("production", &["search-v2"]); 37],
    });
    let app = durable::kill_switch(&ctx).await;
    let worker = durable::worker(&ctx).await;
    Waiting {
        ctx,
        app,
        worker,
        sentry,
        began,
    }
}

impl Waiting {
    /// Sentry's delivery of `body` as `resource`, signed: the status and the answer.
    async fn deliver(&self, resource: &str, body: &[u8]) -> (u16, Value) {
        let event = sentry_hook_event(&self.ctx.secret, resource, body, "");
        let (status, answer, _) = durable::send(&self.app, event).await;
        (status, answer)
    }

    /// Fires the `@suspect` alert while Sentry's API answers its next read as `script`: the
    /// answer (202) says the decision waits, with its reason and first retry.
    async fn fire_while(&self, script: ApiScript) -> (String, u64) {
        self.sentry.script_api([script]);
        self.fire_deferred(&self.app).await
    }

    /// Fires the `@suspect` alert at `app`: the answer must be 202, the decision waiting; its
    /// reason and first retry.
    async fn fire_deferred(&self, app: &App) -> (String, u64) {
        let event = sentry_hook_event(&self.ctx.secret, "event_alert", &alert(&["search-v2"]), "");
        let (status, answer, _) = durable::send(app, event).await;
        assert_eq!(status, 202, "{answer}");
        deferred(&answer)
    }

    /// Runs the worker until VWO received a toggle or `limit` passed.
    async fn drain_until_toggled(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit && self.ctx.vwo.toggles().is_empty() {
            self.worker
                .drain_once(Duration::from_secs(1))
                .await
                .unwrap();
        }
    }

    /// The toggles VWO received: (flag, on).
    fn switched(&self) -> Vec<(String, bool)> {
        self.ctx
            .vwo
            .toggles()
            .iter()
            .map(|t| {
                (
                    t.raw_path.split('/').nth(8).unwrap_or_default().to_owned(),
                    t.body["isEnabled"] == Value::Bool(true),
                )
            })
            .collect()
    }
}

/// The answer's `deferred` part: its reason and first retry.
fn deferred(answer: &Value) -> (String, u64) {
    let deferred = &answer["deferred"];
    (
        deferred["reason"].as_str().unwrap_or_default().to_owned(),
        deferred["retryInSecs"].as_u64().unwrap_or(u64::MAX),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_before_its_issue_created_is_answered_at_once_and_decided_when_it_comes() {
    let w = waiting("before", false).await;
    let (reason, retry) = w.fire_deferred(&w.app).await;
    assert_eq!(
        reason,
        "waiting for issue 1170820242's issue.created to tell when it began (up to 2 min)"
    );
    assert_eq!(retry, 3);
    assert!(w.ctx.vwo.toggles().is_empty(), "nothing switched yet");
    // The same delivery again (a replay within its age) does not wait twice.
    let (status, again) = w.deliver("event_alert", &alert(&["search-v2"])).await;
    assert_eq!(status, 409, "a replay: {again}");
    // Sentry's issue.created comes after the alert.
    let (status, noted) = w.deliver("issue", &issue_created(w.began)).await;
    assert_eq!(status, 200, "{noted}");
    w.drain_until_toggled(Duration::from_secs(20)).await;
    assert_eq!(w.switched(), [("search-v2".to_owned(), false)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_sentry_api_is_retried_from_the_queue_and_the_kill_lands() {
    let w = waiting("api-502", true).await;
    let (reason, retry) = w.fire_while(ApiScript::Status(502)).await;
    assert!(reason.contains("502"), "{reason}");
    assert!(
        reason.ends_with("retried from the queue for up to 15 min"),
        "{reason}"
    );
    assert_eq!(retry, 5);
    assert!(w.ctx.vwo.toggles().is_empty(), "never a guess");
    w.drain_until_toggled(Duration::from_secs(25)).await;
    assert_eq!(w.switched(), [("search-v2".to_owned(), false)]);
    // The first attempt's three reads, and the worker's three.
    assert_eq!(w.sentry.api_reads().len(), 6, "{:?}", w.sentry.api_reads());
}

#[tokio::test(flavor = "multi_thread")]
async fn sentrys_429_is_waited_out_until_its_reset() {
    let w = waiting("api-429", true).await;
    let (reason, retry) = w.fire_while(ApiScript::RateLimited(4)).await;
    assert!(reason.starts_with("Sentry asked to wait"), "{reason}");
    assert!((3..=5).contains(&retry), "the reset's wait: {retry}");
    // Nothing reads Sentry's API before its reset.
    let reads = w.sentry.api_reads().len();
    w.worker.drain_once(Duration::ZERO).await.unwrap();
    assert_eq!(w.sentry.api_reads().len(), reads);
    w.drain_until_toggled(Duration::from_secs(20)).await;
    assert_eq!(w.switched(), [("search-v2".to_owned(), false)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_evidence_at_hand_the_alert_is_decided_at_once() {
    let w = waiting("at-once", true).await;
    let started = Instant::now();
    let (status, answer) = w.deliver("event_alert", &alert(&["search-v2"])).await;
    assert!(matches!(status, 200 | 202), "{answer}");
    assert!(
        answer["deferred"].is_null(),
        "{answer} after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_container_reads_no_vwo_before_the_answer() {
    let w = waiting("cold", true).await;
    // A container that has read nothing of VWO yet: no warm-up, and a state table where no
    // container has cached VWO's environments (change tracking's changes are there).
    let fresh = "kill-cold-fresh";
    crate::moto().create_table(fresh).await;
    keep_changes(
        fresh,
        w.began,
        &[("search-v2", 240, ChangeKind::SwitchedOn)],
    )
    .await;
    let mut vars = w.ctx.vars.clone();
    vars.insert("STATE_TABLE".into(), fresh.into());
    let config = sentry_to_vwo::config::Config::from_vars(&testkit::vars_from(&vars)).unwrap();
    let aws = bridge_platform::aws::aws_config().await;
    let cold = App::new(config, testkit::ssm(&aws), &aws).unwrap();
    let reads_before = w.ctx.vwo.api_paths().len();
    let (reason, retry) = w.fire_deferred(&cold).await;
    assert_eq!(
        reason,
        "reading VWO's environment production after the answer"
    );
    assert_eq!(retry, 0);
    assert_eq!(
        w.ctx.vwo.api_paths().len(),
        reads_before,
        "no VWO read before the answer: {:?}",
        w.ctx.vwo.api_paths()
    );
    w.drain_until_toggled(Duration::from_secs(20)).await;
    assert_eq!(w.switched(), [("search-v2".to_owned(), false)]);
}
