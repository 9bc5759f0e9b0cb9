//! Lambda entry point of the kill switch: build the app at cold start, then serve events.

// The alert pipeline's futures (the deferred decision's stages among them) nest deeper than the
// default limit when the runtime's future is laid out in a release build.
#![recursion_limit = "256"]

use std::process::ExitCode;

use bridge_platform::runtime;
use sentry_to_vwo::config::Config;
use sentry_to_vwo::{handle, App};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let init = runtime::ready(Config::from_env, App::new, async |app: &App| {
        app.warm_up().await
    });
    runtime::serve(init, handle).await
}
