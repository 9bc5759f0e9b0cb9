//! One rate limit per VWO token across every container: VWO allows 1 request per second per
//! token, and each warm Lambda container pacing itself would let N containers send N per second.
//!
//! Each request first reserves the next free slot in one DynamoDB item
//! (`environment = "ratelimit#<token parameter>"`, attribute `next_ms`): a conditional write
//! moves `next_ms` one interval past now if it is not in the future; otherwise the caller waits
//! until `next_ms` and tries again, or gives up at its deadline.

use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::time::Instant;

use crate::clock::unix_millis as now_ms;
use crate::error::{Error, Result};

/// Prefix of the gate's item key in the state table.
pub const KEY_PREFIX: &str = "ratelimit#";

/// A shared "at most one request per interval" gate.
#[derive(Clone, Debug)]
pub struct RateGate {
    client: Client,
    table: String,
    key: String,
    interval: Duration,
}

impl RateGate {
    /// A gate named `name` (the token's parameter name) in `table`, one request per `interval`.
    pub fn new(client: Client, table: impl Into<String>, name: &str, interval: Duration) -> Self {
        RateGate {
            client,
            table: table.into(),
            key: format!("{KEY_PREFIX}{name}"),
            interval,
        }
    }

    /// Waits for this caller's slot. Fails with [`Error::RateLimited`] (no status) when the slot
    /// would come after `deadline`, and with [`Error::State`] when DynamoDB fails.
    pub async fn reserve(&self, deadline: Instant) -> Result<()> {
        loop {
            let now = now_ms();
            let next = now + self.interval.as_millis() as u64;
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("environment", AttributeValue::S(self.key.clone()))
                .update_expression("SET next_ms = :next, expires_at = :expires")
                .condition_expression("attribute_not_exists(next_ms) OR next_ms <= :now")
                .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N((next / 1000 + 3600).to_string()),
                )
                .send()
                .await;
            let taken_until = match result {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    self.next_free().await?
                }
                Err(e) => {
                    return Err(Error::State(format!(
                        "rate gate: {}",
                        DisplayErrorContext(&e)
                    )))
                }
            };
            let wait = Duration::from_millis(taken_until.saturating_sub(now_ms()));
            if Instant::now() + wait > deadline {
                return Err(Error::RateLimited {
                    service: "VWO",
                    status: None,
                    retry_after: Some(wait.max(Duration::from_secs(1))),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// When the gate's current slot ends (milliseconds since the epoch).
    async fn next_free(&self) -> Result<u64> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("environment", AttributeValue::S(self.key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::State(format!("rate gate: {}", DisplayErrorContext(&e))))?;
        Ok(output
            .item
            .and_then(|item| item.get("next_ms")?.as_n().ok()?.parse().ok())
            .unwrap_or_default())
    }
}
