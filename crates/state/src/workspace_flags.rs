//! The workspace's flag list, kept by the kill switch for the alert rule's flag drop-down: every
//! flag of the workspace, so that a flag that was never on in an environment (absent from its
//! settings file) is offered too. VWO lists 25 flags a page at the token's 1 request/s, so the
//! list is read in the background a few pages at a time ([`Listing::pass`]), resumable across
//! invocations, within a share of the token per hour ([`Listing::hour`]); the drop-down reads
//! what is kept and never waits.
//!
//! One item per workspace ([`keys::workspace_flags`], by VWO's numeric id):
//! - `data`: the [`Listing`], gzip-compressed JSON, written with `version` (a conditional write:
//!   two refreshes never overwrite each other's pages);
//! - `active_until_ms`: until when a refresh is scheduled (the queue carries it); a drop-down
//!   that finds none active starts one ([`WorkspaceFlags::claim`]);
//! - `wanted_ms`: when a drop-down last asked for the list (refreshes stop a week after it);
//! - `expires_at`: DynamoDB's TTL, 30 days after the last write.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::dynamo::{condition, get_item, update_item};
use crate::gzip_json;
use crate::keys::{self, EXPIRES_AT};
use bridge_platform::{Error, Result};

/// How long the item is kept after its last write.
const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Largest list read back (JSON): about 100,000 flags.
const MAX_JSON_BYTES: u64 = 8 * 1024 * 1024;

/// A flag of the workspace, as VWO's list gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFlag {
    /// VWO's id of the flag.
    pub id: String,
    /// Its key.
    pub key: String,
}

/// The list and where its refresh stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Every flag of the last complete pass.
    pub flags: Vec<ListedFlag>,
    /// When the last pass completed (Unix milliseconds).
    pub complete_ms: Option<u64>,
    /// The pass under way, if any.
    pub pass: Option<Pass>,
    /// The pages read in the current hour: the token's share is counted here.
    pub hour: HourPages,
}

/// A pass over VWO's paged list, under way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// The next page's offset.
    pub offset: u32,
    /// The flags its pages listed so far.
    pub seen: Vec<ListedFlag>,
    /// When it started (Unix milliseconds).
    pub started_ms: u64,
}

/// Pages read in one clock hour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourPages {
    /// The hour's start (Unix milliseconds, a multiple of an hour).
    pub start_ms: u64,
    /// Pages read in it.
    pub pages: u32,
}

impl Listing {
    /// Every flag known: the last complete pass's and the pass under way's (a new flag appears as
    /// soon as its page is read), each once.
    pub fn known(&self) -> Vec<&ListedFlag> {
        let mut known: Vec<&ListedFlag> = self.flags.iter().collect();
        if let Some(pass) = &self.pass {
            for flag in &pass.seen {
                if !known.iter().any(|k| k.id == flag.id) {
                    known.push(flag);
                }
            }
        }
        known
    }

    /// Whether the last complete pass is younger than `ttl` at `now_ms`.
    pub fn fresh(&self, now_ms: u64, ttl: Duration) -> bool {
        self.complete_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < ttl.as_millis() as u64)
    }

    /// Pages still allowed this hour at `now_ms`, with `per_hour` the share.
    pub fn pages_left(&self, now_ms: u64, per_hour: u32) -> u32 {
        if self.hour.start_ms == hour_of(now_ms) {
            per_hour.saturating_sub(self.hour.pages)
        } else {
            per_hour
        }
    }

    /// Counts `pages` read at `now_ms` against the hour's share.
    pub fn spend(&mut self, now_ms: u64, pages: u32) {
        let start_ms = hour_of(now_ms);
        if self.hour.start_ms != start_ms {
            self.hour = HourPages { start_ms, pages: 0 };
        }
        self.hour.pages += pages;
    }
}

/// The start of the clock hour of `ms`.
pub fn hour_of(ms: u64) -> u64 {
    ms - ms % 3_600_000
}

/// The item as read: the list, its version and the refresh's marks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// The list (empty when never read).
    pub listing: Listing,
    /// The version the list was written with (0: never written).
    pub version: u64,
    /// Until when a refresh is scheduled.
    pub active_until_ms: u64,
    /// When a drop-down last asked for the list.
    pub wanted_ms: u64,
}

/// The workspaces' flag lists in the state table.
#[derive(Clone, Debug)]
pub struct WorkspaceFlags {
    client: Client,
    table: String,
}

