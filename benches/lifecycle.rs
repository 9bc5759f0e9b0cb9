//! Cold starts, warm latency, memory and calls per invocation of the real release binaries,
//! run as Lambda runs them: under a Lambda Runtime API stand-in, with SSM (moto behind a
//! counting proxy) and VWO stand-ins on loopback — and, in the same run, the floor: a bare
//! `lambda_http` function (`benches/floor`) built with the same profile, with each function's
//! ratio to it.
//!
//! Run: `cargo bench --bench lifecycle`. Options (env): `COLD_STARTS` (default 20),
//! `WARM_INVOCATIONS` (default 1000). Init CPU is the sum over the process's threads of
//! `/proc/<pid>/task/*/schedstat` at the moment of the first `/next`. The host build is measured
//! (x86_64 here); Lambda runs the arm64 build of the same code.
//!
//! `--init-phases` (internal): run the kill switch's cold start in this process, phase by phase,
//! and print each phase's wall and CPU time; the bench runs it `COLD_STARTS` times, each in a
//! fresh process, for the breakdown.

use std::time::{Duration, Instant};

use testkit::aws_proxy::AwsProxy;
use testkit::process::{cpu_time, release_binary, FunctionProcess};
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
    timed_ok(api, event, "alert").await
}

/// How long `api` took to answer `event` with 200 (panics naming `what` otherwise).
async fn timed_ok(api: &RuntimeApi, event: serde_json::Value, what: &str) -> Duration {
    timed(api, event, what, 200).await
}

/// How long `api` took to answer `event` with `status` (panics naming `what` otherwise).
async fn timed(api: &RuntimeApi, event: serde_json::Value, what: &str, status: u16) -> Duration {
    let started = Instant::now();
    let outcome = api.invoke(event, Duration::from_secs(30)).await;
    let took = started.elapsed();
    match outcome {
        Some(Outcome::Response(r)) if r["statusCode"] == status => took,
        other => panic!("{what} failed: {other:?}"),
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
    moto.create_table("bench-kill-state").await;
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
        async move { timed(&api, event, "alert", expected).await }
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

/// An issue alert of a `@suspect` rule in production whose event (the `n`-th, now) carries 100
/// flags on, `checkout-new-flow` among them.
fn suspect_alert(n: usize) -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&sample("sentry/event_alert.triggered.json")).unwrap();
    body["data"]["issue_alert"]["settings"] = serde_json::json!([
        {"name": "feature", "value": "@suspect"}, {"name": "environment", "value": "production"}]);
    body["data"]["event"]["event_id"] = serde_json::json!(format!("{n:032x}"));
    let mut values: Vec<serde_json::Value> = (0..99)
        .map(|i| serde_json::json!({"flag": format!("flag-{i:04}"), "result": true}))
        .collect();
    values.push(serde_json::json!({"flag": "checkout-new-flow", "result": true}));
    body["data"]["event"]["contexts"] = serde_json::json!({"flags": {"values": values}});
    serde_json::to_vec(&body).unwrap()
}

