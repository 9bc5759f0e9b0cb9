//! Snapshots in DynamoDB, one item per environment, advanced with conditional writes, and the
//! lease protocol over them.
//!
//! Item: `environment` (key), `version` (number), `snapshot` (gzip-compressed JSON, binary; JSON
//! text in items written by earlier versions) — or, for a snapshot over [`CHUNK_BYTES`]
//! compressed, `chunks` (number) and that many chunk items `snapshot#<environment>#<i>` with
//! `data` (binary) and the `version` they belong to, written in the same transaction as the
//! environment's item and read in one (so a reader never mixes versions) — and while a delivery
//! works on the environment, `lease_owner` and `lease_expires` (Unix seconds). A delivery
//! [acquires](StateStore::acquire) the lease on the version it read, sends to Sentry, then
//! [finishes](Lease::finish): commits the next version and drops the lease in one conditional
//! write; so no two deliveries send the same change. A delivery that fails
//! [abandons](Lease::abandon) its lease, which frees the environment for VWO's retry.

use bridge_state::dynamo;
use bridge_state::keys::{self, PARTITION_KEY};
use bridge_vwo::settings_file::stored::{self, number};
use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Get, Put, TransactGetItem, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use bridge_platform::clock::unix_secs as now_secs;
use bridge_platform::{Error, Result};
use bridge_state::dynamo::{condition, describe};
use bridge_state::gzip_json;

use bridge_vwo::settings_file::snapshot::Snapshot;

/// A snapshot and the version it was stored under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Incremented by every commit.
    pub version: u64,
    /// The flags as last reported.
    pub snapshot: Snapshot,
}

/// The DynamoDB table of snapshots.
#[derive(Clone, Debug)]
pub struct StateStore {
    client: Client,
    table: String,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::State(format!("{what}: {e}"))
}

/// `#placeholder -> attribute` for the given placeholders: every attribute is named through a
/// placeholder, since words like `snapshot` are reserved in DynamoDB expressions.
fn names(placeholders: &[&str]) -> HashMap<String, String> {
    placeholders
        .iter()
        .map(|p| {
            let attribute = match *p {
                "owner" => "lease_owner",
                "expires" => "lease_expires",
                "updated" => "updated_at",
                "committed" => "committed_by",
                other => other,
            };
            (format!("#{p}"), attribute.to_owned())
        })
        .collect()
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// What [`StateStore::acquire`] found.
#[derive(Debug)]
pub enum Acquired<'s> {
    /// The environment has no snapshot yet: the caller records a baseline
    /// ([`StateStore::create_baseline`]).
    Empty,
    /// The environment is the caller's until it finishes, abandons, or the lease runs out.
    Lease(Lease<'s>),
}

/// One delivery's hold on an environment: the snapshot it read and the right to advance it.
#[derive(Debug)]
#[must_use = "a lease is finished or abandoned (or it blocks the environment until it expires)"]
pub struct Lease<'s> {
    store: &'s StateStore,
    environment: String,
    owner: String,
    stored: Stored,
    ends_at: Instant,
}

impl Lease<'_> {
    /// The snapshot and version the lease was taken on.
    pub fn stored(&self) -> &Stored {
        &self.stored
    }

    /// When the lease runs out (counted from before the claim was sent, so never late).
    pub fn ends_at(&self) -> Instant {
        self.ends_at
    }

    /// Stores `current` as the next version (or, when it equals what was read, only drops the
    /// lease). Fails with [`Error::Busy`] when the lease was lost (it ran out and another
    /// delivery took it); on any failure the lease is abandoned.
    pub async fn finish(self, current: &Snapshot) -> Result<()> {
        let done = if *current == self.stored.snapshot {
            self.store.release(&self.environment, &self.owner).await
        } else {
            self.store
                .commit(&self.environment, self.stored.version, &self.owner, current)
                .await
        };
        match done {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.abandon().await;
                Err(Error::Busy(
                    "lost the environment's lease before committing".into(),
                ))
            }
            Err(e) => {
                self.abandon().await;
                Err(e)
            }
        }
    }

    /// Drops the lease without changing the snapshot, so that VWO's retry finds the environment
    /// free. A failure is logged: the lease expires by itself.
    pub async fn abandon(self) {
        if let Err(e) = self.store.release(&self.environment, &self.owner).await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }
}

