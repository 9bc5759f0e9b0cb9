//! Change tracking's snapshot as the state table stores it, read back: by change tracking itself
//! (under its lease, `vwo-to-sentry`'s `state`) and by anyone else who wants the environment's
//! flags without asking VWO — the kill switch's flag drop-down lists from it the flags that are
//! off in the environment (VWO's settings file leaves them out).
//!
//! Item (key [`keys::environment`]): `version`, and `snapshot` (gzip-compressed JSON,
//! binary; JSON text in items of earlier versions) or, for a large snapshot, `chunks` (number)
//! and that many chunk items ([`keys::snapshot_chunk`]) with `data` (binary) and the
//! `version` they belong to.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::snapshot::Snapshot;
use bridge_platform::Result;
use bridge_state::keys::{self, PARTITION_KEY};
use bridge_state::{dynamo, gzip_json};

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

/// The bytes of a chunked snapshot: each chunk's `data`, in order, every one of the item's
/// `version`; or why not (a chunk of another version: a commit was under way; one without data).
pub fn chunk_bytes<'a>(
    version: Option<u64>,
    chunks: impl IntoIterator<Item = &'a Item>,
) -> std::result::Result<Vec<u8>, &'static str> {
    let mut bytes = Vec::new();
    for chunk in chunks {
        if number(chunk, "version") != version {
            return Err("a snapshot chunk of another version");
        }
        match chunk.get("data") {
            Some(AttributeValue::B(blob)) => bytes.extend_from_slice(blob.as_ref()),
            _ => return Err("a snapshot chunk without data"),
        }
    }
    Ok(bytes)
}

/// The snapshot change tracking keeps for `environment` (the identifier its webhook URL names),
/// for reading only: `None` when there is none or it does not read (a chunk missing or of
/// another version: a commit was under way). Consistent reads; no lease.
pub async fn read(client: &Client, table: &str, environment: &str) -> Result<Option<Snapshot>> {
    let key = keys::environment(environment);
    let Some(item) = dynamo::get_item(client, table, &key, "snapshot").await? else {
        return Ok(None);
    };
    let chunks = number(&item, "chunks").unwrap_or(0);
    if chunks == 0 {
        return Ok(item.get("snapshot").and_then(decode));
    }
    let keys = (0..chunks).map(|i| keys::snapshot_chunk(environment, i));
    let keys: Vec<String> = keys.collect();
    let items = keys.iter().map(|k| keys::key(k.clone())).collect();
    let mut found: HashMap<String, Item> =
        dynamo::batch_get(client, table, items, "snapshot chunks")
            .await?
            .into_iter()
            .filter_map(|chunk| Some((chunk.get(PARTITION_KEY)?.as_s().ok()?.clone(), chunk)))
            .collect();
    let Some(in_order) = keys
        .iter()
        .map(|k| found.remove(k))
        .collect::<Option<Vec<Item>>>()
    else {
        return Ok(None);
    };
    let bytes = chunk_bytes(number(&item, "version"), &in_order).ok();
    Ok(bytes.and_then(|bytes| decode_bytes(&bytes)))
}
