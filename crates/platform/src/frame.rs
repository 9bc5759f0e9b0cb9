//! One request's frame: what both functions read of a Function URL request once its route's
//! checks passed — the body, the query, Lambda's request id and the invocation's deadline — taken
//! from the request in one place, and the unique owner name a delivery holds leases under.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{Request, RequestExt};
use tokio::time::Instant;

use crate::clock;

/// A checked request as its handler reads it.
#[derive(Debug)]
pub struct Frame<'r> {
    /// The body, within the function's size cap (empty for a `GET`).
    pub body: &'r [u8],
    /// The Function URL's query parameters.
    pub query: QueryMap,
    /// Lambda's request id (empty outside Lambda).
    pub request_id: String,
    /// When Lambda ends the invocation, if the request carries a Lambda context.
    pub deadline: Option<SystemTime>,
    /// When the handler received the request (before any check): what an answer's time is
    /// counted from.
    pub arrived: Instant,
}

impl<'r> Frame<'r> {
    /// The frame of `req`, whose checked body is `body`.
    pub fn new(req: &Request, body: &'r [u8]) -> Self {
        let context = req.lambda_context_ref();
        Frame {
            body,
            query: req.query_string_parameters(),
            request_id: context.map(|c| c.request_id.clone()).unwrap_or_default(),
            deadline: context.map(|c| c.deadline()),
            arrived: Instant::now(),
        }
    }

    /// The frame, its request having arrived at `at` (the handler's first moment).
    pub fn arrived_at(self, at: Instant) -> Self {
        Frame {
            arrived: at,
            ..self
        }
    }

    /// Time left in the invocation less `margin`, if the request carries a deadline.
    pub fn time_left(&self, margin: Duration) -> Option<Duration> {
        let left = self.deadline?.duration_since(SystemTime::now()).ok()?;
        Some(left.saturating_sub(margin))
    }

    /// The invocation's deadline on the monotonic clock, if the request carries one.
    pub fn deadline_instant(&self) -> Option<Instant> {
        Instant::now().checked_add(self.time_left(Duration::ZERO)?)
    }

    /// A name no other delivery holds a lease under: see [`owner_name`].
    pub fn owner(&self) -> String {
        owner_name(&self.request_id)
    }
}

/// A name unique to one delivery of `id` (a request's or a queue message's id) in this process
/// and across processes: the id, the process, the time and a counter. Leases are held under it.
pub fn owner_name(id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{id}:{}:{}:{}",
        std::process::id(),
        clock::unix_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_differ_for_the_same_id() {
        assert_ne!(owner_name("r"), owner_name("r"));
        assert!(owner_name("req-1").starts_with("req-1:"));
    }

    #[test]
    fn a_request_outside_lambda_has_no_deadline() {
        let req = Request::default();
        let frame = Frame::new(&req, b"{}");
        assert_eq!(frame.request_id, "");
        assert_eq!(frame.time_left(Duration::ZERO), None);
        assert_eq!(frame.deadline_instant(), None);
        assert_eq!(frame.body, b"{}");
    }
}