impl StateStore {
    /// Takes `environment` for `owner` for `lease`. Deliveries arrive in bursts: while another
    /// delivery holds it, waits up to `wait` (short jittered pauses) before failing with
    /// [`Error::Busy`], which makes VWO deliver again 1–2 s later.
    pub async fn acquire(
        &self,
        environment: &str,
        owner: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Acquired<'_>> {
        let give_up = Instant::now() + wait;
        let mut pauses =
            bridge_platform::clock::pauses(Duration::from_millis(50), Duration::from_millis(400));
        loop {
            let Some(stored) = self.load(environment).await? else {
                return Ok(Acquired::Empty);
            };
            let claimed_at = Instant::now();
            if self
                .claim(environment, stored.version, owner, lease)
                .await?
            {
                return Ok(Acquired::Lease(Lease {
                    store: self,
                    environment: environment.to_owned(),
                    owner: owner.to_owned(),
                    stored,
                    ends_at: claimed_at + lease,
                }));
            }
            let pause = pauses.next().unwrap_or(Duration::from_millis(200));
            if Instant::now() + pause >= give_up {
                return Err(Error::Busy(format!(
                    "another delivery is processing environment {environment}; retry later"
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

impl StateStore {
    /// A store over `table`.
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        StateStore {
            client: Client::new(config),
            table: table.into(),
        }
    }

    /// A store using `client` (e.g. one with its own endpoint) over `table`.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        StateStore {
            client,
            table: table.into(),
        }
    }

    fn key(environment: &str) -> HashMap<String, AttributeValue> {
        keys::key(keys::environment(environment))
    }

    /// An update of the environment's item.
    fn update(&self, environment: &str) -> UpdateItemFluentBuilder {
        dynamo::update_item(&self.client, &self.table, &keys::environment(environment))
    }

    /// The environment's item, read strongly consistent.
    async fn item(&self, environment: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        let key = keys::environment(environment);
        dynamo::get_item(&self.client, &self.table, &key, "snapshot").await
    }

    /// The environment's snapshot (strongly consistent read), `None` before the baseline.
    pub async fn load(&self, environment: &str) -> Result<Option<Stored>> {
        let Some(mut item) = self.item(environment).await? else {
            return Ok(None);
        };
        let chunks = number(&item, "chunks").unwrap_or(0);
        let mut data = None;
        if chunks > 0 {
            // The environment's item again, with its chunks, in one transaction: all of one
            // version.
            let (again, bytes) = self.chunked(environment, chunks).await?;
            item = again;
            data = Some(bytes);
        }
        let version =
            number(&item, "version").ok_or_else(|| failed("GetItem", "item has no version"))?;
        // A snapshot of an earlier layout (or one that does not read) reads as format 0: the
        // handler records the environment anew.
        let snapshot = match data {
            Some(bytes) => decode_bytes(&bytes),
            None => item.get("snapshot").and_then(decode),
        }
        .unwrap_or_default();
        Ok(Some(Stored { version, snapshot }))
    }

    /// The environment's item and its `chunks` chunk items, read in one transaction; the bytes of
    /// the chunks in order. Fails unless every chunk belongs to the item's version.
    async fn chunked(
        &self,
        environment: &str,
        chunks: u64,
    ) -> Result<(HashMap<String, AttributeValue>, Vec<u8>)> {
        let keys = std::iter::once(environment.to_owned())
            .chain((0..chunks).map(|i| chunk_key(environment, i)));
        let mut request = self.client.transact_get_items();
        for key in keys {
            let get = Get::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(&key)))
                .build()
                .map_err(|e| failed("TransactGetItems", e))?;
            request = request.transact_items(TransactGetItem::builder().get(get).build());
        }
        let output = request
            .send()
            .await
            .map_err(|e| failed("TransactGetItems", describe(&e)))?;
        let mut items = output
            .responses
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.item.unwrap_or_default());
        let main = items
            .next()
            .ok_or_else(|| failed("TransactGetItems", "no item"))?;
        let chunks: Vec<_> = items.collect();
        let bytes = stored::chunk_bytes(number(&main, "version"), &chunks)
            .map_err(|why| failed("TransactGetItems", why))?;
        Ok((main, bytes))
    }

    /// Records the first snapshot (version 1) unless the environment already has one.
    pub async fn create_baseline(&self, environment: &str, snapshot: &Snapshot) -> Result<bool> {
        let bytes = encode(snapshot)?;
        if bytes.len() <= CHUNK_BYTES {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PARTITION_KEY, s(keys::environment(environment)))
                .item("version", n(1))
                .item("snapshot", blob(bytes))
                .item("updated_at", n(now_secs()))
                .condition_expression("attribute_not_exists(#environment)")
                .set_expression_attribute_names(Some(names(&[PARTITION_KEY])))
                .send()
                .await;
            return condition("PutItem", result);
        }
        let chunks = bytes.chunks(CHUNK_BYTES);
        let put = Put::builder()
            .table_name(&self.table)
            .item(PARTITION_KEY, s(keys::environment(environment)))
            .item("version", n(1))
            .item("chunks", n(chunks.len() as u64))
            .item("updated_at", n(now_secs()))
            .condition_expression("attribute_not_exists(#environment)")
            .set_expression_attribute_names(Some(names(&[PARTITION_KEY])))
            .build()
            .map_err(|e| failed("TransactWriteItems", e))?;
        let first = TransactWriteItem::builder().put(put).build();
        self.write_with_chunks(environment, first, 1, chunks).await
    }

