//! The kill switch's state in DynamoDB (the stack's state table): replay records, and per flag
//! a decision counter and a short lease, so that a later decision is never overtaken by an
//! earlier one, whether the fast path or the worker applies it.
//!
//! Items (key attribute `environment`, shared with change tracking's snapshots):
//! - `replay#<signature>`: one per accepted signed delivery, expiring (`expires_at`, the table's
//!   TTL attribute) with the signature's validity window;
//! - `toggled#…`: the last toggle VWO confirmed per flag, for change tracking
//!   (`bridge_state::kill_record`);
//! - `kill#…` (see [`crate::toggle::job::flag_key`]): `generation` (decisions accepted), `applied` (the
//!   last generation VWO confirmed), and while a toggle is in flight `holder`/`until_ms`.

use bridge_state::dynamo;
use bridge_state::keys::{self, EXPIRES_AT, PARTITION_KEY};
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use bridge_platform::clock::unix_millis as now_ms;
use bridge_platform::{Error, Result};
use bridge_state::kill_record::KillRecords;

/// How long flag records are kept after their last decision.
const FLAG_RECORD_DAYS: u64 = 30;

/// What happened when asking to apply a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lease {
    /// This decision is the flag's latest and nobody else is applying one: go.
    Acquired,
    /// A later decision for the flag was accepted: drop this one.
    Superseded {
        /// The flag's latest generation.
        latest: u64,
    },
    /// Another decision for the flag is being applied right now: try again shortly.
    Busy,
}

/// A decision counted by [`KillState::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Its generation (1, 2, ...).
    pub generation: u64,
    /// Whether the flag's lease was taken for it in the same write.
    pub leased: bool,
}

/// The kill switch's records in the state table.
#[derive(Clone, Debug)]
pub struct KillState {
    client: Client,
    table: String,
    records: KillRecords,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
) -> impl FnOnce(aws_sdk_dynamodb::error::SdkError<E, R>) -> Error + '_ {
    move |e| Error::State(format!("{what}: {}", DisplayErrorContext(&e)))
}

