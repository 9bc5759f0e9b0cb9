//! In-process cost of one alert: verify the signature and timestamp, parse, decide — on event
//! alerts of about 2 KB, 20 KB and 200 KB — against the floor on the same bytes: one HMAC-SHA256
//! and one `serde_json` parse.
//!
//! Run: `cargo bench -p sentry-to-vwo --bench alert`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge_platform::signature::sign_hex;
use bridge_sentry::webhook::{self, Envelope};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sentry_to_vwo::alert::decide::decision::{self, Decision, FlagChoice};
use sentry_to_vwo::config::Config;
use serde::de::IgnoredAny;
use serde_json::{json, Value};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// An `event_alert.triggered` body of about `target` bytes: a real-looking event whose stack
/// trace grows until the size is reached, as Sentry sends for deep stacks.
fn event_alert(target: usize) -> Vec<u8> {
    let frame = |i: usize| {
        json!({"filename": format!("app/checkout/summary_{i}.ts"), "function": format!("renderTotal{i}"),
               "lineno": 100 + i, "colno": 17, "in_app": true, "module": "checkout.summary",
               "context_line": "    const total = order.lines.reduce((sum, line) => sum + line.total, 0);"})
    };
    let mut frames = Vec::new();
    loop {
        let body = json!({"action": "triggered", "installation": {"uuid": "7a485448-a9e2-4c85-8a3c-4f44175783c9"},
            "data": {"triggered_rule": "Checkout errors spike",
                "issue_alert": {"title": "Kill checkout-new-flow", "settings": [
                    {"name": "feature", "value": "checkout-new-flow"}, {"name": "environment", "value": "production"}]},
                "event": {"event_id": "4f4d1b0e6c4a4d4e9d8f0e7b5c3a2f10", "issue_id": "1170820242", "project": 1,
                    "level": "error", "environment": "production", "tags": [["environment", "production"], ["release", "web@2.14.0"]],
                    "exception": {"values": [{"type": "TypeError", "value": "Cannot read properties of undefined (reading 'total')",
                        "stacktrace": {"frames": frames}}]}}},
            "actor": {"type": "application", "id": "sentry", "name": "Sentry"}});
        let bytes = serde_json::to_vec(&body).unwrap();
        if bytes.len() >= target {
            return bytes;
        }
        frames.push(frame(frames.len()));
    }
}

fn config() -> Config {
    Config::from_vars(&|n: &str| match n {
        "SENTRY_CLIENT_SECRET_PARAM" => Some("/b/s".to_owned()),
        "VWO_API_TOKEN_PARAM" => Some("/b/t".to_owned()),
        _ => None,
    })
    .unwrap()
}

/// What the handler does between receiving the bytes and calling VWO.
fn verify_parse_route(
    config: &Config,
    body: &[u8],
    signature: &str,
    timestamp: &str,
    now: SystemTime,
) -> Decision {
    webhook::verify_signature(SECRET, body, Some(signature)).unwrap();
    webhook::verify_timestamp(Some(timestamp), Duration::from_secs(300), now).unwrap();
    let envelope = Envelope::parse(body).unwrap();
    let query = FlagChoice::from_pairs([
        ("feature", "checkout-new-flow"),
        ("environment", "production"),
    ]);
    decision::decide(config, "event_alert", &envelope, query).unwrap()
}

fn alerts(c: &mut Criterion) {
    let config = config();
    let now = SystemTime::now();
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut group = c.benchmark_group("alert");
    for (label, size) in [("2KB", 2_000), ("20KB", 20_000), ("200KB", 200_000)] {
        let body = event_alert(size);
        let signature = sign_hex(SECRET, &body);
        assert!(matches!(
            verify_parse_route(&config, &body, &signature, &timestamp, now),
            Decision::Toggle { .. }
        ));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("verify_parse_route", label),
            &body,
            |b, body| {
                b.iter(|| verify_parse_route(&config, black_box(body), &signature, &timestamp, now))
            },
        );
        // The floor: every byte must be hashed and read as JSON at least once.
        let floor = BenchmarkId::new("floor_hmac_and_json_scan", label);
        group.bench_with_input(floor, &body, |b, body| {
            b.iter(|| hmac_and_parse::<IgnoredAny>(body))
        });
        group.bench_with_input(BenchmarkId::new("hmac_only", label), &body, |b, body| {
            b.iter(|| sign_hex(SECRET, black_box(body)))
        });
        // For comparison: the whole body parsed into a serde_json::Value, as a naive handler would.
        let naive = BenchmarkId::new("naive_hmac_and_value_parse", label);
        group.bench_with_input(naive, &body, |b, body| {
            b.iter(|| hmac_and_parse::<Value>(body))
        });
    }
    group.finish();
}

criterion_group!(benches, alerts);
criterion_main!(benches);

/// Signs `body` and reads it as JSON into `T`: `IgnoredAny` is the least any handler must do
/// with it, `Value` what a naive one does.
fn hmac_and_parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> (String, T) {
    let mac = sign_hex(SECRET, black_box(body));
    let parsed = serde_json::from_slice(black_box(body)).unwrap();
    (mac, parsed)
}
