//! Mutation fuzzer for the verify-then-parse paths of both functions.
//!
//! Takes the samples in `events/` as seeds, mutates them (bit flips, byte insertions and
//! deletions, truncation, splicing, JSON-ish tokens, deep nesting) and feeds each input through
//! what the handlers do before any network call: for Sentry, signature check (the mutated body is
//! re-signed, so it reaches the parser), timestamp check, parse and routing decision; for VWO,
//! the `x-vwo-auth` check and the parse. It checks that nothing panics, that every refusal is a
//! 4xx, and that inputs stay bounded (the process's peak memory is printed at the end).
//!
//! Run: `cargo run --release -p bridge-fuzz -- [ITERATIONS] [SEED]` (default 1,000,000, seed 1).

use std::time::{Duration, Instant, SystemTime};

use bridge_platform::secrets::Secret;
use bridge_platform::signature::sign_hex;
use bridge_sentry::webhook::{self as sentry_webhook, Envelope};
use bridge_vwo::webhook::{self as vwo_webhook, VwoWebhook};
use sentry_to_vwo::alert::decide::decision::{self, FlagChoice};
use sentry_to_vwo::config::Config;

use bridge_fuzz::mutate::{mutate, Rng};

/// Tokens spliced into the webhooks.
const TOKENS: &[&[u8]] = &[
    b"true",
    b"-1e999",
    b"\\u0000",
    b"\\ud800",
    b"\"action\":",
    b"\"data\":",
    b"\"settings\":",
    b"\"feature\"",
    b"\"..\"",
    b"\xff\xfe",
    b"1e308",
];

fn assert_client_error(status: u16, input: &[u8]) {
    assert!(
        (400..500).contains(&status),
        "refusal with status {status} for input {:?}",
        String::from_utf8_lossy(&input[..input.len().min(200)])
    );
}

fn main() {
    let (iterations, seed) = bridge_fuzz::iterations_and_seed();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("events");
    let mut seeds = Vec::new();
    for dir in ["sentry", "vwo"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("events/ exists") {
            seeds.push(std::fs::read(entry.expect("entry").path()).expect("readable"));
        }
    }
    let config = Config::from_vars(&|n: &str| match n {
        "SENTRY_CLIENT_SECRET_PARAM" => Some("/f/s".to_owned()),
        "VWO_API_TOKEN_PARAM" => Some("/f/t".to_owned()),
        "TOGGLE_ON" => Some(
            "metric_alert.critical,event_alert.triggered,issue.created,error.created".to_owned(),
        ),
        "RESTORE_ON_RESOLVE" => Some("true".to_owned()),
        _ => None,
    })
    .expect("config");
    let secret = b"fuzz-client-secret";
    let vwo_secret = Secret::new("fuzz-webhook-secret");
    let now = SystemTime::now();
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let resources = bridge_sentry::webhook::RESOURCES;
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();
    let (mut parsed, mut toggles) = (0u64, 0u64);
    for _ in 0..iterations {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &seeds, TOKENS, &mut input);

        // Sentry: signed like Sentry would sign it, so the mutation reaches the parser.
        let signature = sign_hex(secret, &input);
        sentry_webhook::verify_signature(secret, &input, Some(&signature))
            .expect("own signature verifies");
        sentry_webhook::verify_timestamp(Some(&timestamp), Duration::from_secs(300), now)
            .expect("fresh");
        match Envelope::parse(&input) {
            Ok(envelope) => {
                parsed += 1;
                let resource = resources[rng.below(resources.len())];
                let query = FlagChoice::from_pairs([
                    ("feature", "checkout-new-flow"),
                    ("environment", "production"),
                ]);
                match decision::decide(&config, resource, &envelope, query) {
                    Ok(decision::Decision::Toggle { .. }) => toggles += 1,
                    Ok(decision::Decision::Ignore(_)) => {}
                    Err(e) => assert_client_error(e.status().as_u16(), &input),
                }
                let _ = decision::alert_facts(resource, &envelope);
            }
            Err(e) => assert_client_error(e.status().as_u16(), &input),
        }

        // VWO: the secret check (mutated header values) and the parse.
        let header = String::from_utf8_lossy(&input[..input.len().min(64)]).into_owned();
        assert!(vwo_webhook::verify_auth(Some(&header), &vwo_secret, None).is_err());
        match VwoWebhook::parse(&input) {
            Ok(hook) => {
                let _ = (hook.timestamp(), hook.action.as_deref());
            }
            Err(e) => assert_client_error(e.status().as_u16(), &input),
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "{iterations} inputs (seed {seed}) in {:.1} s: no panic; {parsed} parsed as Sentry webhooks, {toggles} routed to a toggle; {peak}",
        started.elapsed().as_secs_f64()
    );
}
