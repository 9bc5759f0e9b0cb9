//! Every flag of the workspace on the flag drop-down (issue 38): a flag that was never on in an
//! environment is absent from its settings file (the VWO stand-in leaves off flags out, as VWO
//! does), so the drop-down offers it, marked off, from the workspace's flag list, which the
//! worker reads in the background (`GET /api/v2/accounts/{a}/features?limit=25&offset=`, paged)
//! within its share of the token, kills first. No change tracking runs in these tests: the kill
//! switch alone is a supported set-up. Through the handler, moto's DynamoDB and SQS, the worker and
//! the VWO stand-in; every assertion is what Sentry got back or what VWO received.

use std::time::{Duration, Instant};

use sentry_to_vwo::toggle::worker::Worker;
use sentry_to_vwo::App;
use serde_json::{json, Value};
use testkit::options_event;

use crate::durable::{self, critical_for, kill_switch, send, setup, Ctx, SYNCHRONOUS};

/// A durable kill switch (no change tracking) whose workspace has `payments-v2`, created off
/// everywhere and never on, beside `off` more flags never on; the list's share is `share` pages
/// an hour.
async fn workspace(name: &str, off: usize, extra: &[(&str, &str)]) -> (Ctx, App, Worker) {
    let ctx = setup(name, extra).await;
    ctx.vwo.add_flag("payments-v2", false);
    for i in 0..off {
        ctx.vwo.add_flag(&format!("flag-{i:03}"), false);
    }
    let app = kill_switch(&ctx).await;
    let worker = durable::worker(&ctx).await;
    (ctx, app, worker)
}

/// The flag drop-down for production, searched by `query`: Sentry's `(label, value)`s.
async fn flag_choices(ctx: &Ctx, app: &App, query: &str) -> Vec<(String, String)> {
    let data = json!({"environment": "1"}).to_string();
    let params = [("dependentData", data.as_str()), ("query", query)];
    let event = options_event(Some(&ctx.secret), "/options/flags", &params);
    let (status, body, _) = send(app, event).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| (text(&c["label"]), text(&c["value"])))
        .collect()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The workspace list's reads VWO received: each page's offset.
fn list_reads(ctx: &Ctx) -> Vec<String> {
    ctx.vwo
        .api_requests()
        .iter()
        .filter(|r| r.raw_path.ends_with("/features"))
        .map(|r| {
            assert_eq!(r.query_param("limit").as_deref(), Some("25"), "25 a page");
            r.query_param("offset").unwrap_or_default()
        })
        .collect()
}

/// Runs the worker until the queue holds nothing visible or `limit` passes.
async fn drain(worker: &Worker, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if worker.drain_once(Duration::from_secs(1)).await.unwrap() == 0 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flag_never_on_is_offered_marked_off_without_change_tracking() {
    let (ctx, app, worker) = workspace("list-never-on", 0, &[]).await;
    // The first ask answers at once with what is known, and starts the list's refresh.
    let first = flag_choices(&ctx, &app, "payments").await;
    assert!(!first.iter().any(|(_, v)| v == "payments-v2"), "{first:?}");
    assert!(
        list_reads(&ctx).is_empty(),
        "the drop-down never reads the list"
    );
    drain(&worker, Duration::from_secs(10)).await;
    // The list's two pages: every flag (two), then the empty page that ends it.
    assert_eq!(list_reads(&ctx), ["0", "2"]);
    let offered = flag_choices(&ctx, &app, "payments").await;
    assert_eq!(
        offered,
        [(
            "payments-v2 — off in production".to_owned(),
            "payments-v2".to_owned()
        )]
    );
    // Flags in the settings file are offered once, as they are.
    let all = flag_choices(&ctx, &app, "").await;
    let checkout: Vec<_> = all
        .iter()
        .filter(|(_, v)| v == "checkout-new-flow")
        .collect();
    assert_eq!(checkout.len(), 1, "{all:?}");
    assert!(!checkout[0].0.contains("off in"), "{all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_list_is_fresh_the_token_is_untouched() {
    let (ctx, app, worker) = workspace("list-fresh", 0, &[]).await;
    flag_choices(&ctx, &app, "").await;
    drain(&worker, Duration::from_secs(10)).await;
    let reads = list_reads(&ctx).len();
    for _ in 0..3 {
        let offered = flag_choices(&ctx, &app, "payments").await;
        assert_eq!(offered.len(), 1, "{offered:?}");
    }
    // The next pass waits for the list to age (10 minutes): nothing is due now.
    assert_eq!(worker.drain_once(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(
        list_reads(&ctx).len(),
        reads,
        "no token request while fresh"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_list_is_read_in_steps_within_its_share_and_a_kill_goes_first() {
    // 300 flags never on, two more, and VWO's pace for real (1 request/s per token): 14 pages.
    let pace = [
        ("VWO_MIN_INTERVAL_MS", "1000"),
        ("FAST_PATH_MS", SYNCHRONOUS),
        ("FLAG_LIST_PAGES_PER_HOUR", "3600"),
    ];
    let (ctx, app, worker) = workspace("list-long", 300, &pace).await;
    flag_choices(&ctx, &app, "flag-299").await;
    // The worker reads the first step's ten pages (about 10 s); a kill fires meanwhile.
    let reading = async {
        worker.drain_once(Duration::from_secs(1)).await.unwrap();
    };
    let kill = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        let event = testkit::sentry_hook_event(
            &ctx.secret,
            "metric_alert",
            &critical_for("checkout-new-flow"),
            "",
        );
        let (status, body, _) = send(&app, event).await;
        (status, body, started.elapsed())
    };
    let ((), (status, body, took)) = tokio::join!(reading, kill);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], "checkout-new-flow", "{body}");
    assert!(
        took < Duration::from_millis(2500),
        "the kill took the next slot: {took:?}"
    );
    // The step gave the kill its slot and stopped (at most ten pages a step); the next resumes.
    let first_step = list_reads(&ctx).len();
    assert!((1..10).contains(&first_step), "{first_step} pages");
    // Steps are spaced (10 s: ten pages of 3,600 an hour, and after a kill) until the list ends.
    let started = Instant::now();
    while list_reads(&ctx).len() < 14 && started.elapsed() < Duration::from_secs(60) {
        worker.drain_once(Duration::from_secs(1)).await.unwrap();
    }
    // 302 flags: twelve full pages, one of two, and the empty page that ends the list.
    let offsets: Vec<u32> = list_reads(&ctx)
        .iter()
        .map(|o| o.parse().unwrap())
        .collect();
    let mut expected: Vec<u32> = (0..13).map(|page| page * 25).collect();
    expected.push(302);
    assert_eq!(offsets, expected, "resumed where each step stopped");
    let offered = flag_choices(&ctx, &app, "flag-299").await;
    assert_eq!(
        offered,
        [(
            "flag-299 — off in production".to_owned(),
            "flag-299".to_owned()
        )]
    );
}
