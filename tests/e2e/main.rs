//! End-to-end tests of the bridge's built binaries, in one test binary (one link of the AWS
//! SDK instead of one per file, and one moto server for all of them): each module runs the real
//! function binaries under the Lambda Runtime API stand-in, against moto and the loopback VWO and
//! Sentry stand-ins, or checks `template.yaml` against the code.

use serde_json::Value;
use testkit::runtime_api::Outcome;

mod change_tracking;
mod close_the_loop;
mod kill_switch;
mod template;

/// The function's HTTP answer (status, JSON body); a function that did not answer fails the test.
fn response(outcome: Option<Outcome>) -> (u16, Value) {
    outcome.expect("the function answered in time").http()
}