    /// Writes `first` and the snapshot's chunks for `version` in one transaction; `Ok(false)`
    /// when `first`'s condition did not hold (nothing written).
    async fn write_with_chunks(
        &self,
        environment: &str,
        first: TransactWriteItem,
        version: u64,
        chunks: std::slice::Chunks<'_, u8>,
    ) -> Result<bool> {
        let mut request = self.client.transact_write_items().transact_items(first);
        for (i, chunk) in chunks.enumerate() {
            let put = Put::builder()
                .table_name(&self.table)
                .item(PARTITION_KEY, s(chunk_key(environment, i as u64)))
                .item("version", n(version))
                .item("data", blob(chunk.to_vec()))
                .build()
                .map_err(|e| failed("TransactWriteItems", e))?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        condition("TransactWriteItems", request.send().await)
    }

    /// Takes the environment for `owner` for `lease`, if it is still at `version` and no one
    /// else holds an unexpired lease.
    async fn claim(
        &self,
        environment: &str,
        version: u64,
        owner: &str,
        lease: Duration,
    ) -> Result<bool> {
        let now = now_secs();
        let result = self.update(environment)
            .update_expression("SET #owner = :owner, #expires = :expires")
            // `#owner = :owner` makes a retried request (the SDK retries timeouts) succeed.
            .condition_expression(
                "#version = :version AND (attribute_not_exists(#owner) OR #expires < :now OR #owner = :owner)",
            )
            .set_expression_attribute_names(Some(names(&["version", "owner", "expires"])))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":expires", n(now + lease.as_secs()))
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        condition("UpdateItem (claim)", result)
    }

