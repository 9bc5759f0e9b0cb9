//! Stage 5, apply or queue: the fast path applies the job (with the worker's own `apply`); what
//! it cannot complete goes on the toggle queue, or — without a queue — is an error.

use std::time::Duration;

use bridge_platform::clock::unix_millis;
use bridge_platform::{Error, Result};

use super::record::Recorded;
use crate::answer::{self, Handled};
use crate::app::App;
use crate::toggle::apply::{self, Applied};
use crate::toggle::job::ToggleJob;
use crate::toggle::queue::{ToggleQueue, MAX_DELAY};

/// Applies the recorded job, queueing it when VWO did not take it in time.
pub async fn apply_or_queue(app: &App, recorded: Recorded) -> Result<Handled> {
    let Recorded {
        job,
        owner,
        budget,
        ahead,
    } = recorded;
    let state = app.state();
    let attempt = apply::Attempt {
        budget,
        owner: &owner,
        ahead,
    };
    let applied = apply::apply(&app.vwo, app.token(), state, &job, attempt).await;
    match applied {
        Applied::Done(reply) => Ok(Handled::Toggled { job, reply }),
        Applied::Superseded { latest } => Ok(Handled::Ignored(answer::superseded(&job, latest))),
        Applied::Refused(e) => Err(e),
        Applied::Retry { after, error } => match app.queue() {
            Some(queue) => enqueue(queue, job, after.unwrap_or_default(), error).await,
            None => {
                tracing::error!(error = %error, feature = %job.target.feature, "toggle not completed and no queue is configured: it is lost");
                Err(error)
            }
        },
    }
}

/// Puts `job` on the queue for the worker, `delay` from now; `error` is why the fast path did
/// not complete it.
async fn enqueue(
    queue: &ToggleQueue,
    mut job: ToggleJob,
    delay: Duration,
    error: Error,
) -> Result<Handled> {
    if delay > MAX_DELAY {
        // SQS delays a message 900 s at most: the job carries the rest of the wait.
        job.not_before_ms = Some(unix_millis() + delay.as_millis() as u64);
    }
    if let Err(e) = queue.send(&job, delay).await {
        tracing::error!(error = %e, feature = %job.target.feature, environment = %job.target.environment, "KILL LOST: could not persist the toggle on the queue");
        return Err(Error::State(
            "the toggle could not be queued; it was not applied".into(),
        ));
    }
    Ok(Handled::Queued {
        job,
        retry_in_secs: delay.as_secs(),
        reason: error.to_string(),
    })
}
