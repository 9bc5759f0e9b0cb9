//! Lambda entry point of the kill switch: build the app at cold start, then serve events.

use std::process::ExitCode;

use sentry_to_vwo::{handle, App};

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
