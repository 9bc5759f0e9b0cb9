//! The workspace's flag list (`GET /accounts/{a}/features`), read a few pages at a time until it
//! ends, into an environment's snapshot: change tracking reads it so that a baseline completes at
//! any size, and it lives here so that the kill switch's drop-downs can read it too.
//!
//! Why a list at all: the settings file shows the flags that are on in the environment; a flag
//! that is off there is known only from the workspace's list, and without it, switching that
//! flag on later would be reported as `created`. VWO lists 25 flags a page at the token's
//! 1 request/s (`GET /accounts/{a}/features?limit=&offset=`, no total): 10,000 flags are 400
//! requests, more than one invocation may spend. So the snapshot carries where the list stands
//! ([`Snapshot::listing`]); each delivery reads at most a few pages, under its lease, through the
//! shared rate gate at background priority (kills first), and commits the progress with the
//! snapshot. While the list is incomplete the delivery answers 503 so that VWO, which retries
//! every 1–2 s for an hour, comes back and continues.

use std::time::Duration;

use bridge_platform::{Error, Result};
use tokio::time::Instant;

use crate::api::{TokenSource, VwoClient};
use crate::projects::as_text;
use crate::settings_file::snapshot::{FlagRecord, Snapshot};

/// Flags per page: VWO's own MCP server never asks for more.
pub const PAGE_SIZE: u32 = 25;

/// The list is taken as ended after this many flags (4,000 pages), should VWO's paging never
/// return an empty page: logged as an error, never a silent stop.
pub const MAX_FLAGS: u32 = 100_000;

/// What one delivery did to the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Pages read by this delivery.
    pub pages: u32,
    /// Flags the list added to the snapshot (off in this environment).
    pub added: usize,
    /// Why the delivery stopped before the list ended, if it did.
    pub stopped: Option<String>,
}

/// How far one delivery may read.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most pages this delivery reads.
    pub pages: u32,
    /// When the delivery must stop calling VWO (its lease or invocation ends, less the commit).
    pub until: Option<Instant>,
    /// How long one page may take (the VWO client's budget, waits for the gate included).
    pub per_page: Duration,
}

/// Reads pages of the workspace's flag list from where `snapshot` stands, within `budget`,
/// adding every flag the snapshot lacks as off. Ends the listing ([`Snapshot::listing`] =
/// `None`) at the first empty page. A failed page (VWO busy, the gate's slot taken by a kill, an
/// error) stops this delivery's reading; the pages read so far are kept.
pub async fn resume(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    snapshot: &mut Snapshot,
    budget: Budget,
) -> Progress {
    let mut progress = Progress::default();
    while let Some(offset) = snapshot.listing {
        if offset >= MAX_FLAGS {
            tracing::error!(
                listed = offset,
                "the workspace's flag list did not end after {MAX_FLAGS} flags; listing stopped \
                 (flags past it that are off here will be reported as created when switched on)"
            );
            snapshot.listing = None;
            break;
        }
        if progress.pages >= budget.pages {
            progress.stopped = Some(format!(
                "read {} pages, this delivery's share; VWO's retry continues",
                progress.pages
            ));
            break;
        }
        if budget
            .until
            .is_some_and(|until| Instant::now() + budget.per_page > until)
        {
            progress.stopped = Some("the delivery's time is up; VWO's retry continues".into());
            break;
        }
        match page(client, token, account, offset, PAGE_SIZE).await {
            Ok(page) if page.is_empty() => snapshot.listing = None,
            Ok(page) => {
                progress.pages += 1;
                snapshot.listing = Some(offset + page.len() as u32);
                for (id, key) in page {
                    if let indexmap::map::Entry::Vacant(entry) = snapshot.flags.entry(id.into()) {
                        entry.insert(FlagRecord::off(key));
                        progress.added += 1;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, listed = offset, "a page of the flag list failed; VWO's retry continues");
                progress.stopped = Some(format!("a page of the flag list failed: {error}"));
                break;
            }
        }
    }
    progress
}

/// One page of the workspace's flag list as `(id, key)`:
/// `GET /accounts/{a}/features?limit=&offset=` (`fme-get-all-feature-flags-of-a-workspace`).
pub async fn page(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    offset: u32,
    limit: u32,
) -> Result<Vec<(String, String)>> {
    let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
    let reply = client
        .get(token, &["accounts", account, "features"], &query)
        .await?;
    let items = reply.body["_data"]
        .as_array()
        .ok_or_else(|| unexpected_shape("a page of the flag list"))?;
    items
        .iter()
        .map(|item| {
            let id = as_text(&item["id"]).ok_or_else(|| unexpected_shape("a listed flag"))?;
            let key = item["featureKey"]
                .as_str()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| unexpected_shape("a listed flag"))?;
            Ok((id, key.to_owned()))
        })
        .collect()
}

fn unexpected_shape(what: &str) -> Error {
    Error::Upstream {
        service: "VWO",
        status: Some(200),
        message: format!("{what} has an unexpected shape"),
    }
}
