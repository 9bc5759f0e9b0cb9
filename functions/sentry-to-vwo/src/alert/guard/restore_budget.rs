//! No flapping: a metric alert that goes critical → resolved → critical every few minutes must
//! not flip a flag on and off all day. At most `MAX_RESTORES_PER_DAY` automatic restores per flag
//! (account, environment, feature) in any rolling 24 hours; after that the flag stays off until a
//! person turns it on.
//!
//! State: one item per flag in the state table (`restores#<flag key>`), the times of the
//! restores accepted in the last 24 hours (`at_ms`), advanced with a conditional write on its
//! `version`, so concurrent restores of one flag cannot both take the last one.

use bridge_state::dynamo;
use bridge_state::keys::{self, EXPIRES_AT, PARTITION_KEY};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use bridge_platform::clock::unix_millis;
use bridge_platform::{Error, Result};
use bridge_state::dynamo::condition;

/// The rolling window.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The restore counters in the state table.
#[derive(Clone, Debug)]
pub struct RestoreBudget {
    client: Client,
    table: String,
    max: u32,
}

/// The restores of the window, kept: those newer than `now - WINDOW` (pure: unit-tested).
fn recent(times: &[u64], now: u64) -> Vec<u64> {
    let since = now.saturating_sub(WINDOW.as_millis() as u64);
    times.iter().copied().filter(|t| *t > since).collect()
}

impl RestoreBudget {
    /// At most `max` restores per flag in 24 hours, counted in `table`.
    pub fn new(client: Client, table: impl Into<String>, max: u32) -> Self {
        RestoreBudget {
            client,
            table: table.into(),
            max,
        }
    }

    /// Counts one restore of `flag_key` now, or says why it may not be done.
    pub async fn take(&self, flag_key: &str) -> Result<Option<String>> {
        let key = keys::restores(flag_key);
        for _ in 0..5 {
            let now = unix_millis();
            let item = dynamo::get_item(&self.client, &self.table, &key, "restore count")
                .await?
                .unwrap_or_default();
            let version: u64 = item
                .get("version")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let times: Vec<u64> = item
                .get("at_ms")
                .and_then(|v| v.as_l().ok())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_n().ok()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let mut kept = recent(&times, now);
            if kept.len() >= self.max as usize {
                return Ok(Some(format!(
                    "restored {} times in the last 24 hours (MAX_RESTORES_PER_DAY={}): the flag stays off; a person must turn it on",
                    kept.len(),
                    self.max
                )));
            }
            kept.push(now);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PARTITION_KEY, AttributeValue::S(key.clone()))
                .item("version", AttributeValue::N((version + 1).to_string()))
                .item(
                    "at_ms",
                    AttributeValue::L(
                        kept.iter()
                            .map(|t| AttributeValue::N(t.to_string()))
                            .collect(),
                    ),
                )
                .item(
                    EXPIRES_AT,
                    AttributeValue::N((now / 1000 + WINDOW.as_secs() + 3600).to_string()),
                )
                .condition_expression("attribute_not_exists(version) OR version = :version")
                .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
                .send()
                .await;
            // Another restore of the flag was counted meanwhile: read again.
            if condition("restore count", result)? {
                return Ok(None);
            }
        }
        Err(Error::Busy(
            "other restores of this flag are being counted".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_restores_of_the_last_24_hours_count() {
        let now = 10 * 24 * 3600 * 1000;
        let day = 24 * 3600 * 1000;
        let times = [now - day - 1, now - day, now - day + 1, now - 1000];
        assert_eq!(recent(&times, now), vec![now - day + 1, now - 1000]);
        assert!(recent(&[], now).is_empty());
    }
}