/// A kill switch process for the `@suspect` cases: the stack's settings, the state table and
/// queue at moto, and `extra`.
async fn suspect_kill_switch(
    s: &Stack,
    kill_switch: &std::path::PathBuf,
    table: &str,
    queue: &str,
    extra: &[(&str, &str)],
) -> (RuntimeApi, FunctionProcess) {
    let moto = testkit::moto::shared();
    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("sentry-to-vwo");
    env.extend(s.env.iter().cloned());
    env.extend(
        [
            ("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint.as_str()),
            ("AWS_ENDPOINT_URL_SQS", moto.endpoint.as_str()),
            ("STATE_TABLE", table),
            ("TOGGLE_QUEUE_URL", queue),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let function = FunctionProcess::spawn(kill_switch, &env);
    (api, function)
}

/// The kill switch answering `@suspect` alerts (100 flags on the event, the change kept by change
/// tracking four minutes before the issue began): with a Sentry token, Sentry's API answering
/// each read in 200 ms; and with the issue's start from its `issue.created` and
/// `SUSPECT_EVIDENCE=event` (no API read); and with Sentry's API too slow for the answer (900 ms a
/// read): answered 202, the decision left to the worker. Each from a cold container (the first
/// alert) and warm, with the queue and the state table as deployed.
async fn suspect_answers(s: &Stack, kill_switch: &std::path::PathBuf, count: usize) {
    use bridge_state::issue_start::IssueStarts;
    use bridge_state::latest_change::{ChangeKind, LatestChange, LatestChanges};
    let moto = testkit::moto::shared();
    let table = "bench-suspect-state";
    moto.create_table(table).await;
    let queue = moto.create_queue("bench-suspect-toggles").await;
    moto.put_secure_string("/bench/sentry-api-token", "bench-sentry-token")
        .await;
    let sentry = testkit::sentry::FakeSentry::start("bench-signing").await;
    sentry.set_api_token("bench-sentry-token");
    sentry.set_api_delay(Duration::from_millis(200));
    let began = bridge_platform::clock::unix_secs() as i64 - 60;
    sentry.add_issue(testkit::sentry_api::ApiIssue {
        id: "1170820242".into(),
        first_seen: began,
        events: vec![testkit::sentry_api::ApiEvent::on("production", &["checkout-new-flow"]); 37],
    });
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "bench");
    let sdk = bridge_platform::aws::aws_config_loader()
        .endpoint_url(&moto.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let change = LatestChange {
        environment_id: "1".into(),
        flag: "checkout-new-flow".into(),
        at: began - 240,
        kind: ChangeKind::SwitchedOn,
        by: "ana@example.com".into(),
        rule: None,
        earlier: Vec::new(),
    };
    let now = bridge_platform::clock::unix_secs();
    LatestChanges::new(dynamodb.clone(), table)
        .put_all(&[change], now)
        .await
        .unwrap();
    IssueStarts::new(dynamodb, table)
        .put("1170820242", began, now)
        .await
        .unwrap();
    let slow = testkit::sentry::FakeSentry::start("bench-signing").await;
    slow.set_api_token("bench-sentry-token");
    slow.set_api_delay(Duration::from_millis(900));
    slow.add_issue(testkit::sentry_api::ApiIssue {
        id: "1170820242".into(),
        first_seen: began,
        events: vec![testkit::sentry_api::ApiEvent::on("production", &["checkout-new-flow"]); 37],
    });
    let (api_url, slow_url) = (sentry.api_url(), slow.api_url());
    let token = |url| {
        vec![
            ("SENTRY_API_TOKEN_PARAM", "/bench/sentry-api-token"),
            ("SENTRY_API_URL", url),
            ("SENTRY_ORG", testkit::sentry_api::ORG),
        ]
    };
    let cases = [
        (
            "with a Sentry token, each API read 200 ms",
            token(&api_url),
            200,
        ),
        (
            "issue.created kept, SUSPECT_EVIDENCE=event",
            vec![("SUSPECT_EVIDENCE", "event")],
            200,
        ),
        (
            "with a Sentry token, each API read 900 ms: 202 deferred",
            token(&slow_url),
            202,
        ),
    ];
    // The rule was set up with the drop-downs, which keep VWO's environments in the state table:
    // a fresh container then knows the rule's environment without reading VWO (it would defer).
    {
        let (api, _function) = suspect_kill_switch(s, kill_switch, table, &queue, &[]).await;
        let event =
            testkit::options_event(Some("bench-client-secret"), "/options/environments", &[]);
        timed_ok(&api, event, "the environments drop-down").await;
    }
    for (what, extra, status) in cases {
        let (api, _function) = suspect_kill_switch(s, kill_switch, table, &queue, &extra).await;
        let mut n = 1_000 * (what.len() + 1);
        let mut answers = Vec::with_capacity(count + 1);
        for _ in 0..=count {
            n += 1;
            let event =
                sentry_hook_event("bench-client-secret", "event_alert", &suspect_alert(n), "");
            answers.push(timed(&api, event, "suspect alert", status).await);
        }
        let cold = answers.remove(0);
        println!("sentry-to-vwo, @suspect ({what}): first alert after a cold start {cold:.1?}");
        report(
            &format!("  answer to Sentry, @suspect, {what}, warm"),
            answers,
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches`: nothing to list.
    }
    if std::env::args().any(|a| a == "--init-phases") {
        return run_init_phases();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(bench());
}

async fn bench() {
    let cold_starts = env_count("COLD_STARTS", 20);
    let warm = env_count("WARM_INVOCATIONS", 1000);
    let kill_switch = release_binary("sentry-to-vwo");
    let change_tracking = release_binary("vwo-to-sentry");
    let s = stack().await;

    // The floor: cold starts, then warm answers, in the same run as the functions.
    let floor_binary = release_binary("bridge-floor");
    let mut floor = ColdStarts::default();
    for _ in 0..cold_starts {
        let api = RuntimeApi::start().await;
        let function = FunctionProcess::spawn(&floor_binary, &api.lambda_env("bridge-floor"));
        floor.init(&api, &function).await;
        floor.first.push(invoke_any(&api).await);
        floor.rss.push(function.peak_rss_kib().unwrap_or(0));
    }
    let api = RuntimeApi::start().await;
    let function = FunctionProcess::spawn(&floor_binary, &api.lambda_env("bridge-floor"));
    invoke_any(&api).await;
    for _ in 0..warm {
        floor.warm.push(invoke_any(&api).await);
    }
    floor.rss.push(function.peak_rss_kib().unwrap_or(0));
    drop(function);
    floor.print("floor: bare lambda_http answering 200", None);

    let mut kill = ColdStarts::default();
    for _ in 0..cold_starts {
        let api = RuntimeApi::start().await;
        let mut env = api.lambda_env("sentry-to-vwo");
        env.extend(s.env.iter().cloned());
        let ssm_before = s.proxy.calls("AmazonSSM.GetParameters");
        let vwo_before = s.vwo.toggles().len();
        let function = FunctionProcess::spawn(&kill_switch, &env);
        kill.init(&api, &function).await;
        kill.first.push(invoke_alert(&api).await);
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
        kill.rss.push(function.peak_rss_kib().unwrap_or(0));
    }
    let rss = &mut kill.rss;
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
    rss.push(function.peak_rss_kib().unwrap_or(0));
    kill.warm = latencies;
    kill.print(
        "sentry-to-vwo (1 SSM call per cold start, 1 VWO call per alert)",
        Some(&floor),
    );
    init_phases(&s.env, cold_starts);

    durable_answers(&s, &kill_switch, warm.min(200)).await;
    suspect_answers(&s, &kill_switch, warm.min(50)).await;

    // Change tracking's init (config, one GetParameters for four parameters, connections).
    let moto = testkit::moto::shared();
    for name in ["vwo-webhook-secret", "sentry-signing-secret"] {
        moto.put_secure_string(&format!("/bench/{name}"), "bench-secret")
            .await;
    }
    let mut tracking = ColdStarts::default();
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
        let function = FunctionProcess::spawn(&change_tracking, &env);
        tracking.init(&api, &function).await;
        tracking.rss.push(function.peak_rss_kib().unwrap_or(0));
    }
    tracking.print("vwo-to-sentry (init only)", Some(&floor));
}

/// One binary's figures over several cold starts (and, when measured, warm invocations).
#[derive(Default)]
struct ColdStarts {
    init_wall: Vec<Duration>,
    init_cpu: Vec<Duration>,
    first: Vec<Duration>,
    warm: Vec<Duration>,
    rss: Vec<u64>,
}

impl ColdStarts {
    /// Waits for the first `/next` of `function`, recording init wall time (from the spawn the
    /// process records) and the CPU its threads used up to then.
    async fn init(&mut self, api: &RuntimeApi, function: &FunctionProcess) {
        while api.first_poll().is_none() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // The function now blocks in its long poll: its CPU time no longer grows.
        self.init_cpu.push(function.cpu_time().unwrap_or_default());
        self.init_wall
            .push(api.first_poll().unwrap() - function.spawned_at());
    }

    fn print(&self, name: &str, floor: Option<&ColdStarts>) {
        println!("{name}, {} cold starts", self.init_wall.len());
        let median = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            v.get(v.len() / 2).copied().unwrap_or_default()
        };
        let p99 = |v: &[Duration]| {
            let mut v = v.to_vec();
            v.sort();
            if v.is_empty() {
                Duration::ZERO
            } else {
                percentile(&v, 0.99)
            }
        };
        let peak = self.rss.iter().max().copied().unwrap_or(0);
        let ratio = |mine: Duration, floor: Duration| {
            if floor.is_zero() || mine.is_zero() {
                String::new()
            } else {
                format!("  ({:.1}x floor)", mine.as_secs_f64() / floor.as_secs_f64())
            }
        };
        let row = |label: &str, mine: Duration, theirs: Option<Duration>| {
            if mine.is_zero() {
                return;
            }
            println!(
                "  {label:<28} {:>9.3} ms{}",
                mine.as_secs_f64() * 1e3,
                theirs.map(|t| ratio(mine, t)).unwrap_or_default()
            );
        };
        type Figure<'f> = &'f dyn Fn(&ColdStarts) -> Duration;
        let figures: [(&str, Figure); 5] = [
            ("init wall (median)", &|c| median(&c.init_wall)),
            ("init CPU (median)", &|c| median(&c.init_cpu)),
            ("first invocation (median)", &|c| median(&c.first)),
            ("warm p50", &|c| median(&c.warm)),
            ("warm p99", &|c| p99(&c.warm)),
        ];
        for (label, figure) in figures {
            row(label, figure(self), floor.map(figure));
        }
        let floor_peak = floor.and_then(|f| f.rss.iter().max().copied());
        println!(
            "  {:<28} {:>9.1} MB{}",
            "peak RSS (max)",
            peak as f64 / 1024.0,
            floor_peak
                .map(|f| format!("  ({:.1}x floor)", peak as f64 / f as f64))
                .unwrap_or_default()
        );
    }
}

/// Any Function URL event (the floor answers every request with 200).
async fn invoke_any(api: &RuntimeApi) -> Duration {
    let event = testkit::function_url_event(
        "POST",
        "",
        &[("content-type", "application/json")],
        b"{}",
        false,
    );
    timed_ok(api, event, "the floor").await
}

/// The kill switch's cold start, phase by phase, each in a fresh process (`--init-phases`):
/// median wall and CPU per phase.
fn init_phases(env: &[(String, String)], runs: usize) {
    let exe = std::env::current_exe().expect("the bench knows its path");
    let mut per_phase: Vec<(String, Vec<Duration>, Vec<Duration>)> = Vec::new();
    for _ in 0..runs {
        let out = testkit::process::run_ok(
            std::process::Command::new(&exe)
                .arg("--init-phases")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            "the bench's --init-phases run",
        );
        // The function's own log lines share stdout: only `name<TAB>wall<TAB>cpu` lines count.
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let phases = text.lines().filter_map(|line| {
            let mut parts = line.split('\t');
            Some((parts.next()?, parts.next()?, parts.next()?))
        });
        for (i, (name, wall, cpu)) in phases.enumerate() {
            if per_phase.len() <= i {
                per_phase.push((name.to_owned(), Vec::new(), Vec::new()));
            }
            per_phase[i]
                .1
                .push(Duration::from_nanos(wall.parse().unwrap()));
            per_phase[i]
                .2
                .push(Duration::from_nanos(cpu.parse().unwrap()));
        }
    }
    println!("sentry-to-vwo init, phase by phase ({runs} fresh processes, medians)");
    for (name, mut wall, mut cpu) in per_phase {
        wall.sort();
        cpu.sort();
        println!(
            "  {name:<44} wall {:>7.3} ms   CPU {:>7.3} ms",
            wall[wall.len() / 2].as_secs_f64() * 1e3,
            cpu[cpu.len() / 2].as_secs_f64() * 1e3
        );
    }
}

/// Child side of [`init_phases`]: what the kill switch's `main` does before its first `/next`,
/// timed phase by phase; one `name<TAB>wall ns<TAB>CPU ns` line each.
fn run_init_phases() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let pid = std::process::id();
    let mut last = (Instant::now(), cpu_time(pid).unwrap_or_default());
    // Wall time before `main` is not visible from inside; its CPU is (exec, dynamic loading).
    println!("process start to main (CPU only)\t0\t{}", last.1.as_nanos());
    let mut phase = |name: &str| {
        let now = (Instant::now(), cpu_time(pid).unwrap_or_default());
        println!(
            "{name}\t{}\t{}",
            (now.0 - last.0).as_nanos(),
            now.1.saturating_sub(last.1).as_nanos()
        );
        last = (Instant::now(), cpu_time(pid).unwrap_or_default());
    };
    bridge_platform::telemetry::init_logging();
    phase("logging set-up");
    let config = sentry_to_vwo::config::Config::from_env().expect("bench config");
    phase("configuration from the environment");
    let aws = runtime.block_on(bridge_platform::aws::aws_config());
    phase("AWS SDK configuration chain");
    let ssm = std::sync::Arc::new(bridge_platform::secrets::SsmParameters::new(&aws));
    phase("SSM client");
    let app = sentry_to_vwo::App::new(config, ssm, &aws).expect("bench app");
    phase("App::new (VWO HTTPS client, caches)");
    runtime.block_on(app.warm_up());
    phase("warm-up: GetParameters + VWO connection");
}