    /// Stores `snapshot` as `version + 1` and drops `owner`'s lease, if `owner` still holds it.
    ///
    /// The write is conditional on the lease alone. If the SDK retries a commit whose first try
    /// took effect (a lost answer), the retry fails its condition and changes nothing; a
    /// consistent read then tells that the commit is ours. A retry never touches a lease that
    /// another delivery took since.
    async fn commit(
        &self,
        environment: &str,
        version: u64,
        owner: &str,
        snapshot: &Snapshot,
    ) -> Result<bool> {
        let bytes = encode(snapshot)?;
        let committed = if bytes.len() <= CHUNK_BYTES {
            let update = CommitUpdate::new(("snapshot", blob(bytes)), "chunks", version, owner);
            let key = keys::environment(environment);
            let result = dynamo::update_item(&self.client, &self.table, &key)
                .update_expression(update.expression)
                .condition_expression(COMMIT_CONDITION)
                .set_expression_attribute_names(Some(update.names))
                .set_expression_attribute_values(Some(update.values))
                .send()
                .await;
            condition("UpdateItem (commit)", result)?
        } else {
            let chunks = bytes.chunks(CHUNK_BYTES);
            let count = ("chunks", n(chunks.len() as u64));
            let update = CommitUpdate::new(count, "snapshot", version, owner);
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(environment)))
                .update_expression(update.expression)
                .condition_expression(COMMIT_CONDITION)
                .set_expression_attribute_names(Some(update.names))
                .set_expression_attribute_values(Some(update.values))
                .build()
                .map_err(|e| failed("TransactWriteItems", e))?;
            let first = TransactWriteItem::builder().update(update).build();
            self.write_with_chunks(environment, first, version + 1, chunks)
                .await?
        };
        if committed {
            return Ok(true);
        }
        self.committed_by(environment, version + 1, owner).await
    }

    /// Whether the environment stands at `version`, committed by `owner`.
    async fn committed_by(&self, environment: &str, version: u64, owner: &str) -> Result<bool> {
        let item = self.item(environment).await?.unwrap_or_default();
        let at = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let by = item.get("committed_by").and_then(|v| v.as_s().ok());
        Ok(at == Some(version) && by.map(String::as_str) == Some(owner))
    }

    /// Drops `owner`'s lease without changing the snapshot.
    async fn release(&self, environment: &str, owner: &str) -> Result<bool> {
        let result = self
            .update(environment)
            .update_expression("REMOVE #owner, #expires")
            .condition_expression("#owner = :owner OR attribute_not_exists(#owner)")
            .set_expression_attribute_names(Some(names(&["owner", "expires"])))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        condition("UpdateItem (release)", result)
    }
}

/// Most compressed snapshot bytes in one item (DynamoDB refuses items over 400 KB; the
/// environment's item holds the lease, version and names too). A larger snapshot is split.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Most chunks: one transaction writes at most 100 items and 4 MB in all.
pub const MAX_CHUNKS: usize = 14;

/// The largest compressed snapshot written (3.5 MB: about 70,000 flags of two rules each, with
/// their rule digests).
pub const MAX_SNAPSHOT_BYTES: usize = CHUNK_BYTES * MAX_CHUNKS;

/// A commit's condition: the version read, and the lease still ours.
const COMMIT_CONDITION: &str = "#version = :version AND #owner = :owner";

/// What a commit writes: the snapshot (inline, or as its number of chunks) as the next version,
/// the lease dropped and the other form of the snapshot removed.
struct CommitUpdate {
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl CommitUpdate {
    /// Sets `member` (`snapshot` or `chunks`) to its value and removes `other`, for the delivery
    /// `owner` that read `version`.
    fn new(member: (&str, AttributeValue), other: &str, version: u64, owner: &str) -> Self {
        let (name, value) = member;
        CommitUpdate {
            expression: format!(
                "SET #{name} = :{name}, #version = :next, #updated = :now, #committed = :owner REMOVE #owner, #expires, #{other}"
            ),
            names: names(&[
                "snapshot", "version", "updated", "committed", "owner", "expires", "chunks",
            ]),
            values: HashMap::from([
                (format!(":{name}"), value),
                (":next".to_owned(), n(version + 1)),
                (":now".to_owned(), n(now_secs())),
                (":version".to_owned(), n(version)),
                (":owner".to_owned(), s(owner)),
            ]),
        }
    }
}

fn blob(bytes: Vec<u8>) -> AttributeValue {
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes))
}

