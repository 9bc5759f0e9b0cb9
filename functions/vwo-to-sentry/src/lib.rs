//! Change tracking: VWO's "settings changed" webhooks become signed feature-flag change events
//! in Sentry, each change once.
//!
//! [`handler::handle`] is a plain async function over a [`handler::App`]; `main.rs` only
//! wires it to the Lambda runtime, and tests call it directly. The environment's settings file is
//! read by `bridge_vwo::settings_file`, the one reader both functions use.

pub mod actor;
pub mod attribution;
pub mod config;
pub mod diff;
pub mod flag_listing;
pub mod handler;
pub mod latest;
pub mod state;
pub mod vwo_lookup;

pub use handler::{handle, App};
