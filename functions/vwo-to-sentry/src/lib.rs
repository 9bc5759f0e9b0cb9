//! Change tracking: VWO's "settings changed" webhooks become signed feature-flag change events
//! in Sentry, each change once.
//!
//! [`handler::handle`] is a plain async function over a [`handler::App`]; `main.rs` only
//! wires it to the Lambda runtime, and tests call it directly.

pub mod actor;
pub mod attribution;
mod campaigns;
pub mod canonical;
pub mod config;
pub mod flag_listing;
pub mod handler;
pub mod json_text;
pub mod sentry_flags;
pub mod settings_file;
pub mod snapshot;
pub mod state;
pub mod vwo_hook;
pub mod vwo_lookup;

pub use handler::{handle, App};
