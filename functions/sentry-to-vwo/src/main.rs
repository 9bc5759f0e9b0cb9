//! Lambda entry point of the kill switch: build the app at cold start, then serve events.

use std::process::ExitCode;

use bridge_shared::runtime;
use sentry_to_vwo::{handle, App};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    runtime::run(App::ready(), async |app: &App| {
        runtime::serve_function_url(app, handle).await
    })
    .await
}