impl KillState {
    /// The records in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        KillState {
            records: KillRecords::new(client.clone(), table.clone()),
            client,
            table,
        }
    }

    /// An update of the flag's item.
    fn update(&self, flag_key: &str) -> UpdateItemFluentBuilder {
        dynamo::update_item(&self.client, &self.table, flag_key)
    }

    /// The records of confirmed toggles that change tracking reads (`toggled#…` items).
    pub fn records(&self) -> &KillRecords {
        &self.records
    }

    /// Opens the connection to DynamoDB (one read of a key that never exists), so that the first
    /// alert does not pay for it.
    pub async fn warm_up(&self) {
        if let Err(e) = self.generation("kill#warm-up").await {
            tracing::debug!(error = %e, "DynamoDB warm-up failed; the first alert will connect");
        }
    }

    /// Records a signed delivery as accepted, once: a second delivery with the same signature
    /// within `window` is a replay ([`Error::Replayed`]). `receipt` names this acceptance
    /// (unique per invocation): when the SDK retries a put whose answer was lost, the retry
    /// finds the record already there, and the receipt in it tells that it is ours, not a replay.
    pub async fn accept_once(
        &self,
        signature: &str,
        window: Duration,
        receipt: &str,
    ) -> Result<()> {
        let key = keys::replay(signature);
        let expires = now_ms() / 1000 + window.as_secs() + 60;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, s(&key))
            .item(EXPIRES_AT, n(expires))
            .item("accepted_by", s(receipt))
            .condition_expression("attribute_not_exists(environment)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                if self.accepted_by(&key).await?.as_deref() == Some(receipt) {
                    Ok(())
                } else {
                    Err(Error::Replayed)
                }
            }
            Err(e) => Err(failed("PutItem (replay)")(e)),
        }
    }

    /// The receipt in a replay record (strongly consistent read).
    async fn accepted_by(&self, key: &str) -> Result<Option<String>> {
        let item = dynamo::get_item(&self.client, &self.table, key, "replay").await?;
        Ok(item.and_then(|item| item.get("accepted_by")?.as_s().ok().cloned()))
    }

    /// Counts a new decision for the flag; returns its generation (1, 2, ...).
    pub async fn next_generation(&self, flag_key: &str) -> Result<u64> {
        let output = self
            .update(flag_key)
            .update_expression("ADD generation :one SET expires_at = :expires")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(now_ms() / 1000 + FLAG_RECORD_DAYS * 86_400))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(failed("UpdateItem (generation)"))?;
        output
            .attributes
            .and_then(|a| a.get("generation")?.as_n().ok()?.parse().ok())
            .ok_or_else(|| Error::State("UpdateItem (generation): no generation returned".into()))
    }

    /// Counts a new decision for the flag and, in the same write, takes the flag for `owner`
    /// for `hold` unless another decision holds it: one round trip where
    /// [`KillState::next_generation`] and [`KillState::lease`] take two. When the flag is held,
    /// the decision is counted all the same (a later decision always overtakes an earlier one)
    /// and comes back not leased.
    pub async fn decide(&self, flag_key: &str, owner: &str, hold: Duration) -> Result<Decision> {
        let now = now_ms();
        let result = self
            .update(flag_key)
            .update_expression(
                "ADD generation :one SET expires_at = :expires, holder = :owner, until_ms = :until",
            )
            .condition_expression(
                "attribute_not_exists(holder) OR until_ms < :now OR holder = :owner",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(now / 1000 + FLAG_RECORD_DAYS * 86_400))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(now + hold.as_millis() as u64))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .and_then(|a| a.get("generation")?.as_n().ok()?.parse().ok())
                .map(|generation| Decision {
                    generation,
                    leased: true,
                })
                .ok_or_else(|| {
                    Error::State("UpdateItem (decision): no generation returned".into())
                }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Decision {
                    generation: self.next_generation(flag_key).await?,
                    leased: false,
                })
            }
            Err(e) => Err(failed("UpdateItem (decision)")(e)),
        }
    }

    /// Takes the flag for `owner` for `hold`, if `generation` is still its latest decision and
    /// no one else holds it.
    pub async fn lease(
        &self,
        flag_key: &str,
        generation: u64,
        owner: &str,
        hold: Duration,
    ) -> Result<Lease> {
        let now = now_ms();
        let result = self
            .update(flag_key)
            .update_expression("SET holder = :owner, until_ms = :until")
            .condition_expression(
                "generation = :generation AND (attribute_not_exists(holder) OR until_ms < :now OR holder = :owner)",
            )
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(now + hold.as_millis() as u64))
            .expression_attribute_values(":generation", n(generation))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Lease::Acquired),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                let latest = self.generation(flag_key).await?;
                Ok(if latest > generation {
                    Lease::Superseded { latest }
                } else {
                    Lease::Busy
                })
            }
            Err(e) => Err(failed("UpdateItem (lease)")(e)),
        }
    }

    /// The flag's latest generation (0 if none).
    pub async fn generation(&self, flag_key: &str) -> Result<u64> {
        let item = dynamo::get_item(&self.client, &self.table, flag_key, "flag").await?;
        Ok(item
            .and_then(|item| item.get("generation")?.as_n().ok()?.parse().ok())
            .unwrap_or_default())
    }

    /// Drops `owner`'s lease; `applied` records the generation VWO confirmed, if any.
    pub async fn release(&self, flag_key: &str, owner: &str, applied: Option<u64>) -> Result<()> {
        let mut update = self
            .update(flag_key)
            .condition_expression("holder = :owner")
            .expression_attribute_values(":owner", s(owner));
        update = match applied {
            Some(generation) => update
                .update_expression("SET applied = :applied REMOVE holder, until_ms")
                .expression_attribute_values(":applied", n(generation)),
            None => update.update_expression("REMOVE holder, until_ms"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            // The lease expired and someone else took it: nothing of ours to drop.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(failed("UpdateItem (release)")(e)),
        }
    }
}
