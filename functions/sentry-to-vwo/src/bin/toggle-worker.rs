//! Lambda entry point of the toggle worker: build the worker at cold start, then drain the
//! toggle queue's batches.

// The worker holds the kill switch's app (for deferred alerts): its types nest deeper than
// the default limit when the runtime's future is laid out.
#![recursion_limit = "256"]

use std::process::ExitCode;

use aws_lambda_events::sqs::SqsEvent;
use bridge_platform::runtime;
use lambda_runtime::{service_fn, LambdaEvent};
use sentry_to_vwo::config::WorkerConfig;
use sentry_to_vwo::toggle::worker::Worker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let ready = runtime::ready(
        WorkerConfig::from_env,
        Worker::new,
        async |worker: &Worker| worker.warm_up().await,
    );
    runtime::run(ready, async |worker: &Worker| {
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            Ok::<_, std::convert::Infallible>(worker.handle(event.payload).await)
        }))
        .await
    })
    .await
}