/// The key of an environment's `i`th snapshot chunk.
fn chunk_key(environment: &str, i: u64) -> String {
    keys::snapshot_chunk(environment, i)
}

/// The snapshot as stored: gzip-compressed JSON (about 29 bytes per flag instead of 140: an
/// environment of 10,000 flags takes 283 KB, two chunks). Over [`MAX_SNAPSHOT_BYTES`] it is a
/// clear error naming the limit, never a silent stop.
pub fn encode(snapshot: &Snapshot) -> Result<Vec<u8>> {
    let bytes = gzip_json::encode(snapshot).map_err(|e| failed("compress snapshot", e))?;
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(Error::Upstream {
            service: "DynamoDB",
            status: None,
            message: format!(
                "the environment's snapshot of {} flags is {} KB compressed, over the {} KB that \
                 one DynamoDB transaction writes ({MAX_CHUNKS} items of {} KB): change tracking \
                 cannot record this environment",
                snapshot.flags.len(),
                bytes.len() / 1024,
                MAX_SNAPSHOT_BYTES / 1024,
                CHUNK_BYTES / 1024
            ),
        });
    }
    Ok(bytes)
}

pub use bridge_vwo::settings_file::stored::{decode, decode_bytes};

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_vwo::settings_file::snapshot::{FlagRecord, FORMAT};
    use sha2::{Digest, Sha256};

    /// A snapshot of `count` flags with keys like VWO's samples and fingerprints as the settings
    /// reader makes them (two hashes of 16 hex digits: incompressible).
    fn snapshot(count: usize) -> Snapshot {
        Snapshot {
            format: FORMAT,
            sdk_key: Some("a5a0f8c1e4b94a8f9b1c3d2e7f6a5b4c".into()),
            environment_id: None,
            listing: None,
            flags: (0..count)
                .map(|i| {
                    let digest = Sha256::digest(i.to_le_bytes());
                    let record = FlagRecord {
                        key: format!("checkout-experiment-{i:05}").into(),
                        status: Some(if i % 3 == 0 { "OFF" } else { "ON" }.into()),
                        fingerprint: hex::encode(&digest[..8]).into(),
                        raw: u64::from_le_bytes(digest[8..16].try_into().unwrap()),
                        rules: None,
                    };
                    ((100_000 + i).to_string().into(), record)
                })
                .collect(),
        }
    }

    #[test]
    fn snapshots_round_trip_compressed_and_old_text_ones_still_read() {
        let original = snapshot(50);
        let stored = blob(encode(&original).unwrap());
        assert_eq!(decode(&stored), Some(original.clone()));
        let text = AttributeValue::S(serde_json::to_string(&original).unwrap());
        assert_eq!(decode(&text), Some(original));
        assert_eq!(decode(&AttributeValue::S("not json".into())), None);
        let garbage = AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b"nope".to_vec()));
        assert_eq!(decode(&garbage), None);
    }

    #[test]
    fn ten_thousand_flags_take_two_chunks_and_past_the_limit_the_error_says_so() {
        let bytes = encode(&snapshot(10_000)).unwrap();
        let json = serde_json::to_vec(&snapshot(10_000)).unwrap().len();
        // Measured: 1.4 MB of JSON compress to 283 KB (29 bytes a flag: two incompressible
        // 8-byte hashes), two chunks; the limit (3.5 MB) is reached near 120,000 flags.
        assert!(bytes.len() < 300 * 1024, "{} bytes", bytes.len());
        assert_eq!(bytes.chunks(CHUNK_BYTES).len(), 2);
        assert!(json > 1_000_000, "{json}");
        let error = encode(&snapshot(150_000)).unwrap_err().to_string();
        assert!(error.contains("150000 flags"), "{error}");
        assert!(error.contains("one DynamoDB transaction"), "{error}");
    }
}
