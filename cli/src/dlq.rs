//! `bridge dlq`: the kills the worker gave up on (retry horizon passed, or VWO refused them).

use sentry_to_vwo::toggle::job::ToggleJob;
use sentry_to_vwo::toggle::queue::ToggleQueue;

/// A queue at `url` through the standard AWS chain (`AWS_PROFILE`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL_SQS`).
async fn queue(url: &str) -> ToggleQueue {
    let aws = bridge_platform::aws::aws_config().await;
    ToggleQueue::new(aws_sdk_sqs::Client::new(&aws), url)
}

/// One line per dead-lettered kill: what it would have done, since when, and why it stopped.
pub async fn list(url: &str) -> bridge_platform::Result<Vec<String>> {
    let messages = queue(url).await.peek(10).await?;
    Ok(messages
        .into_iter()
        .map(|(_, body, reason)| {
            let reason = reason.unwrap_or_else(|| "no reason recorded".into());
            match serde_json::from_str::<ToggleJob>(&body) {
                Ok(job) => format!(
                    "{} in {} (account {}) → {}, accepted at {} (Unix), rule {:?}: {reason}",
                    job.target.feature,
                    job.target.environment,
                    job.target.account,
                    if job.enabled { "on" } else { "off" },
                    job.accepted_at,
                    job.rule.unwrap_or_default(),
                ),
                Err(_) => format!("unreadable job ({} bytes): {reason}", body.len()),
            }
        })
        .collect())
}

/// Moves the dead-lettered kills back to the toggle queue; returns how many.
pub async fn redrive(url: &str, to: &str) -> bridge_platform::Result<usize> {
    queue(url).await.redrive_to(&queue(to).await).await
}
