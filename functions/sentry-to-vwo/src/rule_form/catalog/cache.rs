//! The catalog's cache: VWO's lists (the workspace's environments, an environment's flags), kept in
//! the state table for every container (the drop-downs, the guard rails and the save check read
//! them): however many requests arrive, each list is read from VWO at most once per [`Ttl`]
//! across the deployment.
//!
//! Item `options#<account>#<list>` (same table and key as the kill switch's other state):
//! - `data`: the list, gzip-compressed JSON (binary); `fetched_ms`: when it was read;
//! - `attempted_ms`: when a container last set out to read it. A container reads VWO only after
//!   taking this with a conditional write (`attempted_ms` older than the TTL), so one does and
//!   the others serve the previous list, or wait briefly for the new one;
//! - `expires_at`: DynamoDB TTL, a day after the last read.
//!
//! A read that never reached VWO (the rate gate's slot went to a kill) gives its turn back at
//! once; any other failure keeps it until the TTL is over (VWO asks for a minute's wait after a
//! 429 anyway), and the last list read, however old, is served meanwhile.

use bridge_state::dynamo;
use bridge_state::keys;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use bridge_platform::clock::unix_millis;
use bridge_platform::{Error, Result};
use bridge_state::dynamo::condition;
use bridge_state::gzip_json;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The most compressed bytes one list keeps (DynamoDB refuses items over 400 KB). About 15,000
/// flags with two rules each.
pub const MAX_DATA_BYTES: usize = 350 * 1024;

/// How long a container waits for a list another container is reading.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(3);

/// How often it looks while it waits.
const POLL: Duration = Duration::from_millis(200);

/// How long a list is served before it is read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl(pub Duration);

/// The environments change rarely: read once every 10 minutes.
pub const ENVIRONMENTS_TTL: Ttl = Ttl(Duration::from_secs(600));

/// An environment's flags and rules: read at most once a minute.
pub const FLAGS_TTL: Ttl = Ttl(Duration::from_secs(60));

/// The shared cache.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    client: Client,
    table: String,
}

/// A list as served, and how old it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Cached<T> {
    /// The list.
    pub value: T,
    /// Read from VWO this long ago.
    pub age: Duration,
}

struct Item {
    data: Option<Vec<u8>>,
    fetched_ms: u64,
    attempted_ms: Option<u64>,
}

