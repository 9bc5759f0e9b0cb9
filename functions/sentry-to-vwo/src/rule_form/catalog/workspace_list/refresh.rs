//! One step of the workspace's flag list refresh, run by the toggle worker from its queue message
//! (`{"flag_list_refresh": {"account_id": …}}`): up to [`PAGES_PER_STEP`] pages of VWO's list
//! (`GET /accounts/{a}/features?limit=25&offset=`), at the rate gate's background priority, and
//! the next step scheduled so that the pages read stay within `FLAG_LIST_PAGES_PER_HOUR`:
//! `pages × 3600 / share` seconds later. A page VWO or the gate refuses (a kill waits for the
//! slot, VWO asked to wait) ends the step; the next one resumes at the same offset. The first empty
//! page completes the pass; the next pass starts [`LIST_TTL`] later while a drop-down asked for
//! the list in the last week.

use std::time::Duration;

use bridge_platform::clock::unix_millis;
use bridge_platform::{Error, Result};
use bridge_state::workspace_flags::{hour_of, Kept, ListedFlag, Listing, Pass};
use bridge_vwo::flag_list::{self, MAX_FLAGS, PAGE_SIZE};
use serde::{Deserialize, Serialize};

use super::{WorkspaceList, LIST_TTL, REFRESH_HOLD};
use crate::app::App;
use crate::toggle::queue::MAX_DELAY;

/// Most pages one step reads (at the token's 1 request/s, about 10 s of the worker's 30).
pub const PAGES_PER_STEP: u32 = 10;

/// Refreshes stop this long after a drop-down last asked for the list.
pub const STOP_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// A step's queue message: whose list to refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    /// VWO's numeric id of the workspace.
    pub account_id: u64,
}

#[derive(Serialize, Deserialize)]
struct Message {
    flag_list_refresh: Refresh,
}

impl Refresh {
    /// The queue message's body.
    pub fn encode(self) -> Result<String> {
        serde_json::to_string(&Message {
            flag_list_refresh: self,
        })
        .map_err(|e| Error::State(format!("flag list refresh: {e}")))
    }

    /// The refresh a queue message's `body` asks for, if it is one.
    pub fn decode(body: &str) -> Option<Self> {
        serde_json::from_str::<Message>(body)
            .ok()
            .map(|m| m.flag_list_refresh)
    }
}

/// What a step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stepped {
    /// Read this many pages (the pass completed when `complete`); the next step is due `next`.
    Read {
        /// Pages read (token requests).
        pages: u32,
        /// Whether the pass completed.
        complete: bool,
        /// Why it stopped early, if it did.
        stopped: Option<String>,
        /// When the next step runs.
        next: Duration,
    },
    /// The list is fresh, or the hour's share is spent: nothing read; the next step is due then.
    Waiting(Duration),
    /// Nobody asked for the list in a week, or another refresh wrote first: no next step.
    Ended(&'static str),
}

/// Runs one step of the refresh of `refresh.account_id`'s list, and schedules the next.
pub async fn step(app: &App, refresh: Refresh) -> Result<Stepped> {
    let list = app
        .catalog()
        .map(|c| c.workspace_list())
        .ok_or_else(|| Error::Config("the flag list needs STATE_TABLE".into()))?;
    let now = unix_millis();
    let kept = list.store().get(refresh.account_id).await?;
    if now.saturating_sub(kept.wanted_ms) > STOP_AFTER.as_millis() as u64 {
        return end(
            list,
            refresh,
            kept,
            "no drop-down asked for the list in a week",
        )
        .await;
    }
    let mut listing = kept.listing.clone();
    let share = app.config.flag_list_pages_per_hour;
    let stepped = match due(&listing, now, share) {
        Some(wait) => Stepped::Waiting(wait),
        None => read(app, refresh.account_id, &mut listing, share).await,
    };
    let next = match &stepped {
        Stepped::Read { next, .. } | Stepped::Waiting(next) => *next,
        Stepped::Ended(_) => return Ok(stepped),
    };
    let until = now + (next + REFRESH_HOLD).as_millis() as u64;
    if !list
        .store()
        .put(refresh.account_id, &listing, kept.version, until)
        .await?
    {
        return Ok(Stepped::Ended("another refresh wrote the list first"));
    }
    let queue = list
        .queue()
        .ok_or_else(|| Error::Config("the flag list's refresh needs TOGGLE_QUEUE_URL".into()))?;
    queue
        .send_text(&refresh.encode()?, next.min(MAX_DELAY))
        .await?;
    Ok(stepped)
}

