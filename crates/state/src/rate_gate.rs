//! One rate limit per VWO token across every container, kills first, and VWO's waits kept for
//! the whole token; the same gate paces the kill switch's reads of Sentry's API per organisation
//! ([`RateGate::for_service`]).
//!
//! VWO allows 1 request per second **per token**, and after a 429 or a 503 asks for a wait of at
//! least 60 s — again per token (docs/protocols.md §3). One DynamoDB item per token
//! (`environment = "ratelimit#<token parameter>"`) holds:
//! - `next_ms`: when the next request slot is free. A caller takes the slot with a conditional
//!   write that moves it one interval past now, only if it is not in the future;
//! - `blocked_until_ms`, `blocked_status`: VWO's wait. Whoever gets a 429/503 writes it
//!   ([`RateGate::block`]); until then no caller of the token gets a slot, and each is told how
//!   long is left ([`Error::RateLimited`]) instead of calling VWO;
//! - `kill_wait_ms`: until when a kill is waiting for a slot. A [`Priority::Background`] caller
//!   (change tracking's reads) takes a slot only when no kill is waiting, and gives up rather than
//!   queue behind one ([`Error::SlotBusy`]): the kill takes the next slot.
//!
//! VWO counts from when a request arrives, the gate from when its slot was taken. A caller that
//! sends later than [`LATE_AFTER`] past its slot (a slow DynamoDB round trip, work done beside
//! the take) moves the next slot by as much before it sends ([`RateGate::restamp`]), so two
//! requests never reach VWO closer than one interval because the first one left late.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use tokio::time::Instant;

use crate::dynamo::condition;
use crate::keys;
use bridge_platform::clock::unix_millis as now_ms;
use bridge_platform::error::{Error, Result};

/// The longest a background caller waits for a free slot before it gives up (and its caller,
/// change tracking, lets VWO deliver the webhook again).
pub const BACKGROUND_PATIENCE: Duration = Duration::from_secs(2);

/// A request sent more than this after its slot was taken moves the next slot
/// ([`RateGate::restamp`]); within it, the interval's margin over VWO's limit covers the delay.
pub const LATE_AFTER: Duration = Duration::from_millis(50);

/// A slot this caller took: when, and the next slot it set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    at_ms: u64,
    next_ms: u64,
}

impl Taken {
    /// The next slot, for a request sent at `sent_ms`: `None` while the request is on time.
    fn late_next(self, sent_ms: u64) -> Option<u64> {
        let late = sent_ms.saturating_sub(self.at_ms);
        // Without an interval (pacing off) there is nothing to keep.
        (self.next_ms > self.at_ms && late > LATE_AFTER.as_millis() as u64)
            .then(|| self.next_ms + late)
    }
}

/// Who is asking for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// A kill (or restore): takes the next free slot and announces that it waits.
    Kill,
    /// Anything else using the token (change tracking's reads): only slots no kill wants.
    Background,
}

/// A shared "at most one request per interval" gate.
#[derive(Clone, Debug)]
pub struct RateGate {
    client: Client,
    table: String,
    key: String,
    interval: Duration,
    priority: Priority,
    service: &'static str,
}

/// The gate's item as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GateState {
    next_ms: u64,
    blocked_until_ms: u64,
    blocked_status: Option<u16>,
    kill_wait_ms: u64,
}

impl GateState {
    fn from_item(item: &HashMap<String, AttributeValue>) -> GateState {
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        GateState {
            next_ms: number("next_ms").unwrap_or_default(),
            blocked_until_ms: number("blocked_until_ms").unwrap_or_default(),
            blocked_status: number("blocked_status").and_then(|s| u16::try_from(s).ok()),
            kill_wait_ms: number("kill_wait_ms").unwrap_or_default(),
        }
    }
}

/// What a caller should do, given the gate's state at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// The token is under VWO's wait for this much longer.
    Blocked(Duration, Option<u16>),
    /// Wait this long for the next slot, then try again.
    Wait(Duration),
    /// A background caller yields.
    Yield(Duration, bool),
}

/// The decision after a failed reservation (pure: unit-tested).
fn next_step(state: GateState, now: u64, priority: Priority, patience_left: Duration) -> Next {
    if state.blocked_until_ms > now {
        return Next::Blocked(
            Duration::from_millis(state.blocked_until_ms - now),
            state.blocked_status,
        );
    }
    let wait = Duration::from_millis(state.next_ms.saturating_sub(now));
    match priority {
        Priority::Kill => Next::Wait(wait),
        Priority::Background => {
            let kill_waiting = state.kill_wait_ms > now;
            if kill_waiting || wait > patience_left {
                // Past the kill's slot and one more interval, at the least.
                Next::Yield(wait + Duration::from_secs(1), kill_waiting)
            } else {
                Next::Wait(wait)
            }
        }
    }
}

