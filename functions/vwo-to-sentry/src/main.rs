//! Lambda entry point of change tracking: build the app at cold start, then serve events.

// The handler's future is deep (settings read, DynamoDB lease, Sentry post) for the compiler's default.
#![recursion_limit = "256"]

use std::process::ExitCode;

use vwo_to_sentry::{handle, App};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    bridge_shared::telemetry::init_logging();
    let app = match App::from_env().await {
        Ok(app) => app,
        Err(error) => {
            bridge_shared::runtime::report_init_error(&error).await;
            return ExitCode::FAILURE;
        }
    };
    app.warm_up().await;
    let served = bridge_shared::runtime::serve_function_url(&app, handle).await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}
