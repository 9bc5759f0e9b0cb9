//! Sentry as the bridge talks to it: the webhooks Sentry sends the kill switch, verified before
//! they are read ([`webhook`]), and the change-tracking payload change tracking posts, signed
//! ([`change_tracking`]), and its public API as the kill switch reads it: when an issue began
//! and what its events say ([`api`]).

pub mod api;
pub mod change_tracking;
pub mod webhook;

use bridge_platform::Error;

/// Sentry failed: an [`Error::Upstream`] with the status it answered, if any.
pub(crate) fn failed(status: Option<u16>, message: String) -> Error {
    Error::Upstream {
        service: "Sentry",
        status,
        message,
    }
}

/// What a request to Sentry that got no answer says: it timed out, or it failed.
pub(crate) fn unanswered(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else {
        "request failed"
    }
}