impl RateGate {
    /// A gate named `name` (the token's parameter name) in `table`, one request per `interval`,
    /// for kills ([`Priority::Kill`]).
    pub fn new(client: Client, table: impl Into<String>, name: &str, interval: Duration) -> Self {
        RateGate {
            client,
            table: table.into(),
            key: keys::rate_limit(name),
            interval,
            priority: Priority::Kill,
            service: "VWO",
        }
    }

    /// The same gate for requests to `service` (`Sentry`: its errors name it).
    pub fn for_service(mut self, service: &'static str) -> Self {
        self.service = service;
        self
    }

    /// The same gate for callers of `priority`.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// The priority this gate reserves with.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Waits for this caller's slot. Fails at once with [`Error::RateLimited`] while the token
    /// is under VWO's wait, with [`Error::SlotBusy`] when the slot would come after `deadline`
    /// (or, for a background caller, when a kill wants it), and with [`Error::State`] when
    /// DynamoDB fails. Give what it returns to [`RateGate::restamp`] just before the request.
    pub async fn reserve(&self, deadline: Instant) -> Result<Taken> {
        let started = Instant::now();
        let mut announced = false;
        loop {
            let now = now_ms();
            if let Some(taken) = self.try_take(now).await? {
                return Ok(taken);
            }
            let state = self.read().await?;
            let patience_left = BACKGROUND_PATIENCE.saturating_sub(started.elapsed());
            let wait = match next_step(state, now, self.priority, patience_left) {
                Next::Blocked(left, status) => {
                    return Err(Error::RateLimited {
                        service: self.service,
                        status,
                        retry_after: Some(left),
                    })
                }
                Next::Yield(after, kill_waiting) => {
                    return Err(Error::SlotBusy {
                        service: self.service,
                        retry_after: after,
                        kill_waiting,
                    })
                }
                Next::Wait(wait) => wait,
            };
            if Instant::now() + wait > deadline {
                return Err(Error::SlotBusy {
                    service: self.service,
                    retry_after: wait,
                    kill_waiting: false,
                });
            }
            if self.priority == Priority::Kill && !announced {
                self.announce_kill(deadline).await;
                announced = true;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Called just before the request of a slot goes out: if it goes later than [`LATE_AFTER`]
    /// past the take, the next slot moves by as much (unless someone took it already, which a
    /// delay shorter than the interval rules out). Best effort: a failure is logged.
    pub async fn restamp(&self, taken: Taken) {
        let Some(later) = taken.late_next(now_ms()) else {
            return;
        };
        let result = crate::dynamo::update_item(&self.client, &self.table, &self.key)
            .update_expression("SET next_ms = :later")
            .condition_expression("next_ms = :next")
            .expression_attribute_values(":later", AttributeValue::N(later.to_string()))
            .expression_attribute_values(":next", AttributeValue::N(taken.next_ms.to_string()))
            .send()
            .await;
        match condition("rate gate (restamp a late slot)", result) {
            Ok(true) => tracing::debug!(
                late_ms = later - taken.next_ms,
                "request left late: next slot moved"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not move the next slot"),
        }
    }

    /// Takes the slot if it is free (and, for a background caller, no kill waits for it).
    async fn try_take(&self, now: u64) -> Result<Option<Taken>> {
        let next = now + self.interval.as_millis() as u64;
        let mut free = "(attribute_not_exists(next_ms) OR next_ms <= :now) \
             AND (attribute_not_exists(blocked_until_ms) OR blocked_until_ms <= :now)"
            .to_owned();
        if self.priority == Priority::Background {
            free.push_str(" AND (attribute_not_exists(kill_wait_ms) OR kill_wait_ms <= :now)");
        }
        let result = crate::dynamo::update_item(&self.client, &self.table, &self.key)
            .update_expression("SET next_ms = :next, expires_at = :expires")
            .condition_expression(free)
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((next / 1000 + 3600).to_string()),
            )
            .send()
            .await;
        Ok(condition("rate gate", result)?.then_some(Taken {
            at_ms: now,
            next_ms: next,
        }))
    }

    /// Tells background callers that a kill waits for a slot until `deadline` at the latest.
    /// Best effort: a failure only means a background read may take one slot first.
    async fn announce_kill(&self, deadline: Instant) {
        let until = now_ms()
            + deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
        let result = crate::dynamo::update_item(&self.client, &self.table, &self.key)
            .update_expression("SET kill_wait_ms = :until")
            .condition_expression("attribute_not_exists(kill_wait_ms) OR kill_wait_ms < :until")
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .send()
            .await;
        // A later announcement already standing (`Ok(false)`) is as good as ours.
        if let Err(e) = condition("rate gate (announce a kill)", result) {
            tracing::warn!(error = %e, "could not announce a waiting kill");
        }
    }

    /// Records VWO's wait for the whole token: no caller gets a slot for `wait` from now. A
    /// longer wait already recorded stands. Best effort (logged): the caller that got the 429
    /// waits in any case.
    pub async fn block(&self, status: Option<u16>, wait: Duration) {
        let until = now_ms() + wait.as_millis() as u64;
        let result = crate::dynamo::update_item(&self.client, &self.table, &self.key)
            .update_expression(
                "SET blocked_until_ms = :until, blocked_status = :status, expires_at = :expires",
            )
            .condition_expression(
                "attribute_not_exists(blocked_until_ms) OR blocked_until_ms < :until",
            )
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(
                ":status",
                AttributeValue::N(status.unwrap_or(429).to_string()),
            )
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((until / 1000 + 3600).to_string()),
            )
            .send()
            .await;
        match condition("rate gate (record VWO's wait)", result) {
            Ok(true) => tracing::warn!(
                service = self.service,
                wait_secs = wait.as_secs(),
                status,
                "asked to wait: no call through this gate until the wait is over"
            ),
            // A longer wait is recorded already.
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, service = self.service, "could not record the wait in the rate gate")
            }
        }
    }

