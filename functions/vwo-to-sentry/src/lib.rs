//! Change tracking: VWO's "settings changed" webhooks become signed feature-flag change events
//! in Sentry, each change once.
//!
//! [`handler::handle`] is a plain async function over an [`app::App`]; `main.rs` only wires it to
//! the Lambda runtime, and tests call it directly. A delivery runs through the stages of
//! [`delivery`] (verify, lease, read, diff, send, remember); every answer is built in `answer`.
//! The environment's settings file is read by `bridge_vwo::settings_file`, the one reader both
//! functions use.

mod answer;
pub mod app;
pub mod config;
pub mod delivery;
pub mod handler;
pub mod state;

pub use app::App;
pub use handler::handle;
