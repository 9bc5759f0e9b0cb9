//! Lambda entry point of the toggle worker: build the worker at cold start, then drain the
//! toggle queue's batches.

use std::process::ExitCode;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use sentry_to_vwo::worker::Worker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    bridge_shared::telemetry::init_logging();
    let worker = match Worker::from_env().await {
        Ok(worker) => worker,
        Err(error) => {
            bridge_shared::runtime::report_init_error(&error).await;
            return ExitCode::FAILURE;
        }
    };
    worker.warm_up().await;
    let worker = &worker;
    let served = lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, std::convert::Infallible>(worker.handle(event.payload).await)
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
