//! Kill switch: a signed Sentry alert webhook turns a VWO feature flag off (or on).
//!
//! [`handler::handle`] is a plain async function over an [`app::App`]; `main.rs` only wires it
//! to the Lambda runtime, and tests call it directly. It decides the route once
//! ([`routes::Route`]); an alert runs through the stages of [`alert`], and every answer is built
//! in [`answer`].

mod alert;
mod answer;
pub mod app;
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
pub mod queue;
pub mod restore_budget;
mod routes;
pub mod rule_action;
pub mod save_check;
pub mod test_notification;
pub mod worker;

pub use app::App;
pub use handler::handle;
