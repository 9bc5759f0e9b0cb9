//! VWO's waits are the token's (docs/protocols.md §3: 1 request/s per token; after a 429 or a
//! 503 wait at least 60 s): once VWO asks one caller to wait, no caller of that token — another
//! flag, another container, the worker, a re-delivered job — calls VWO before the wait is over,
//! and every answer and log says which wait it was.

use std::time::Duration;
use testkit::answers::assert_opens;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use sentry_to_vwo::toggle::job::ToggleJob;
use sentry_to_vwo::toggle::kill_state::KillState;
use sentry_to_vwo::toggle::queue::ToggleQueue;
use testkit::vwo::Script;
use testkit::{now_secs, sentry_hook_event};

use crate::durable::{critical, critical_for, kill_switch, send, setup, worker, Ctx, FLAG_QUERY};
use crate::moto;

fn job(feature: &str, not_before_ms: Option<u64>) -> ToggleJob {
    let target = bridge_vwo::api::FlagTarget::flag("current", "production", feature);
    ToggleJob {
        generation: 1,
        rule: Some("Checkout errors".into()),
        not_before_ms,
        ..ToggleJob::new(target, false, false, now_secs())
    }
}

/// Puts `job` on the queue as the kill switch would have: its decision counted first (the
/// worker applies only a flag's latest decision).
async fn accepted(ctx: &Ctx, job: &ToggleJob) {
    let aws = bridge_platform::aws::aws_config().await;
    let state = KillState::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &ctx.vars["STATE_TABLE"],
    );
    assert_eq!(
        state.next_generation(&job.flag_key()).await.unwrap(),
        job.generation
    );
    ToggleQueue::new(aws_sdk_sqs::Client::new(&aws), &ctx.queue_url)
        .send(job, Duration::ZERO)
        .await
        .unwrap();
}

/// The job as SQS delivers it again (after its delay or visibility ended).
fn redelivery(job: &ToggleJob) -> SqsEvent {
    let mut message = SqsMessage::default();
    message.message_id = Some("redelivered-1".into());
    message.body = Some(serde_json::to_string(job).unwrap());
    message
        .attributes
        .insert("ApproximateReceiveCount".into(), "2".into());
    let mut event = SqsEvent::default();
    event.records = vec![message];
    event
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_for_one_flag_stops_calls_for_another_flag_on_the_same_token() {
    let ctx = setup("token-wait", &[]).await;
    ctx.vwo.add_flag("search-v2", true);
    let app = kill_switch(&ctx).await;
    ctx.vwo.script([Script::Status(429, Some(120))]);
    let (status, body, _) = send(
        &app,
        sentry_hook_event(&ctx.secret, "metric_alert", &critical(), FLAG_QUERY),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"]["retryInSecs"], 120);
    assert_eq!(body["queued"]["reason"], "VWO asked to wait 120 s");

    // Another flag, another container: VWO is not called, and the answer says why.
    let other = kill_switch(&ctx).await;
    let (status, body, _) = send(
        &other,
        sentry_hook_event(&ctx.secret, "metric_alert", &critical_for("search-v2"), ""),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let left = body["queued"]["retryInSecs"].as_u64().unwrap();
    assert!((100..=120).contains(&left), "{body}");
    assert_opens(&body["queued"]["reason"], "VWO asked to wait");
    assert_eq!(
        ctx.vwo.toggles().len(),
        1,
        "one request, the one VWO refused"
    );

    // The worker, handed either job again, waits out the rest without calling VWO.
    let worker = worker(&ctx).await;
    let response = worker.handle(redelivery(&job("search-v2", None))).await;
    assert_eq!(response.batch_item_failures.len(), 1, "kept for later");
    assert_eq!(ctx.vwo.toggles().len(), 1);
    // switched only once the wait is over
    ctx.vwo.assert_on("search-v2", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fast_path_wait_of_an_hour_is_carried_by_the_job_past_sqs_s_delay() {
    let ctx = setup("hour-wait", &[]).await;
    let app = kill_switch(&ctx).await;
    ctx.vwo.script([Script::Status(429, Some(3600))]);
    let (status, body, _) = send(
        &app,
        sentry_hook_event(&ctx.secret, "metric_alert", &critical(), FLAG_QUERY),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"]["retryInSecs"], 3600);
    // SQS delays it 900 s at most; the job itself holds the rest: re-delivered after 900 s (the
    // SQS clock advanced), it is kept without a call to VWO — even on a fresh token gate.
    let later = bridge_platform::clock::unix_millis() + 2_700_000;
    let worker = worker(&ctx).await;
    let response = worker
        .handle(redelivery(&job("checkout-new-flow", Some(later))))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        ctx.vwo.toggles().len(),
        1,
        "no call before the hour is over"
    );
    assert_eq!(moto().queue_depth(&ctx.dlq_url).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_waits_out_a_retry_after_longer_than_sqs_can_hide_a_message() {
    let ctx = setup("twelve-hours", &[]).await;
    accepted(&ctx, &job("checkout-new-flow", None)).await;
    ctx.vwo.script([Script::Status(429, Some(43_200))]);
    let worker = worker(&ctx).await;
    assert_eq!(worker.drain_once(Duration::from_secs(2)).await.unwrap(), 1);
    assert_eq!(ctx.vwo.toggles().len(), 1);
    assert_eq!(moto().queue_depth(&ctx.queue_url).await, 1, "kept");
    // Re-delivered when SQS's 12 h cap ends the invisibility: still no call.
    for _ in 0..3 {
        let response = worker
            .handle(redelivery(&job("checkout-new-flow", None)))
            .await;
        assert_eq!(response.batch_item_failures.len(), 1);
    }
    assert_eq!(
        ctx.vwo.toggles().len(),
        1,
        "no call before the 12 h are over"
    );
    assert_eq!(moto().queue_depth(&ctx.dlq_url).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_ending_past_the_horizon_goes_to_the_dead_letter_queue_with_the_reason() {
    let ctx = setup("wait-horizon", &[("RETRY_HORIZON_SECS", "3600")]).await;
    accepted(&ctx, &job("checkout-new-flow", None)).await;
    ctx.vwo.script([Script::Status(503, Some(7200))]);
    let worker = worker(&ctx).await;
    assert_eq!(worker.drain_once(Duration::from_secs(2)).await.unwrap(), 1);
    assert_eq!(moto().queue_depth(&ctx.queue_url).await, 0);
    assert_eq!(ctx.vwo.toggles().len(), 1);
    let aws = bridge_platform::aws::aws_config().await;
    let dead = ToggleQueue::new(aws_sdk_sqs::Client::new(&aws), &ctx.dlq_url)
        .peek(10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let reason = dead[0].2.clone().unwrap_or_default();
    assert!(reason.contains("VWO asked to wait 7200 s"), "{reason}");
    assert!(
        reason.contains("past the retry horizon of 3600 s"),
        "{reason}"
    );
}
