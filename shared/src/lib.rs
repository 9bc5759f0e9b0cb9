//! Code shared by the bridge's Lambda functions: signatures, Sentry and VWO protocols,
//! secrets from Parameter Store, configuration and HTTP helpers.
//!
//! Each module has one job; the functions combine them.

pub mod config;
pub mod error;
pub mod http;
pub mod rate_gate;
pub mod runtime;
pub mod secrets;
pub mod sentry_flags;
pub mod sentry_hook;
pub mod signature;
pub mod telemetry;
pub mod upstream;
pub mod vwo;
pub mod vwo_hook;

pub use error::{Error, Result};

/// The shared AWS configuration from the standard chain (environment, profile, IMDS/Lambda).
///
/// `AWS_ENDPOINT_URL_SSM` and `AWS_ENDPOINT_URL_DYNAMODB` point clients at local stand-ins.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}
