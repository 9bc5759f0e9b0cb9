//! Cost of turning flag changes into a signed Sentry batch (change ids, timestamps, JSON,
//! HMAC) for 1, 10 and 100 changes, and of diffing snapshots of 1,000 flags.
//!
//! Run: `cargo bench -p vwo-to-sentry --bench batch`.

use std::hint::black_box;

use bridge_shared::secrets::Secret;
use bridge_shared::sentry_flags::{change_id, iso8601, Actor, FlagAction, FlagBatch, FlagChange};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vwo_to_sentry::snapshot::{diff, FlagRecord, Snapshot};

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

fn snapshot(flags: usize, changed_every: usize) -> Snapshot {
    Snapshot {
        flags: (0..flags)
            .map(|i| {
                let fingerprint = if changed_every > 0 && i % changed_every == 0 {
                    "changed"
                } else {
                    "same"
                };
                (
                    i.to_string(),
                    FlagRecord {
                        key: Some(format!("flag-{i}")),
                        enabled: Some(true),
                        fingerprint: fingerprint.into(),
                        summary: "s".into(),
                    },
                )
            })
            .collect(),
    }
}

fn batches(c: &mut Criterion) {
    let secret = Secret::new("0123456789abcdef0123456789abcdef");
    let mut group = c.benchmark_group("sentry_batch");
    for n in [1usize, 10, 100] {
        let keys: Vec<String> = (0..n).map(|i| format!("checkout.flag-{i}")).collect();
        group.bench_with_input(BenchmarkId::new("build_and_sign", n), &keys, |b, keys| {
            b.iter(|| build_and_sign(black_box(keys), &secret))
        });
    }
    group.finish();
    let (old, new) = (snapshot(1000, 0), snapshot(1000, 100));
    c.bench_function("snapshot_diff/1000_flags_10_changed", |b| {
        b.iter(|| diff(black_box(&old), black_box(&new)))
    });
}

criterion_group!(benches, batches);
criterion_main!(benches);
