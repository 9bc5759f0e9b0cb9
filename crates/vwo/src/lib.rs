//! VWO Feature Management as the bridge talks to it: the REST API client ([`api`]) paced by one
//! rate gate per token across containers (`bridge_state::rate_gate`), the workspace's projects and
//! environments ([`projects`]) and flags ([`flag_list`]), the environment's SDK settings file ([`settings_file`]: read,
//! parsed, fingerprinted), VWO's webhooks ([`webhook`]) and the URL they are registered under ([`webhook_url`]) and the settings every function reads for
//! VWO ([`config`]).

pub mod api;
pub mod config;
pub mod flag_list;
pub mod projects;
pub mod settings_file;
pub mod webhook;
pub mod webhook_url;
