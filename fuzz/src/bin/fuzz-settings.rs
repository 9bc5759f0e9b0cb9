//! Fuzzer for the one reader of VWO's settings file (`bridge_vwo::settings_file`).
//!
//! Inputs: arbitrary bytes, and settings files in VWO's published shapes (serde's member order
//! and VWO's own layout, from `testkit::settings_files`) mutated byte by byte. For each input:
//! - reading it (parse, snapshot, listing) never panics;
//! - whatever the reader accepts is JSON that `serde_json` reads too, and the reader saw what
//!   `serde_json` sees: the same flags in the same order, each with its id, key and status;
//! - the same document in other layouts (serde_json's compact and pretty output, and every
//!   object's members reversed) gives every flag the same fingerprint and rule digests.
//!
//! Run: `cargo run --release -p bridge-fuzz --bin fuzz-settings -- [ITERATIONS] [SEED]`
//! (default 1,000,000, seed 1). A failure prints the input and exits 1.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

use bridge_fuzz::mutate::{mutate, Rng};
use bridge_vwo::settings_file::{self, snapshot::Snapshot};
use serde_json::Value;
use testkit::settings_files::{sample, sample_in_vwo_order};

const ACCOUNT: u64 = 654321;

/// Tokens spliced into settings files: their members and JSON's edge cases.
const TOKENS: &[&[u8]] = &[
    b"{}",
    b"[]",
    b"0",
    b"-0",
    b"1.5",
    b"1e3",
    b"\"\"",
    b"\\u0041",
    b"\\ud800",
    b"\"id\":",
    b"\"key\":",
    b"\"status\":",
    b"\"rules\":",
    b"\"campaignId\":",
    b"\"features\":",
    b"\"campaigns\":",
    b"\"accountId\":",
    b"\"version\":",
    b"\"ruleKey\":",
    b"\"name\":",
    b"\xff",
];

/// What the reader made of an input: each flag's id, key, status and fingerprint (with its rule
/// digests), in order.
type Read = Vec<(String, String, Option<String>, String)>;

fn read(bytes: &[u8]) -> Option<Read> {
    let settings = settings_file::parse(bytes, ACCOUNT).ok()?;
    let _ = settings.listing();
    let snapshot = settings.snapshot("sdk", &Snapshot::default());
    Some(
        snapshot
            .flags
            .iter()
            .map(|(id, r)| {
                let status = r.status.as_ref().map(|s| s.to_string());
                (
                    id.to_string(),
                    r.key.to_string(),
                    status,
                    format!("{} {:?}", r.fingerprint, r.rules),
                )
            })
            .collect(),
    )
}

/// The flags `serde_json` sees (id, key, status), in the snapshot's order (a repeated id keeps
/// its first place and the later flag); `None` when an id is a number that is not a whole
/// number (the reader keeps such an id's own text, `serde_json` its value).
fn expected(value: &Value) -> Option<Vec<(String, String, Option<String>)>> {
    let mut flags: indexmap::IndexMap<String, (String, Option<String>)> = Default::default();
    let features = match &value["features"] {
        Value::Array(list) => list.as_slice(),
        _ => &[],
    };
    for feature in features {
        let id = match &feature["id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_u64() => n.to_string(),
            _ => return None,
        };
        let key = feature["key"].as_str()?.to_owned();
        let status = feature["status"].as_str().map(str::to_owned);
        flags.insert(id, (key, status));
    }
    Some(flags.into_iter().map(|(id, (k, s))| (id, k, s)).collect())
}

