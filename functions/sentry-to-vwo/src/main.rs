//! Lambda entry point of the kill switch: build the app at cold start, then serve events.

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
