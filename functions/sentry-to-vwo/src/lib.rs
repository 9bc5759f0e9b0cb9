//! Kill switch: a signed Sentry alert webhook turns a VWO feature flag off (or on).
//!
//! [`handler::handle`] is a plain async function over an [`app::App`]; `main.rs` only wires it
//! to the Lambda runtime, and tests call it directly. It decides the route once
//! ([`routes::Route`]); an alert runs through the stages of [`alert`], and every answer is built
//! in [`answer`].

pub mod alert;
mod answer;
pub mod app;
pub mod config;
pub mod handler;
mod routes;
pub mod rule_form;
pub mod toggle;

pub use app::App;
pub use handler::handle;
