//! Cost of one delivery's CPU work for environments of 10, 100 and 1,000 flags: parse the
//! settings file, fingerprint every flag, diff against the stored snapshot (one flag toggled),
//! build and sign the Sentry batch. Also: building and signing batches of 1, 10 and 100 changes.
//!
//! Run: `cargo bench -p vwo-to-sentry --bench batch`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::hint::black_box;

use bridge_shared::secrets::Secret;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use vwo_to_sentry::sentry_flags::{change_id, iso8601, Actor, FlagAction, FlagBatch, FlagChange};
use vwo_to_sentry::settings_file::{self, document, parse_document};
use vwo_to_sentry::snapshot::{diff, Snapshot};

const ACCOUNT: u64 = 654_321;

fn build_and_sign(keys: &[String], secret: &Secret) -> (Vec<u8>, String) {
    let timestamp = 1_795_416_000;
    let created_at = iso8601(timestamp).unwrap();
    let data = keys
        .iter()
        .map(|key| FlagChange {
            action: FlagAction::Updated,
            change_id: change_id("production", key, FlagAction::Updated, timestamp),
            created_at: created_at.clone(),
            created_by: Actor::vwo(),
            flag: key.clone(),
        })
        .collect();
    FlagBatch::new(data).signed(secret).unwrap()
}

/// A settings file shaped like VWO's published samples: each flag with a rollout rule and a
/// two-variation testing rule. `off` names a flag left out (switched off).
fn settings_body(flags: usize, off: Option<usize>) -> Vec<u8> {
    let mut features = Vec::new();
    let mut campaigns = Vec::new();
    for i in (0..flags).filter(|i| Some(*i) != off) {
        let (rollout, testing) = (i * 2 + 1, i * 2 + 2);
        let key = format!("flag-{i:04}");
        features.push(json!({"id": i + 1, "key": key, "name": key, "status": "ON", "type": "FEATURE_FLAG",
            "metrics": [{"id": 1, "type": "CUSTOM_GOAL", "identifier": "conversion", "mca": -1}],
            "impactCampaign": {},
            "rules": [{"ruleKey": "rolloutRule1", "type": "FLAG_ROLLOUT", "campaignId": rollout, "variationId": 1},
                      {"ruleKey": "testingRule1", "type": "FLAG_TESTING", "campaignId": testing}],
            "variables": [{"id": 1, "key": "copy", "type": "string", "value": "on"}]}));
        for (id, kind, rule) in [
            (rollout, "FLAG_ROLLOUT", "rolloutRule1"),
            (testing, "FLAG_TESTING", "testingRule1"),
        ] {
            campaigns.push(json!({"id": id, "key": format!("{key}_{rule}"), "name": format!("{key}_{rule}"),
                "type": kind, "status": "RUNNING", "percentTraffic": 100, "segments": {},
                "isForcedVariationEnabled": false, "salt": format!("salt-{id}"),
                "variations": [{"id": 1, "name": "Default", "weight": 50, "segments": {},
                                "variables": [{"id": 1, "key": "copy", "type": "string", "value": "a"}]},
                               {"id": 2, "name": "Variation-1", "weight": 50, "segments": {},
                                "variables": [{"id": 1, "key": "copy", "type": "string", "value": "b"}]}]}));
        }
    }
    serde_json::to_vec(&document(ACCOUNT, features, campaigns)).unwrap()
}

/// One delivery's CPU work: parse, fingerprint, diff, sign.
fn delivery(body: &[u8], previous: &Snapshot, secret: &Secret) -> usize {
    let doc: Value = parse_document(body, ACCOUNT).unwrap();
    let flags = settings_file::flags(&doc).unwrap();
    let current = Snapshot::from_settings("sdk", &flags);
    let keys: Vec<String> = diff(previous, &current)
        .into_iter()
        .map(|c| c.key)
        .collect();
    build_and_sign(&keys, secret).0.len()
}

fn deliveries(c: &mut Criterion) {
    let secret = Secret::new("0123456789abcdef0123456789abcdef");
    let mut group = c.benchmark_group("delivery");
    for n in [10usize, 100, 1000] {
        let before = settings_body(n, None);
        let previous = Snapshot::from_settings(
            "sdk",
            &settings_file::flags(&parse_document(&before, ACCOUNT).unwrap()).unwrap(),
        );
        let after = settings_body(n, Some(n / 2));
        group.throughput(Throughput::Bytes(after.len() as u64));
        group.bench_with_input(BenchmarkId::new("flags", n), &after, |b, body| {
            b.iter(|| delivery(black_box(body), &previous, &secret))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("sentry_batch");
    for n in [1usize, 10, 100] {
        let keys: Vec<String> = (0..n).map(|i| format!("checkout.flag-{i}")).collect();
        group.bench_with_input(BenchmarkId::new("build_and_sign", n), &keys, |b, keys| {
            b.iter(|| build_and_sign(black_box(keys), &secret))
        });
    }
    group.finish();
}

criterion_group!(benches, deliveries);
criterion_main!(benches);
