//! Lambda entry point of change tracking: build the app at cold start, then serve events.

use std::process::ExitCode;

use lambda_http::{service_fn, Request};
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
    let app = &app;
    let served = lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(handle(app, req).await)
    }))
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}
