//! Change tracking's integration tests, in one test binary (one link of the AWS SDK, one moto
//! server for all of them):
//! - `handler`: the handler called directly, against moto (SSM, DynamoDB) and the VWO and Sentry
//!   stand-ins (the Sentry one verifies signature and schema);
//! - `e2e`: the real `vwo-to-sentry` binary under the Lambda Runtime API stand-in. CI runs
//!   `e2e::` once more against the arm64 artifact, under qemu (`BRIDGE_E2E_BIN_DIR`,
//!   `BRIDGE_E2E_RUNNER`: see `testkit::process`);
//! - `close_the_loop`: the kill switch (its handler, in this process) and the real change-tracking
//!   binary sharing one state table: Sentry's audit log names the alert rule;
//! - `rule_kill`: the kill switch pauses one rule, resumes it, and the change is the rule's;
//! - `token_budget`: both handlers on one token at VWO's 1 request/s: kills first, no 429.
//!
//! Every test asserts what Sentry would see and what VWO received.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

mod both;
mod close_the_loop;
mod e2e;
mod handler;
mod latest_changes;
mod rule_kill;
mod token_budget;

use serde_json::Value;
use testkit::runtime_api::Outcome;

/// The moto server of this test binary, with `AWS_*` exported for the SDK's standard chain.
fn moto() -> &'static testkit::moto::Moto {
    testkit::moto::shared_with_env()
}

/// The function's HTTP answer (status, JSON body); a function that did not answer fails the test.
fn response(outcome: Option<Outcome>) -> (u16, Value) {
    outcome.expect("the function answered in time").http()
}