/// `value` as JSON text with every object's members in reverse order.
fn reversed(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().rev().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                reversed(v, out);
            }
            out.push('}');
        }
        Value::Array(list) => {
            out.push('[');
            for (i, v) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                reversed(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What the reader made of one input.
enum Outcome {
    /// Refused.
    Refused,
    /// Accepted, and read as serde_json reads it.
    Accepted,
    /// Accepted: JSON by serde_json's own syntax pass (`IgnoredAny`, the pass the reader's
    /// floor is), with a value serde_json cannot decode (a lone UTF-16 surrogate escape such as
    /// `\ud800`, a number beyond `f64`), outside the members that name a flag (an undecodable
    /// id, key or status is refused).
    Undecodable,
}

/// Whether serde_json refused a value's decoding, not the syntax.
fn undecodable(e: &serde_json::Error) -> bool {
    let text = e.to_string();
    text.contains("escape") || text.contains("number out of range")
}

/// Checks one input; the error says what went wrong.
fn check(input: &[u8]) -> Result<Outcome, String> {
    let Some(flags) = read(input) else {
        return Ok(Outcome::Refused);
    };
    let value: Value = match serde_json::from_slice(input) {
        Ok(value) => value,
        Err(e) => {
            return match serde_json::from_slice::<serde::de::IgnoredAny>(input) {
                Ok(_) if undecodable(&e) => Ok(Outcome::Undecodable),
                _ => Err(format!("accepted what serde_json refuses ({e})")),
            }
        }
    };
    if let Some(want) = expected(&value) {
        let got: Vec<_> = flags
            .iter()
            .map(|(i, k, s, _)| (i.clone(), k.clone(), s.clone()))
            .collect();
        if got != want {
            return Err(format!("read {got:?}, serde_json sees {want:?}"));
        }
    }
    let mut back = String::new();
    reversed(&value, &mut back);
    let layouts = [
        serde_json::to_vec(&value).map_err(|e| e.to_string())?,
        serde_json::to_vec_pretty(&value).map_err(|e| e.to_string())?,
        back.into_bytes(),
    ];
    let prints = |read: &Read| {
        read.iter()
            .map(|(i, _, _, f)| (i.clone(), f.clone()))
            .collect::<Vec<_>>()
    };
    let mut first = None;
    for layout in &layouts {
        let again = read(layout).ok_or("a layout of an accepted document was refused")?;
        match &first {
            None => first = Some(prints(&again)),
            Some(seen) if *seen != prints(&again) => {
                return Err(format!(
                    "fingerprints depend on the layout: {seen:?} vs {:?}",
                    prints(&again)
                ))
            }
            Some(_) => {}
        }
    }
    Ok(Outcome::Accepted)
}

fn main() -> ExitCode {
    let (iterations, seed) = bridge_fuzz::iterations_and_seed();
    let seeds = vec![
        sample(ACCOUNT, 3, None),
        sample(ACCOUNT, 4, Some(1)),
        sample_in_vwo_order(ACCOUNT, 3, None),
        sample_in_vwo_order(ACCOUNT, 4, Some(2)),
        br#"{"accountId":"654321","version":1,"features":{},"campaigns":{}}"#.to_vec(),
    ];
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();
    let (mut accepted, mut undecodable, mut arbitrary) = (0u64, 0u64, 0u64);
    for n in 0..iterations {
        let input = if n % 10 == 0 {
            arbitrary += 1;
            (0..rng.below(256)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut input = seeds[rng.below(seeds.len())].clone();
            mutate(&mut rng, &seeds, TOKENS, &mut input);
            input
        };
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(Ok(Outcome::Accepted)) => accepted += 1,
            Ok(Ok(Outcome::Undecodable)) => undecodable += 1,
            Ok(Ok(Outcome::Refused)) => {}
            outcome => {
                let why = match outcome {
                    Ok(Err(why)) => why,
                    _ => "panicked".to_owned(),
                };
                eprintln!(
                    "input {n} (seed {seed}): {why}\n{}",
                    String::from_utf8_lossy(&input[..input.len().min(2000)])
                );
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{iterations} inputs (seed {seed}; {arbitrary} arbitrary, the rest mutated settings files) in {:.1} s: no panic; {accepted} accepted, each read as serde_json reads it, with the same fingerprints in three other layouts; {undecodable} accepted with a value serde_json cannot decode (surrogate escape, number beyond f64) outside a flag's id, key and status",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
