//! The kill switch's integration tests, in one test binary (one link of the AWS SDK, one moto
//! server for all of them):
//! - `handler`: the handler called directly, secrets in moto's SSM, the VWO stand-in;
//! - `bad_requests`: hostile and malformed requests get their 4xx and reach nobody;
//! - `test_notifications`: Sentry's "Send Test Notification" never switches a flag;
//! - `token_waits`: VWO's waits are the token's, across flags, callers and re-deliveries;
//! - `drop_downs`: the alert rule's select fields (environments, flags, rules) and the save check;
//! - `dry_runs`: per rule and for the whole function: nothing switched, the answer says what;
//! - `guard_rails`: KILLABLE_FLAGS and ENABLE_ALLOWED_IN, at firing and at saving;
//! - `workflow_engine`: the workflow engine's issue, metric and activity alerts;
//! - `durable`: the handler, the toggle queue and the worker against moto's SSM, DynamoDB, SQS;
//! - `e2e`: the real binaries (`sentry-to-vwo`, `toggle-worker`) under the Lambda Runtime API
//!   stand-in. CI runs `e2e::` once more against the arm64 artifacts, under qemu
//!   (`BRIDGE_E2E_BIN_DIR`, `BRIDGE_E2E_RUNNER`: see `testkit::process`).
//!
//! Every test asserts what Sentry would see (status, body) and what VWO received.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

mod bad_requests;
mod deferred;
mod drop_downs;
mod dry_runs;
mod durable;
mod e2e;
mod flag_list;
mod guard_rails;
mod handler;
mod suspect_evidence;
mod suspects;
mod test_notifications;
mod token_waits;
mod workflow_engine;

use serde_json::Value;
use testkit::runtime_api::Outcome;

/// The moto server of this test binary, with `AWS_*` exported for the SDK's standard chain.
fn moto() -> &'static testkit::moto::Moto {
    testkit::moto::shared_with_env()
}

/// The AWS configuration the functions load, or the same with every service reached through
/// `endpoint` (a proxy in front of moto that loses answers or goes down on demand).
async fn aws_via(endpoint: Option<&str>) -> aws_config::SdkConfig {
    match endpoint {
        Some(endpoint) => {
            bridge_platform::aws::aws_config_loader()
                .endpoint_url(endpoint)
                .load()
                .await
        }
        None => bridge_platform::aws::aws_config().await,
    }
}

/// The function's HTTP answer (status, JSON body); a function that did not answer fails the test.
fn response(outcome: Option<Outcome>) -> (u16, Value) {
    outcome.expect("the function answered in time").http()
}
