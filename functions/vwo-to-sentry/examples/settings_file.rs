//! One delivery's settings-file work as a whole process, for `farm-bench` (wall time side by
//! side with the floor, and peak memory at a given environment size).
//!
//! ```text
//! cargo build --release -p vwo-to-sentry --example settings_file
//! X=target/release/examples/settings_file
//! $X write 10000 /tmp/settings-10k.json      # VWO's sample shape, 10,000 flags (one left out)
//! $X write 10000 /tmp/settings-10k-vwo.json vwo  # the same in VWO's member order
//! farm-bench -n 10 -- $X delivery /tmp/settings-10k.json 20 --vs "$X floor /tmp/settings-10k.json 20"
//! ```
//!
//! `delivery`: read the file, then N times parse, fingerprint and diff against the snapshot of
//! the full file. `floor`: read the file, then N passes of serde_json that build nothing.
//! `paired FLAGS N [vwo]`: in one process, N pairs of the floor and one delivery (one flag switched
//! off since the stored snapshot) on VWO's sample shape, each delivery's time divided by the
//! floor's just before it; prints the quartiles of those ratios. A pair shares the machine's
//! state of the moment, so the ratio holds where separate timings drift by ±20 %. `vwo`: the
//! same flags laid out as VWO's published settings files are (`sample_in_vwo_order`).
//! `phases FLAGS N [vwo]`: the same pairs, with the delivery's parse, snapshot, diff and drop
//! each divided by the floor: where a delivery's time goes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a panic

use std::time::{Duration, Instant};

use bridge_vwo::settings_file;
use bridge_vwo::settings_file::snapshot::Snapshot;
use serde::de::IgnoredAny;
use testkit::settings_files;
use vwo_to_sentry::delivery::diff::diff;

const ACCOUNT: u64 = 654_321;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let times: usize = arg(2).parse().unwrap_or(1);
    match arg(0) {
        "write" => {
            let flags: usize = arg(1).parse().expect("flags");
            std::fs::write(arg(2), sample(arg(3))(ACCOUNT, flags, Some(flags / 2))).unwrap();
        }
        "delivery" => {
            let body = std::fs::read(arg(1)).unwrap();
            // The stored snapshot: every flag on, as before the one left out was switched off.
            let previous = settings_file::parse(&body, ACCOUNT)
                .unwrap()
                .snapshot("sdk", &Snapshot::default());
            let mut changes = 0;
            for _ in 0..times {
                let current = settings_file::parse(&body, ACCOUNT)
                    .unwrap()
                    .snapshot("sdk", &previous);
                changes += diff(&previous, &current).len();
            }
            println!("{changes}");
        }
        "floor" => {
            let body = std::fs::read(arg(1)).unwrap();
            for _ in 0..times {
                serde_json::from_slice::<IgnoredAny>(&body).unwrap();
            }
        }
        "paired" => {
            let flags: usize = arg(1).parse().expect("flags");
            let (body, parts) = pairs(flags, arg(3), times);
            let mut ratios: Vec<f64> = parts.iter().map(|p| p[1..].iter().sum()).collect();
            let mut floors: Vec<f64> = parts.iter().map(|p| p[0]).collect();
            ratios.sort_by(f64::total_cmp);
            floors.sort_by(f64::total_cmp);
            let at = |q: usize| ratios[(ratios.len() - 1) * q / 4];
            println!(
                "{flags} flags{}, {} bytes: delivery / floor, {times} pairs: q1 {:.2} median {:.2} q3 {:.2} (floor's median {:.3} ms)",
                if arg(3) == "vwo" { " in VWO's order" } else { "" },
                body,
                at(1),
                at(2),
                at(3),
                floors[floors.len() / 2]
            );
        }
        "phases" => {
            let flags: usize = arg(1).parse().expect("flags");
            let (_, parts) = pairs(flags, arg(3), times);
            let names = ["floor (ms)", "parse", "snapshot", "diff", "drop"];
            for (i, name) in names.into_iter().enumerate() {
                let mut part: Vec<f64> = parts.iter().map(|p| p[i]).collect();
                part.sort_by(f64::total_cmp);
                println!("{name}: median {:.3}", part[part.len() / 2]);
            }
        }
        _ => eprintln!("usage: settings_file write FLAGS FILE [vwo] | delivery FILE N | floor FILE N | paired FLAGS N [vwo] | phases FLAGS N [vwo]"),
    }
}

/// `times` pairs of the floor and one delivery (one flag switched off since the stored
/// snapshot) on `flags` flags in `layout`: the body's length, and for each pair the floor's
/// milliseconds and the delivery's parse, snapshot, diff and drop, each over that floor.
fn pairs(flags: usize, layout: &str, times: usize) -> (usize, Vec<[f64; 5]>) {
    let sample = sample(layout);
    let previous = settings_file::parse(&sample(ACCOUNT, flags, None), ACCOUNT)
        .unwrap()
        .snapshot("sdk", &Snapshot::default());
    let body = sample(ACCOUNT, flags, Some(flags / 2));
    let parts = (0..times)
        .map(|_| {
            let start = Instant::now();
            serde_json::from_slice::<IgnoredAny>(&body).unwrap();
            let floor = start.elapsed();
            let start = Instant::now();
            let parsed = settings_file::parse(&body, ACCOUNT).unwrap();
            let parse = start.elapsed();
            let current = parsed.snapshot("sdk", &previous);
            let snapshot = start.elapsed();
            assert_eq!(diff(&previous, &current).len(), 1);
            let diffed = start.elapsed();
            drop((current, parsed));
            let dropped = start.elapsed();
            let ratio = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
            [
                floor.as_secs_f64() * 1e3,
                ratio(parse),
                ratio(snapshot - parse),
                ratio(diffed - snapshot),
                ratio(dropped - diffed),
            ]
        })
        .collect();
    (body.len(), parts)
}

/// The sample's layout: VWO's (`vwo`) or serde_json's with sorted members.
fn sample(layout: &str) -> fn(u64, usize, Option<usize>) -> Vec<u8> {
    match layout {
        "vwo" => settings_files::sample_in_vwo_order,
        _ => settings_files::sample,
    }
}