impl WorkspaceFlags {
    /// The lists in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        WorkspaceFlags {
            client,
            table: table.into(),
        }
    }

    /// The list of workspace `account_id` as kept.
    pub async fn get(&self, account_id: u64) -> Result<Kept> {
        let key = keys::workspace_flags(account_id);
        let item = get_item(&self.client, &self.table, &key, "flag list").await?;
        let Some(item) = item else {
            return Ok(Kept::default());
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_default()
        };
        let listing = item
            .get("data")
            .and_then(|v| v.as_b().ok())
            .and_then(|data| gzip_json::decode(data.as_ref(), MAX_JSON_BYTES))
            .unwrap_or_default();
        Ok(Kept {
            listing,
            version: number("version"),
            active_until_ms: number("active_until_ms"),
            wanted_ms: number("wanted_ms"),
        })
    }

    /// Writes `listing` as version `version + 1` if the kept version is still `version`, and
    /// keeps the refresh scheduled until `active_until_ms`; `false` when another refresh wrote
    /// first (this one stops).
    pub async fn put(
        &self,
        account_id: u64,
        listing: &Listing,
        version: u64,
        active_until_ms: u64,
    ) -> Result<bool> {
        let data = gzip_json::encode(listing)
            .map_err(|e| Error::State(format!("encode the flag list: {e}")))?;
        let now = bridge_platform::clock::unix_secs();
        let result = update_item(
            &self.client,
            &self.table,
            &keys::workspace_flags(account_id),
        )
        .update_expression(
            "SET #data = :data, version = :next, active_until_ms = :until, #expires = :expires",
        )
        .condition_expression("attribute_not_exists(version) OR version = :version")
        .expression_attribute_names("#data", "data")
        .expression_attribute_names("#expires", EXPIRES_AT)
        .expression_attribute_values(":data", AttributeValue::B(data.into()))
        .expression_attribute_values(":next", n(version + 1))
        .expression_attribute_values(":version", n(version))
        .expression_attribute_values(":until", n(active_until_ms))
        .expression_attribute_values(":expires", n(now + KEEP.as_secs()))
        .send()
        .await;
        condition("PutItem (flag list)", result)
    }

    /// Takes the refresh of workspace `account_id` until `until_ms` if none is scheduled at
    /// `now_ms`, noting the drop-down's ask: `true` when this caller must start it.
    pub async fn claim(&self, account_id: u64, now_ms: u64, until_ms: u64) -> Result<bool> {
        let result = update_item(
            &self.client,
            &self.table,
            &keys::workspace_flags(account_id),
        )
        .update_expression("SET active_until_ms = :until, wanted_ms = :now")
        .condition_expression("attribute_not_exists(active_until_ms) OR active_until_ms < :now")
        .expression_attribute_values(":until", n(until_ms))
        .expression_attribute_values(":now", n(now_ms))
        .send()
        .await;
        condition("UpdateItem (flag list refresh)", result)
    }

    /// Notes that a drop-down asked for the list of workspace `account_id` at `now_ms`.
    pub async fn wanted(&self, account_id: u64, now_ms: u64) -> Result<()> {
        let result = update_item(
            &self.client,
            &self.table,
            &keys::workspace_flags(account_id),
        )
        .update_expression("SET wanted_ms = :now")
        .expression_attribute_values(":now", n(now_ms))
        .send()
        .await;
        condition("UpdateItem (flag list wanted)", result).map(|_| ())
    }
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(id: &str) -> ListedFlag {
        ListedFlag {
            id: id.into(),
            key: format!("flag-{id}"),
        }
    }

    #[test]
    fn a_pass_under_way_adds_its_flags_to_the_last_complete_list() {
        let listing = Listing {
            flags: vec![flag("1"), flag("2")],
            complete_ms: Some(1_000),
            pass: Some(Pass {
                offset: 25,
                seen: vec![flag("2"), flag("3")],
                started_ms: 2_000,
            }),
            hour: HourPages::default(),
        };
        let ids: Vec<&str> = listing.known().iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert!(listing.fresh(1_500, Duration::from_secs(1)));
        assert!(!listing.fresh(2_000, Duration::from_secs(1)));
        assert!(!Listing::default().fresh(0, Duration::from_secs(60)));
    }

    #[test]
    fn the_hours_share_is_counted_per_clock_hour() {
        let mut listing = Listing::default();
        let at = 10 * 3_600_000 + 5;
        assert_eq!(listing.pages_left(at, 360), 360);
        listing.spend(at, 10);
        listing.spend(at + 1_000, 350);
        assert_eq!(listing.pages_left(at + 2_000, 360), 0);
        // The next hour starts afresh.
        assert_eq!(listing.pages_left(at + 3_600_000, 360), 360);
        listing.spend(at + 3_600_000, 1);
        assert_eq!(listing.hour.pages, 1);
    }
}
