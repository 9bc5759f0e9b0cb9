//! Mutation fuzzers for the bridge's parsers (not run in CI): `fuzz-parsers` (both webhooks,
//! verify-then-parse) and `fuzz-settings` (VWO's settings file, against serde_json).

pub mod mutate;

/// The fuzzers' arguments: `[ITERATIONS] [SEED]` (default 1,000,000 and 1).
pub fn iterations_and_seed() -> (u64, u64) {
    let mut args = std::env::args().skip(1);
    let iterations = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    (iterations, seed)
}
