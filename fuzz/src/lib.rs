//! Mutation fuzzers for the bridge's parsers (not run in CI): `fuzz-parsers` (both webhooks,
//! verify-then-parse) and `fuzz-settings` (VWO's settings file, against serde_json).

pub mod mutate;
