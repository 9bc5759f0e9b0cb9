//! Lambda entry point of change tracking: build the app at cold start, then serve events.

// The handler's future is deep (settings read, DynamoDB lease, Sentry post) for the compiler's default.
#![recursion_limit = "256"]

use std::process::ExitCode;

use bridge_platform::runtime;
use vwo_to_sentry::config::Config;
use vwo_to_sentry::{handle, App};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let init = runtime::ready(Config::from_env, App::new, async |app: &App| {
        app.warm_up().await
    });
    runtime::serve(init, handle).await
}
