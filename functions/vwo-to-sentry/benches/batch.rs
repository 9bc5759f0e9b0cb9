//! Cost of one delivery's CPU work for environments of 10, 100, 1,000 and 10,000 flags: parse
//! the settings file, fingerprint every flag, diff against the stored snapshot (one flag
//! toggled), build and sign the Sentry batch; beside it, in the same group, the floor: one pass
//! of serde_json over the same bytes that builds nothing (`IgnoredAny`); at every size, also the
//! same flags laid out as VWO's published settings files are, with their own floor. Also:
//! building and signing batches of 1, 10 and 100 changes.
//!
//! Run: `cargo bench -p vwo-to-sentry --bench batch`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::hint::black_box;

use bridge_platform::secrets::Secret;
use bridge_sentry::change_tracking::{
    change_id, iso8601, Actor, FlagAction, FlagBatch, FlagChange,
};
use bridge_vwo::settings_file;
use bridge_vwo::settings_file::snapshot::Snapshot;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::de::IgnoredAny;
use testkit::settings_files;
use vwo_to_sentry::delivery::diff::diff;

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

/// One delivery's CPU work: parse, fingerprint, diff, sign.
fn delivery(body: &[u8], previous: &Snapshot, secret: &Secret) -> usize {
    let current = settings_file::parse(body, ACCOUNT)
        .unwrap()
        .snapshot("sdk", previous);
    let keys: Vec<String> = diff(previous, &current)
        .into_iter()
        .map(|c| c.key)
        .collect();
    build_and_sign(&keys, secret).0.len()
}

fn deliveries(c: &mut Criterion) {
    let secret = Secret::new("0123456789abcdef0123456789abcdef");
    let mut group = c.benchmark_group("delivery");
    for n in [10usize, 100, 1000, 10_000] {
        let before = settings_files::sample(ACCOUNT, n, None);
        let previous = settings_file::parse(&before, ACCOUNT)
            .unwrap()
            .snapshot("sdk", &Snapshot::default());
        let after = settings_files::sample(ACCOUNT, n, Some(n / 2));
        group.throughput(Throughput::Bytes(after.len() as u64));
        group.bench_with_input(BenchmarkId::new("flags", n), &after, |b, body| {
            b.iter(|| delivery(black_box(body), &previous, &secret))
        });
        group.bench_with_input(BenchmarkId::new("parse", n), &after, |b, body| {
            b.iter(|| {
                settings_file::parse(black_box(body), ACCOUNT)
                    .unwrap()
                    .len()
            })
        });
        group.bench_with_input(BenchmarkId::new("floor", n), &after, |b, body| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(body)).unwrap())
        });
        // The same flags laid out as VWO's published files are (rules early in a feature, a
        // rule's campaign id last, features before campaigns).
        let before = settings_files::sample_in_vwo_order(ACCOUNT, n, None);
        let previous = settings_file::parse(&before, ACCOUNT)
            .unwrap()
            .snapshot("sdk", &Snapshot::default());
        let after = settings_files::sample_in_vwo_order(ACCOUNT, n, Some(n / 2));
        group.bench_with_input(BenchmarkId::new("flags_vwo_order", n), &after, |b, body| {
            b.iter(|| delivery(black_box(body), &previous, &secret))
        });
        group.bench_with_input(BenchmarkId::new("floor_vwo_order", n), &after, |b, body| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(body)).unwrap())
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
