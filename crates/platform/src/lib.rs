//! What every function of the bridge stands on, whatever outside system it talks to: the Lambda
//! runtime, secrets from Parameter Store, telemetry, the one error type, the clock, checks of
//! incoming requests, the one TLS configuration, the AWS SDK's configuration and capped reads of
//! upstream answers.
//!
//! Nothing here knows VWO's or Sentry's formats: those live in `bridge-vwo` and `bridge-sentry`,
//! and the state table's records in `bridge-state`.

pub mod aws;
pub mod capped_body;
pub mod clock;
pub mod config;
pub mod error;
pub mod frame;
pub mod request;
pub mod runtime;
pub mod secrets;
pub mod signature;
pub mod telemetry;
pub mod tls;

pub use error::{Error, Result};
