//! Structured logs (one JSON object per line) and CloudWatch Embedded Metric Format lines.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

/// CloudWatch namespace of the bridge's metrics.
pub const METRIC_NAMESPACE: &str = "SentryVwoBridge";

/// Sends `tracing` events to stdout as JSON lines, at the level given by `RUST_LOG`
/// (or `AWS_LAMBDA_LOG_LEVEL`), `info` by default. Safe to call more than once.
pub fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// The EMF line counting one invocation of `function` that ended in `outcome`.
pub fn outcome_metric_line(function: &str, outcome: &str, at: SystemTime) -> String {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["function", "outcome"]],
                "Metrics": [{"Name": "Invocations", "Unit": "Count"}]
            }]
        },
        "function": function,
        "outcome": outcome,
        "Invocations": 1
    })
    .to_string()
}

/// Writes [`outcome_metric_line`] for now to stdout, where CloudWatch Logs turns it into a metric.
pub fn emit_outcome_metric(function: &str, outcome: &str) {
    let line = outcome_metric_line(function, outcome, SystemTime::now());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_follow_the_embedded_metric_format() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let line: serde_json::Value =
            serde_json::from_str(&outcome_metric_line("sentry-to-vwo", "toggled", at)).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], METRIC_NAMESPACE);
        assert_eq!(directive["Dimensions"][0], json!(["function", "outcome"]));
        assert_eq!(line["outcome"], "toggled");
        assert_eq!(line["Invocations"], 1);
    }
}