impl CatalogCache {
    /// A cache in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        CatalogCache {
            client,
            table: table.into(),
        }
    }

    /// Change tracking's snapshots, kept in the same table.
    pub fn tracked(&self) -> super::Tracked {
        super::Tracked::new(self.client.clone(), self.table.clone())
    }

    /// The list named `key` as last read, however old; `None` when none was read. Never reads
    /// VWO.
    pub async fn peek<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let item = self.read(&keys::options(key)).await?;
        Ok(cached::<T>(&item, unix_millis()).map(|found| found.value))
    }

    /// The list named `key` (e.g. `654321#flags#11`): the cached one while it is fresh, else
    /// read with `load` (given the last list read, if any) by this container if it is its
    /// turn, else the last one read (or, when there is none, the one another container is
    /// reading, waited for briefly).
    pub async fn get<T, F, Fut>(&self, key: &str, ttl: Ttl, load: F) -> Result<Cached<T>>
    where
        T: Serialize + DeserializeOwned + Clone,
        F: FnOnce(Option<T>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let key = keys::options(key);
        let now = unix_millis();
        let item = self.read(&key).await?;
        let stale = match cached::<T>(&item, now) {
            Some(found) if found.age < ttl.0 => return Ok(found),
            other => other,
        };
        if self.take_turn(&key, now, ttl).await? {
            match load(stale.as_ref().map(|s| s.value.clone())).await {
                Ok(value) => {
                    self.store(&key, &value, now).await;
                    return Ok(Cached {
                        value,
                        age: Duration::ZERO,
                    });
                }
                Err(error) => {
                    if matches!(error, Error::SlotBusy { .. }) {
                        self.give_back(&key, now, item.attempted_ms).await;
                    }
                    return match stale {
                        Some(stale) => {
                            tracing::warn!(list = %key, error = %error, age_secs = stale.age.as_secs(), "VWO could not be read: serving the last list");
                            Ok(stale)
                        }
                        None => Err(error),
                    };
                }
            }
        }
        if let Some(stale) = stale {
            return Ok(stale);
        }
        // Another container is reading the first list: wait for it a little.
        let started = tokio::time::Instant::now();
        while started.elapsed() < WAIT_FOR_OTHER {
            tokio::time::sleep(POLL).await;
            if let Some(found) = cached(&self.read(&key).await?, unix_millis()) {
                return Ok(found);
            }
        }
        Err(Error::Busy(
            "VWO's list is being read; open the drop-down again in a moment".into(),
        ))
    }

    async fn read(&self, key: &str) -> Result<Item> {
        let item = dynamo::get_item(&self.client, &self.table, key, "options cache")
            .await?
            .unwrap_or_default();
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        Ok(Item {
            data: item
                .get("data")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec()),
            fetched_ms: number("fetched_ms").unwrap_or_default(),
            attempted_ms: number("attempted_ms"),
        })
    }

    /// Takes this container's turn to read VWO: only one per TTL across the deployment.
    async fn take_turn(&self, key: &str, now: u64, ttl: Ttl) -> Result<bool> {
        let since = now.saturating_sub(ttl.0.as_millis() as u64);
        let result = dynamo::update_item(&self.client, &self.table, key)
            .update_expression("SET attempted_ms = :now, expires_at = :expires")
            .condition_expression("attribute_not_exists(attempted_ms) OR attempted_ms <= :since")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":since", AttributeValue::N(since.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires(now)))
            .send()
            .await;
        condition("options cache (take the turn)", result)
    }

    /// A read that never reached VWO gives its turn back (best effort).
    async fn give_back(&self, key: &str, now: u64, previous: Option<u64>) {
        let result = dynamo::update_item(&self.client, &self.table, key)
            .update_expression("SET attempted_ms = :previous")
            .condition_expression("attempted_ms = :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(
                ":previous",
                AttributeValue::N(previous.unwrap_or_default().to_string()),
            )
            .send()
            .await;
        if let Err(e) = condition("options cache (give the turn back)", result) {
            tracing::warn!(error = %e, "could not give the options read's turn back");
        }
    }

    /// Keeps a list read from VWO (best effort: this request is answered in any case).
    async fn store<T: Serialize>(&self, key: &str, value: &T, now: u64) {
        let data = match gzip_json::encode(value) {
            Ok(data) if data.len() <= MAX_DATA_BYTES => data,
            Ok(data) => {
                tracing::warn!(list = %key, kb = data.len() / 1024, "the list is too large to share between containers; each reads it once per TTL");
                return;
            }
            Err(e) => {
                tracing::warn!(list = %key, error = %e, "could not encode the list");
                return;
            }
        };
        let result = dynamo::update_item(&self.client, &self.table, key)
            .update_expression("SET #data = :data, fetched_ms = :now, expires_at = :expires")
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":data", AttributeValue::B(Blob::new(data)))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires(now)))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(list = %key, error = %DisplayErrorContext(&e), "could not keep the list");
        }
    }
}

fn expires(now_ms: u64) -> String {
    (now_ms / 1000 + 86_400).to_string()
}

fn cached<T: DeserializeOwned>(item: &Item, now: u64) -> Option<Cached<T>> {
    let value = gzip_json::decode(item.data.as_deref()?, MAX_LIST_JSON_BYTES)?;
    Some(Cached {
        value,
        age: Duration::from_millis(now.saturating_sub(item.fetched_ms)),
    })
}

/// The most JSON a cached list may expand to.
const MAX_LIST_JSON_BYTES: u64 = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_survives_the_round_trip_and_a_foreign_one_is_absent() {
        let list = vec!["a".to_owned(), "b".to_owned()];
        let data = gzip_json::encode(&list).unwrap();
        assert_eq!(
            cached::<Vec<String>>(
                &Item {
                    data: Some(b"not gzip".to_vec()),
                    fetched_ms: 0,
                    attempted_ms: None
                },
                0
            ),
            None
        );
        let item = Item {
            data: Some(data),
            fetched_ms: 1_000,
            attempted_ms: None,
        };
        let found = cached::<Vec<String>>(&item, 61_000).unwrap();
        assert_eq!(found.value, list);
        assert_eq!(found.age, Duration::from_secs(60));
    }
}
