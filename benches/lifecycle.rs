//! Cold starts, warm latency, memory and calls per invocation of the real release binaries,
//! run as Lambda runs them: under a Lambda Runtime API stand-in, with SSM (moto behind a
//! counting proxy) and VWO stand-ins on loopback.
//!
//! Run: `cargo bench --bench lifecycle` (needs moto: `pip install 'moto[server]'`).
//! Options (env): `COLD_STARTS` (default 20), `WARM_INVOCATIONS` (default 1000).
//! The host build is measured (x86_64 here); Lambda runs the arm64 build of the same code.

use std::time::{Duration, Instant};

use testkit::aws_proxy::AwsProxy;
use testkit::process::{release_binary, FunctionProcess};
use testkit::runtime_api::{Outcome, RuntimeApi};
use testkit::vwo::FakeVwo;
use testkit::{sample, sentry_hook_event};

const QUERY: &str = "feature=checkout-new-flow&environment=production";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<44} n={:<5} median {:>9.3} ms   p95 {:>9.3} ms   p99 {:>9.3} ms   max {:>9.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stack {
    proxy: AwsProxy,
    vwo: FakeVwo,
    env: Vec<(String, String)>,
}

async fn stack() -> Stack {
    let moto = testkit::moto::shared();
    moto.put_secure_string("/bench/sentry-client-secret", "bench-client-secret")
        .await;
    moto.put_secure_string("/bench/vwo-api-token", "bench-token")
        .await;
    let proxy = AwsProxy::start(&moto.endpoint).await;
    let vwo = FakeVwo::start("bench-token").await;
    vwo.add_flag("checkout-new-flow", true);
    let env = [
        ("AWS_ENDPOINT_URL_SSM", proxy.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("SENTRY_CLIENT_SECRET_PARAM", "/bench/sentry-client-secret"),
        ("VWO_API_TOKEN_PARAM", "/bench/vwo-api-token"),
        ("VWO_API_BASE_URL", &vwo.base_url()),
        // Pacing off: the bench measures the bridge, not VWO's 1 request/s limit.
        ("VWO_MIN_INTERVAL_MS", "0"),
        ("RUST_LOG", "warn"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    Stack { proxy, vwo, env }
}

async fn invoke_alert(api: &RuntimeApi) -> Duration {
    let event = sentry_hook_event(
        "bench-client-secret",
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        QUERY,
    );
    let started = Instant::now();
    let outcome = api.invoke(event, Duration::from_secs(30)).await;
    let took = started.elapsed();
    match outcome {
        Some(Outcome::Response(r)) if r["statusCode"] == 200 => took,
        other => panic!("alert failed: {other:?}"),
    }
}

/// An alert body of its own (each real alert has its own signature; the kill switch refuses a
/// replayed one).
fn unique_alert(n: usize) -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&sample("sentry/metric_alert.critical.json")).unwrap();
    body["data"]["metric_alert"]["id"] = serde_json::json!(n.to_string());
    serde_json::to_vec(&body).unwrap()
}

/// The kill switch as deployed — replay record, generation, rate gate and lease in DynamoDB,
/// the SQS queue behind the fast path — answering Sentry: when VWO answers at once (200), and
/// when VWO is too slow for the fast path (202, queued).
async fn durable_answers(s: &Stack, kill_switch: &std::path::PathBuf, count: usize) {
    let moto = testkit::moto::shared();
    moto.create_table("bench-kill-state", "environment").await;
    let queue = moto.create_queue("bench-toggles").await;
    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("sentry-to-vwo");
    env.extend(s.env.iter().cloned());
    env.extend(
        [
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("STATE_TABLE", "bench-kill-state"),
            ("TOGGLE_QUEUE_URL", queue.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let _function = FunctionProcess::spawn(kill_switch, &env);
    let mut n = 0;
    let mut answer = |expected: u16| {
        n += 1;
        let event = sentry_hook_event(
            "bench-client-secret",
            "metric_alert",
            &unique_alert(n),
            QUERY,
        );
        let api = api.clone();
        async move {
            let started = Instant::now();
            let outcome = api.invoke(event, Duration::from_secs(30)).await;
            let took = started.elapsed();
            match outcome {
                Some(Outcome::Response(r)) if r["statusCode"] == expected => took,
                other => panic!("expected {expected}: {other:?}"),
            }
        }
    };
    answer(200).await;
    let mut toggled = Vec::with_capacity(count);
    for _ in 0..count {
        toggled.push(answer(200).await);
    }
    println!("sentry-to-vwo with the queue and state table, {count} warm alerts");
    report("  answer to Sentry, VWO answering (200)", toggled);
    let slow = count.min(50);
    s.vwo
        .script((0..slow).map(|_| testkit::vwo::Script::Delay(Duration::from_secs(2))));
    let mut queued = Vec::with_capacity(slow);
    for _ in 0..slow {
        queued.push(answer(202).await);
    }
    report("  answer to Sentry, VWO too slow (202 queued)", queued);
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches`: nothing to list.
    }
    let cold_starts = env_count("COLD_STARTS", 20);
    let warm = env_count("WARM_INVOCATIONS", 1000);
    let kill_switch = release_binary("sentry-to-vwo");
    let change_tracking = release_binary("vwo-to-sentry");
    let s = stack().await;

    let (mut init, mut first, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cold_starts {
        let api = RuntimeApi::start().await;
        let mut env = api.lambda_env("sentry-to-vwo");
        env.extend(s.env.iter().cloned());
        let ssm_before = s.proxy.calls("AmazonSSM.GetParameters");
        let vwo_before = s.vwo.toggles().len();
        let spawned = Instant::now();
        let function = FunctionProcess::spawn(&kill_switch, &env);
        while api.first_poll().is_none() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        init.push(api.first_poll().unwrap() - spawned);
        first.push(invoke_alert(&api).await);
        assert_eq!(
            s.proxy.calls("AmazonSSM.GetParameters") - ssm_before,
            1,
            "one SSM call per cold start"
        );
        assert_eq!(
            s.vwo.toggles().len() - vwo_before,
            1,
            "one VWO call per alert"
        );
        rss.push(function.peak_rss_kib().unwrap_or(0));
    }
    println!("sentry-to-vwo, {cold_starts} cold starts (SSM GetParameters: 1 per cold start, VWO: 1 per alert)");
    report("  init: process start to first /next", init);
    report("  first alert: invoke to response", first);

    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("sentry-to-vwo");
    env.extend(s.env.iter().cloned());
    let function = FunctionProcess::spawn(&kill_switch, &env);
    invoke_alert(&api).await;
    let ssm_before = s.proxy.calls("AmazonSSM.GetParameters");
    let vwo_before = s.vwo.toggles().len();
    let mut latencies = Vec::with_capacity(warm);
    for _ in 0..warm {
        latencies.push(invoke_alert(&api).await);
    }
    let ssm_calls = s.proxy.calls("AmazonSSM.GetParameters") - ssm_before;
    let vwo_calls = s.vwo.toggles().len() - vwo_before;
    println!("sentry-to-vwo, {warm} warm alerts: SSM calls {ssm_calls}, VWO calls {vwo_calls} ({:.2} per alert)", vwo_calls as f64 / warm as f64);
    report("  warm alert: invoke to response", latencies);
    rss.push(function.peak_rss_kib().unwrap_or(0));
    println!(
        "  peak RSS: {} KiB (max over all runs)",
        rss.iter().max().unwrap()
    );

    durable_answers(&s, &kill_switch, warm.min(200)).await;

    // Change tracking's init (config, one GetParameters for four parameters, connections).
    let moto = testkit::moto::shared();
    for name in ["vwo-webhook-secret", "sentry-signing-secret"] {
        moto.put_secure_string(&format!("/bench/{name}"), "bench-secret")
            .await;
    }
    let mut init = Vec::new();
    for _ in 0..cold_starts {
        let api = RuntimeApi::start().await;
        let mut env = api.lambda_env("vwo-to-sentry");
        env.extend(s.env.iter().cloned());
        env.extend(
            [
                ("VWO_WEBHOOK_SECRET_PARAM", "/bench/vwo-webhook-secret"),
                (
                    "SENTRY_SIGNING_SECRET_PARAM",
                    "/bench/sentry-signing-secret",
                ),
                (
                    "SENTRY_WEBHOOK_URL",
                    "http://127.0.0.1:9/api/0/organizations/acme/flags/hooks/provider/generic/",
                ),
                ("STATE_TABLE", "bench-state"),
                ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.as_str()),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let spawned = Instant::now();
        let _function = FunctionProcess::spawn(&change_tracking, &env);
        while api.first_poll().is_none() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        init.push(api.first_poll().unwrap() - spawned);
    }
    println!("vwo-to-sentry, {cold_starts} cold starts");
    report("  init: process start to first /next", init);
}