/// When nothing is to be read now: the wait until the next pass (the list is fresh) or the next
/// hour (its share is spent).
fn due(listing: &Listing, now_ms: u64, share: u32) -> Option<Duration> {
    if listing.pass.is_none() && listing.fresh(now_ms, LIST_TTL) {
        let ends = listing.complete_ms.unwrap_or(now_ms) + LIST_TTL.as_millis() as u64;
        return Some(Duration::from_millis(ends.saturating_sub(now_ms)));
    }
    (listing.pages_left(now_ms, share) == 0).then(|| {
        let next_hour = hour_of(now_ms) + 3_600_000;
        Duration::from_millis(next_hour.saturating_sub(now_ms))
    })
}

/// Reads up to [`PAGES_PER_STEP`] pages (within the hour's share) from where the pass stands.
async fn read(app: &App, account_id: u64, listing: &mut Listing, share: u32) -> Stepped {
    let now = unix_millis();
    let budget = PAGES_PER_STEP.min(listing.pages_left(now, share));
    let mut pass = listing.pass.take().unwrap_or(Pass {
        started_ms: now,
        ..Pass::default()
    });
    let account = account_id.to_string();
    let (mut pages, mut complete, mut stopped) = (0, false, None);
    while pages < budget {
        if pass.offset >= MAX_FLAGS {
            tracing::error!(
                listed = pass.offset,
                "the workspace's flag list did not end; the pass ends here"
            );
            complete = true;
            break;
        }
        let page = flag_list::page(
            &app.background_vwo,
            app.token(),
            &account,
            pass.offset,
            PAGE_SIZE,
        );
        match page.await {
            Ok(page) => {
                pages += 1;
                if page.is_empty() {
                    complete = true;
                    break;
                }
                pass.offset += page.len() as u32;
                for (id, key) in page {
                    if !pass.seen.iter().any(|f| f.id == id) {
                        pass.seen.push(ListedFlag { id, key });
                    }
                }
            }
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    listing.spend(now, pages);
    if complete {
        listing.flags = pass.seen;
        listing.complete_ms = Some(unix_millis());
    } else {
        listing.pass = Some(pass);
    }
    let next = next_step(pages, complete, stopped.as_ref(), share);
    Stepped::Read {
        pages,
        complete,
        stopped: stopped.map(|e| e.to_string()),
        next,
    }
}

/// When the next step runs: after a complete pass, [`LIST_TTL`]; after a refused page, the wait
/// asked for (at least 10 s); else as long as `pages` take of the hour's `share`.
fn next_step(pages: u32, complete: bool, stopped: Option<&Error>, share: u32) -> Duration {
    if complete {
        return LIST_TTL;
    }
    let asked = match stopped {
        Some(Error::RateLimited { retry_after, .. }) => *retry_after,
        Some(Error::SlotBusy { retry_after, .. }) => Some(*retry_after),
        _ => None,
    };
    let spacing =
        Duration::from_millis(u64::from(pages.max(1)) * 3_600_000 / u64::from(share.max(1)));
    match stopped {
        Some(_) => spacing
            .max(asked.unwrap_or_default())
            .max(Duration::from_secs(10)),
        None => spacing,
    }
}

/// Ends the refresh: nothing scheduled (the next drop-down starts one).
async fn end(
    list: &WorkspaceList,
    refresh: Refresh,
    kept: Kept,
    why: &'static str,
) -> Result<Stepped> {
    list.store()
        .put(refresh.account_id, &kept.listing, kept.version, 0)
        .await?;
    Ok(Stepped::Ended(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_spaced_to_keep_within_the_hours_share() {
        // 360 pages an hour (a tenth of the token): 10 pages, then 100 s.
        assert_eq!(next_step(10, false, None, 360), Duration::from_secs(100));
        assert_eq!(next_step(3, true, None, 360), LIST_TTL);
        let busy = Error::SlotBusy {
            service: "VWO",
            retry_after: Duration::from_secs(2),
            kill_waiting: true,
        };
        assert_eq!(
            next_step(0, false, Some(&busy), 3600),
            Duration::from_secs(10)
        );
        let waiting = Error::RateLimited {
            service: "VWO",
            status: Some(429),
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            next_step(2, false, Some(&waiting), 360),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn a_fresh_list_or_a_spent_share_waits() {
        let now = 10 * 3_600_000 + 600_000;
        let fresh = Listing {
            complete_ms: Some(now - 60_000),
            ..Listing::default()
        };
        assert_eq!(
            due(&fresh, now, 360),
            Some(LIST_TTL - Duration::from_secs(60))
        );
        let mut spent = Listing::default();
        spent.spend(now, 360);
        assert_eq!(due(&spent, now, 360), Some(Duration::from_secs(3000)));
        assert_eq!(due(&Listing::default(), now, 360), None);
    }

    /// The refresh's schedule over `hours`, for a workspace of `flags` flags and a share of
    /// `share` pages an hour, each page taking a second (the token's pace): token requests an
    /// hour, and the longest time between two complete passes (how late a new flag may appear:
    /// a flag created just after its page was read is on the list when the next pass ends).
    fn simulate(flags: u32, share: u32, hours: u64) -> (f64, Duration) {
        let (mut now, end) = (0u64, hours * 3_600_000);
        let mut listing = Listing::default();
        let (mut requests, mut completions) = (0u64, Vec::new());
        while now < end {
            if let Some(wait) = due(&listing, now, share) {
                now += wait.as_millis() as u64;
                continue;
            }
            let budget = PAGES_PER_STEP.min(listing.pages_left(now, share));
            let mut pass = listing.pass.take().unwrap_or_default();
            let (mut pages, mut complete) = (0, false);
            while pages < budget {
                pages += 1;
                now += 1_000;
                let listed = (flags - pass.offset.min(flags)).min(PAGE_SIZE);
                if listed == 0 {
                    complete = true;
                    break;
                }
                pass.offset += listed;
            }
            listing.spend(now, pages);
            requests += u64::from(pages);
            if complete {
                listing.complete_ms = Some(now);
                completions.push(now);
            } else {
                listing.pass = Some(pass);
            }
            now += next_step(pages, complete, None, share).as_millis() as u64;
        }
        let worst = completions
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(end);
        (requests as f64 / hours as f64, Duration::from_millis(worst))
    }

    /// The figures BENCHMARKS.md states (`cargo test -p sentry-to-vwo flag_list_cost -- --nocapture`).
    #[test]
    fn flag_list_cost_per_hour_stays_within_the_share() {
        for flags in [100, 1_000, 10_000] {
            let (per_hour, worst) = simulate(flags, 360, 48);
            println!(
                "{flags:>6} flags: {per_hour:.0} token requests an hour; a new flag listed within {:.1} min",
                worst.as_secs_f64() / 60.0
            );
            assert!(per_hour <= 360.0, "{flags}: {per_hour}");
        }
        // The share binds: a tenth of the token at 10,000 flags, never more.
        let (per_hour, _) = simulate(10_000, 36, 48);
        assert!(per_hour <= 36.0, "{per_hour}");
    }

    #[test]
    fn the_message_names_the_workspace() {
        let text = Refresh {
            account_id: 654_321,
        }
        .encode()
        .unwrap();
        assert_eq!(text, r#"{"flag_list_refresh":{"account_id":654321}}"#);
        assert_eq!(
            Refresh::decode(&text),
            Some(Refresh {
                account_id: 654_321
            })
        );
        assert_eq!(Refresh::decode(r#"{"target":{}}"#), None);
    }
}
