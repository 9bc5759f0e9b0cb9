//! Code both of the bridge's Lambda functions use: signatures, the VWO client, the kill
//! switch's records (one writes them, the other reads them), secrets from Parameter Store, the
//! one TLS configuration, the common configuration and HTTP helpers.
//!
//! Each module has one job; the functions combine them. What only one function needs lives in
//! that function's crate (Sentry's webhooks in `sentry-to-vwo`; VWO's webhooks and Sentry's
//! change-tracking payload in `vwo-to-sentry`).

pub mod aws_http;
pub mod clock;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod gzip_json;
pub mod http;
pub mod https;
pub mod kill_record;
pub mod latest_change;
pub mod rate_gate;
pub mod runtime;
pub mod secrets;
pub mod settings_file;
pub mod signature;
pub mod state_table;
pub mod telemetry;
pub mod upstream;
pub mod vwo;
pub mod vwo_projects;

pub use error::{Error, Result};

/// Longest wait for one attempt of an AWS call (SSM, DynamoDB, SQS): they answer in
/// milliseconds; a hang must not eat the function's time.
pub const AWS_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest wait for one AWS call, the SDK's retries included: short enough that a cold start
/// whose secrets do not come still becomes ready well inside Lambda's 10 s init limit.
pub const AWS_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// The shared AWS configuration from the standard chain (environment, profile, IMDS/Lambda),
/// with [`AWS_ATTEMPT_TIMEOUT`] and [`AWS_OPERATION_TIMEOUT`] (the SDK's defaults bound only the
/// connect).
///
/// `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SQS` point clients
/// at local stand-ins.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_loader().load().await
}

/// The loader behind [`aws_config`], for callers that add settings of their own (an explicit
/// region or credentials): the bridge's timeouts and HTTP client ([`aws_http`]) already set.
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(aws_timeouts())
        .http_client(aws_http::sdk_http_client())
}

/// The timeouts every AWS client of the bridge uses.
pub fn aws_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(AWS_OPERATION_TIMEOUT)
        .build()
}
