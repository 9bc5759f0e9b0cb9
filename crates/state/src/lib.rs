//! The state table's records: every kind of item the bridge's functions keep in DynamoDB, their
//! keys ([`keys`], the one owner) and formats. This is the contract between the two functions:
//! the kill switch writes kill records that change tracking reads, change tracking writes the
//! latest changes that the kill switch reads for its suspect; the kill switch keeps when each
//! Sentry issue began. And one rate gate per token (or Sentry organisation) across containers
//! ([`rate_gate`]).

pub mod dynamo;
pub mod gzip_json;
pub mod issue_start;
pub mod keys;
pub mod kill_record;
pub mod latest_change;
pub mod rate_gate;
pub mod workspace_flags;
