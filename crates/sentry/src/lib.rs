//! Sentry as the bridge talks to it: the webhooks Sentry sends the kill switch, verified before
//! they are read ([`webhook`]), and the change-tracking payload change tracking posts, signed
//! ([`change_tracking`]).

pub mod change_tracking;
pub mod webhook;
