//! Sentry as the bridge talks to it: the webhooks Sentry sends the kill switch, verified before
//! they are read ([`webhook`]), and the change-tracking payload change tracking posts, signed
//! ([`change_tracking`]), and its public API as the kill switch reads it: when an issue began
//! and what its events say ([`api`]).

pub mod api;
pub mod change_tracking;
pub mod webhook;
