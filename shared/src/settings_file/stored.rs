//! Change tracking's snapshot as the state table stores it, read back: by change tracking itself
//! (under its lease, `vwo-to-sentry`'s `state`) and by anyone else who wants the environment's
//! flags without asking VWO — the kill switch's flag drop-down lists from it the flags that are
//! off in the environment (VWO's settings file leaves them out).
//!
//! Item (key [`state_table::environment`]): `version`, and `snapshot` (gzip-compressed JSON,
//! binary; JSON text in items of earlier versions) or, for a large snapshot, `chunks` (number)
//! and that many chunk items ([`state_table::snapshot_chunk`]) with `data` (binary) and the
//! `version` they belong to.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::snapshot::Snapshot;
use crate::state_table::{self, PARTITION_KEY};
use crate::{dynamo, gzip_json, Result};

/// Largest snapshot decoded (uncompressed JSON).
const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

type Item = HashMap<String, AttributeValue>;

/// A stored snapshot's `snapshot` attribute, `None` when it does not read.
pub fn decode(value: &AttributeValue) -> Option<Snapshot> {
    match value {
        AttributeValue::B(blob) => decode_bytes(blob.as_ref()),
        AttributeValue::S(text) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

/// A compressed snapshot's bytes, `None` when they do not read.
pub fn decode_bytes(bytes: &[u8]) -> Option<Snapshot> {
    gzip_json::decode(bytes, MAX_DECODED_BYTES)
}

/// A number attribute of an item.
pub fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The snapshot change tracking keeps for `environment` (the identifier its webhook URL names),
/// for reading only: `None` when there is none or it does not read (a chunk of another version:
/// a commit was under way). Consistent reads; no lease.
pub async fn read(client: &Client, table: &str, environment: &str) -> Result<Option<Snapshot>> {
    let key = state_table::environment(environment);
    let Some(item) = dynamo::get_item(client, table, &key, "snapshot").await? else {
        return Ok(None);
    };
    let chunks = number(&item, "chunks").unwrap_or(0);
    if chunks == 0 {
        return Ok(item.get("snapshot").and_then(decode));
    }
    let keys: Vec<Item> = (0..chunks)
        .map(|i| state_table::key(state_table::snapshot_chunk(environment, i)))
        .collect();
    let mut found = dynamo::batch_get(client, table, keys, "snapshot chunks").await?;
    let version = number(&item, "version");
    let at = |chunk: &Item| {
        let key = chunk.get(PARTITION_KEY)?.as_s().ok()?;
        (0..chunks).find(|i| state_table::snapshot_chunk(environment, *i) == *key)
    };
    found.sort_by_key(|chunk| at(chunk));
    let mut bytes = Vec::new();
    for chunk in &found {
        match chunk.get("data") {
            Some(AttributeValue::B(blob)) if number(chunk, "version") == version => {
                bytes.extend_from_slice(blob.as_ref())
            }
            _ => return Ok(None),
        }
    }
    Ok((found.len() as u64 == chunks)
        .then(|| decode_bytes(&bytes))
        .flatten())
}
