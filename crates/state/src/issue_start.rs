//! When a Sentry issue began, as Sentry's `issue.created` webhook said (`data.issue.firstSeen`):
//! the kill switch keeps it per issue id for [`KEEP`], so that a `@suspect` alert of the issue
//! judges the suspect against the issue's start without reading Sentry's API.
//!
//! Items: [`keys::issue_start`] with `first_seen` (Unix seconds) and `expires_at`; and one
//! [`keys::ISSUE_WEBHOOKS`] item whose `received_at` says when the last `issue.created` came (the
//! rule's save check and `bridge check` tell from it whether issue webhooks reach the kill
//! switch).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::dynamo::{describe, get_item};
use crate::keys::{self, EXPIRES_AT, PARTITION_KEY};
use bridge_platform::{Error, Result};

/// How long an issue's start is kept: Sentry's default event retention.
pub const KEEP: Duration = Duration::from_secs(90 * 24 * 3600);

/// The issues' starts in the state table.
#[derive(Clone, Debug)]
pub struct IssueStarts {
    client: Client,
    table: String,
}

impl IssueStarts {
    /// The starts in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        IssueStarts {
            client,
            table: table.into(),
        }
    }

    /// Keeps that issue `issue_id` began at `first_seen` (Unix seconds), and that an
    /// `issue.created` came at `now`.
    pub async fn put(&self, issue_id: &str, first_seen: i64, now: u64) -> Result<()> {
        let expires_at = (now + KEEP.as_secs()).to_string();
        let item = HashMap::from([
            (PARTITION_KEY.to_owned(), s(keys::issue_start(issue_id))),
            ("first_seen".to_owned(), n(first_seen.to_string())),
            (EXPIRES_AT.to_owned(), n(expires_at.clone())),
        ]);
        let received = HashMap::from([
            (PARTITION_KEY.to_owned(), s(keys::ISSUE_WEBHOOKS.to_owned())),
            ("received_at".to_owned(), n(now.to_string())),
            (EXPIRES_AT.to_owned(), n(expires_at)),
        ]);
        for item in [item, received] {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| Error::State(format!("PutItem (issue start): {}", describe(&e))))?;
        }
        Ok(())
    }

    /// When issue `issue_id` began (Unix seconds), if an `issue.created` said so and it has not
    /// expired at `now`.
    pub async fn get(&self, issue_id: &str, now: u64) -> Result<Option<i64>> {
        let key = keys::issue_start(issue_id);
        let item = get_item(&self.client, &self.table, &key, "issue start").await?;
        Ok(item.and_then(|item| {
            let expires_at: u64 = item.get(EXPIRES_AT)?.as_n().ok()?.parse().ok()?;
            (now < expires_at).then_some(())?;
            item.get("first_seen")?.as_n().ok()?.parse().ok()
        }))
    }

    /// When the last `issue.created` came (Unix seconds), if one did within [`KEEP`].
    pub async fn last_received(&self) -> Result<Option<u64>> {
        let item = get_item(
            &self.client,
            &self.table,
            keys::ISSUE_WEBHOOKS,
            "issue webhooks",
        )
        .await?;
        Ok(item.and_then(|item| item.get("received_at")?.as_n().ok()?.parse().ok()))
    }
}

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

fn n(value: String) -> AttributeValue {
    AttributeValue::N(value)
}
