//! The durable toggle queue (SQS) and its dead-letter queue.
//!
//! A standard queue: ordering per flag comes from the generation check in
//! [`crate::toggle::kill_state`], which also covers the fast path (a FIFO queue could not order a
//! toggle that never went through it), and a standard queue allows a per-message delay (the
//! 60 s VWO asks for after a 429 or 503).

use std::time::Duration;

use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use bridge_platform::{Error, Result};

use crate::toggle::job::ToggleJob;

/// SQS's largest per-message delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// SQS's largest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// A queue of [`ToggleJob`]s.
#[derive(Clone, Debug)]
pub struct ToggleQueue {
    client: Client,
    url: String,
}

fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &'static str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> Error {
    move |e| Error::State(format!("{what}: {}", DisplayErrorContext(&e)))
}

impl ToggleQueue {
    /// The queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        ToggleQueue {
            client,
            url: url.into(),
        }
    }

    /// Puts `job` on the queue, visible after `delay` (at most [`MAX_DELAY`]).
    pub async fn send(&self, job: &ToggleJob, delay: Duration) -> Result<()> {
        self.send_with(job, delay, None).await
    }

    /// Puts `job` on the queue with a `reason` attribute (the dead-letter queue's explanation).
    pub async fn send_with(
        &self,
        job: &ToggleJob,
        delay: Duration,
        reason: Option<&str>,
    ) -> Result<()> {
        let body =
            serde_json::to_string(job).map_err(|e| Error::State(format!("encode job: {e}")))?;
        self.send_body(&body, delay, reason).await
    }

    /// Puts a message that is not a job (a deferred alert's) on the queue, visible after `delay`
    /// (at most [`MAX_DELAY`]).
    pub async fn send_text(&self, body: &str, delay: Duration) -> Result<()> {
        self.send_body(body, delay, None).await
    }

    /// Puts a body that is not a job (unreadable) on the queue with a `reason`.
    pub async fn send_raw(&self, body: &str, reason: &str) -> Result<()> {
        let body = if body.is_empty() { "(empty)" } else { body };
        self.send_body(body, Duration::ZERO, Some(reason)).await
    }

    async fn send_body(&self, body: &str, delay: Duration, reason: Option<&str>) -> Result<()> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay.min(MAX_DELAY).as_secs() as i32);
        if let Some(reason) = reason {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(reason.chars().take(500).collect::<String>())
                .build()
                .map_err(|e| Error::State(format!("message attribute: {e}")))?;
            request = request.message_attributes("reason", value);
        }
        request.send().await.map_err(failed("SendMessage"))?;
        Ok(())
    }

    /// Keeps a received message invisible for `wait` (at most [`MAX_VISIBILITY`]): its next
    /// attempt comes no sooner.
    pub async fn retry_after(&self, receipt_handle: &str, wait: Duration) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(wait.min(MAX_VISIBILITY).as_secs() as i32)
            .send()
            .await
            .map_err(failed("ChangeMessageVisibility"))?;
        Ok(())
    }

    /// Messages waiting, up to `max` (for operators: listing the dead-letter queue).
    pub async fn peek(&self, max: i32) -> Result<Vec<(String, String, Option<String>)>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(failed("ReceiveMessage"))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("reason")?.string_value.clone());
                (
                    m.receipt_handle.unwrap_or_default(),
                    m.body.unwrap_or_default(),
                    reason,
                )
            })
            .collect())
    }

    /// Receives up to `max` messages (waiting up to `wait` for the first), shaped as Lambda's
    /// SQS event source hands them to the worker.
    pub async fn receive(&self, max: i32, wait: Duration) -> Result<Vec<SqsMessage>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            // A long poll takes as long as it waits: give the call that much more time.
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default().timeout_config(
                    aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                        .operation_attempt_timeout(wait + bridge_platform::aws::AWS_ATTEMPT_TIMEOUT)
                        .operation_timeout(wait + bridge_platform::aws::AWS_OPERATION_TIMEOUT)
                        .build(),
                ),
            )
            .send()
            .await
            .map_err(failed("ReceiveMessage"))?;
        output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attributes: std::collections::HashMap<String, String> = m
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v))
                    .collect();
                let event = serde_json::json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "eventSource": "aws:sqs",
                });
                serde_json::from_value(event).map_err(|e| Error::State(format!("SQS message: {e}")))
            })
            .collect()
    }

    /// Moves every readable job from this (dead-letter) queue back to `target`, its retry
    /// horizon starting afresh; returns how many moved. Jobs overtaken by a later decision are
    /// dropped by the worker as usual. Unreadable bodies stay where they are.
    pub async fn redrive_to(&self, target: &ToggleQueue) -> Result<usize> {
        let mut moved = 0;
        loop {
            let batch = self.receive(10, Duration::ZERO).await?;
            if batch.is_empty() {
                return Ok(moved);
            }
            let mut readable = 0;
            for message in batch {
                let body = message.body.as_deref().unwrap_or_default();
                let Ok(mut job) = serde_json::from_str::<ToggleJob>(body) else {
                    continue;
                };
                readable += 1;
                job.accepted_at = bridge_platform::clock::unix_secs();
                target.send(&job, Duration::ZERO).await?;
                if let Some(receipt) = message.receipt_handle.as_deref() {
                    self.delete(receipt).await?;
                }
                moved += 1;
            }
            if readable == 0 {
                return Ok(moved);
            }
        }
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(failed("DeleteMessage"))?;
        Ok(())
    }
}
