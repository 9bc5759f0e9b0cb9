//! Structured logs (one JSON object per line) and CloudWatch Embedded Metric Format lines.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// CloudWatch namespace of the bridge's metrics.
pub const METRIC_NAMESPACE: &str = "SentryVwoBridge";

/// Sends `tracing` events to stdout, following the Lambda runtime's conventions (as
/// `lambda_runtime`'s default subscriber does):
///
/// - level: `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls), else
///   `RUST_LOG`, else `info`. A plain level (`debug`, `WARN`, `fatal` as `error`) is a cheap
///   level filter; anything else (`sentry_to_vwo=debug,aws_config=warn`) is parsed as
///   `EnvFilter` directives, and an unparsable value falls back to `info`;
/// - format: one JSON object per line, unless `AWS_LAMBDA_LOG_FORMAT` is `Text`.
///
/// Safe to call more than once.
pub fn init_logging() {
    let spec = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let _already_set = match (level_filter(&spec), text) {
        (Some(level), false) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_max_level(level)
            .try_init(),
        (Some(level), true) => builder.with_max_level(level).try_init(),
        (None, false) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(env_filter(&spec))
            .try_init(),
        (None, true) => builder.with_env_filter(env_filter(&spec)).try_init(),
    };
}

/// `spec` as a single level (empty means `info`; Lambda's `FATAL` means `error`), or `None`
/// when it is a list of directives.
fn level_filter(spec: &str) -> Option<LevelFilter> {
    match spec.trim().to_ascii_lowercase().as_str() {
        "" => Some(LevelFilter::INFO),
        "fatal" => Some(LevelFilter::ERROR),
        other => other.parse().ok(),
    }
}

/// `spec` as `EnvFilter` directives; `info` when they do not parse.
fn env_filter(spec: &str) -> EnvFilter {
    EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"))
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
    fn a_plain_level_is_a_level_filter_and_directives_are_not() {
        assert_eq!(level_filter(""), Some(LevelFilter::INFO));
        assert_eq!(level_filter("DEBUG"), Some(LevelFilter::DEBUG));
        assert_eq!(level_filter("FATAL"), Some(LevelFilter::ERROR));
        assert_eq!(level_filter("warn"), Some(LevelFilter::WARN));
        assert_eq!(level_filter("sentry_to_vwo=debug,warn"), None);
        assert_eq!(env_filter("not a [valid directive").to_string(), "info");
    }

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
