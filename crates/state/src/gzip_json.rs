//! Values kept in the state table as gzip-compressed JSON (change tracking's snapshots, the
//! kill switch's drop-down lists): JSON compresses well, and DynamoDB items are bounded.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` as gzip-compressed JSON.
pub fn encode<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(value)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)?;
    gz.finish()
}

/// The value in `data`, read up to `max_json_bytes` of JSON; `None` when it does not read (not
/// gzip, too large, or written by another version).
pub fn decode<T: DeserializeOwned>(data: &[u8], max_json_bytes: u64) -> Option<T> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(max_json_bytes)
        .read_to_end(&mut json)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_survives_the_round_trip_and_anything_else_is_none() {
        let list = vec!["a".to_owned(), "b".to_owned()];
        let data = encode(&list).unwrap();
        assert_eq!(decode::<Vec<String>>(&data, 1024), Some(list));
        assert_eq!(decode::<Vec<String>>(b"not gzip", 1024), None);
        assert_eq!(decode::<Vec<String>>(&data, 4), None);
    }
}
