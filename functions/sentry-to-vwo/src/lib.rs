//! Kill switch: a signed Sentry alert webhook turns a VWO feature flag off (or on).
//!
//! [`handler::handle`] is a plain async function over a [`handler::App`]; `main.rs` only
//! wires it to the Lambda runtime, and tests call it directly.

pub mod apply;
pub mod catalog;
pub mod config;
pub mod decision;
pub mod dry_run;
pub mod guard_rails;
pub mod handler;
pub mod job;
pub mod kill_state;
pub mod options;
pub mod options_cache;
pub mod queue;
pub mod restore_budget;
pub mod rule_action;
pub mod save_check;
pub mod sentry_hook;
pub mod test_notification;
pub mod worker;

pub use handler::{handle, App};
