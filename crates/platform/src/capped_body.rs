//! Reading answers from upstream services (VWO, Sentry) with a size cap.

/// Largest answer body read from VWO's API or Sentry: far above any real answer, far below the
/// function's 128 MB.
pub const MAX_UPSTREAM_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why an upstream body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the cap (known from `Content-Length` or counted while reading).
    #[error("answer body larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed or timed out while reading.
    #[error("answer body could not be read ({0})")]
    Read(&'static str),
}

/// Reads `response`'s body, refusing it as soon as it passes `limit` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(BodyError::Read("timed out")),
            Err(_) => return Err(BodyError::Read("connection failed")),
        }
    }
}