    /// What is left of VWO's wait for the token, if any (with the status that asked for it).
    pub async fn blocked_for(&self) -> Result<Option<(Duration, Option<u16>)>> {
        let state = self.read().await?;
        let now = now_ms();
        Ok((state.blocked_until_ms > now).then(|| {
            (
                Duration::from_millis(state.blocked_until_ms - now),
                state.blocked_status,
            )
        }))
    }

    async fn read(&self) -> Result<GateState> {
        let item =
            crate::dynamo::get_item(&self.client, &self.table, &self.key, "rate gate").await?;
        Ok(item.as_ref().map(GateState::from_item).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn state(next: u64, blocked: u64, kill_wait: u64) -> GateState {
        GateState {
            next_ms: next,
            blocked_until_ms: blocked,
            blocked_status: Some(429),
            kill_wait_ms: kill_wait,
        }
    }

    #[test]
    fn a_blocked_token_stops_every_caller_with_the_time_left() {
        for priority in [Priority::Kill, Priority::Background] {
            assert_eq!(
                next_step(
                    state(NOW + 500, NOW + 45_000, 0),
                    NOW,
                    priority,
                    BACKGROUND_PATIENCE
                ),
                Next::Blocked(Duration::from_secs(45), Some(429))
            );
        }
    }

    #[test]
    fn a_kill_waits_for_the_next_slot() {
        assert_eq!(
            next_step(state(NOW + 700, 0, 0), NOW, Priority::Kill, Duration::ZERO),
            Next::Wait(Duration::from_millis(700))
        );
    }

    #[test]
    fn background_yields_to_a_waiting_kill_and_never_queues_long() {
        assert_eq!(
            next_step(
                state(NOW + 700, 0, NOW + 5_000),
                NOW,
                Priority::Background,
                BACKGROUND_PATIENCE
            ),
            Next::Yield(Duration::from_millis(1_700), true)
        );
        assert_eq!(
            next_step(
                state(NOW + 700, 0, NOW - 1),
                NOW,
                Priority::Background,
                BACKGROUND_PATIENCE
            ),
            Next::Wait(Duration::from_millis(700))
        );
        assert_eq!(
            next_step(
                state(NOW + 700, 0, 0),
                NOW,
                Priority::Background,
                Duration::from_millis(100)
            ),
            Next::Yield(Duration::from_millis(1_700), false)
        );
    }

    #[test]
    fn a_slot_used_late_moves_the_next_one_by_the_delay() {
        let taken = Taken {
            at_ms: NOW,
            next_ms: NOW + 1_100,
        };
        assert_eq!(taken.late_next(NOW), None);
        assert_eq!(taken.late_next(NOW + 50), None);
        assert_eq!(taken.late_next(NOW + 300), Some(NOW + 1_400));
        let unpaced = Taken {
            at_ms: NOW,
            next_ms: NOW,
        };
        assert_eq!(unpaced.late_next(NOW + 300), None);
    }

    #[test]
    fn the_item_reads_with_defaults() {
        let item = HashMap::from([
            ("next_ms".to_owned(), AttributeValue::N("5".into())),
            ("blocked_status".to_owned(), AttributeValue::N("503".into())),
        ]);
        let read = GateState::from_item(&item);
        assert_eq!(read.next_ms, 5);
        assert_eq!(read.blocked_until_ms, 0);
        assert_eq!(read.blocked_status, Some(503));
    }
}
