//! Every flag of the workspace on the flag drop-down: a flag that was never on in the chosen
//! environment is absent from its settings file, so the drop-down adds the workspace's flags the
//! file lacks, marked off, from the list the state table keeps ([`bridge_state::workspace_flags`]).
//!
//! The drop-down never waits for VWO: it reads what is kept (one DynamoDB read) and, when no
//! refresh is scheduled, starts one by putting a message on the toggle queue. The worker reads the
//! list a few pages at a time ([`refresh`]), at the rate gate's background priority (kills first),
//! within `FLAG_LIST_PAGES_PER_HOUR` of the token's 3,600 requests an hour, and keeps it fresh:
//! a new pass [`LIST_TTL`] after the last one ended, for as long as a drop-down asked for the
//! list in the last week.

pub mod refresh;

use std::time::Duration;

use bridge_state::workspace_flags::WorkspaceFlags;

use super::Flag;
use crate::toggle::queue::ToggleQueue;
use refresh::Refresh;

/// How long a complete list is fresh: the next pass starts this long after the last one ended.
pub const LIST_TTL: Duration = Duration::from_secs(600);

/// How long a started refresh counts as scheduled before its first step has run (a lost
/// message lets the next drop-down start another after this).
pub const REFRESH_HOLD: Duration = Duration::from_secs(600);

/// How often a drop-down's ask is noted while a refresh is scheduled.
const WANTED_EVERY: Duration = Duration::from_secs(3600);

/// The workspace's flag list as the drop-down reads it, and the queue its refresh runs on.
#[derive(Clone, Debug)]
pub struct WorkspaceList {
    store: WorkspaceFlags,
    queue: Option<ToggleQueue>,
}

impl WorkspaceList {
    /// The lists kept in `store`, refreshed through `queue` (without a queue the list is never
    /// read, and the drop-down offers the settings file's flags and change tracking's).
    pub fn new(store: WorkspaceFlags, queue: Option<ToggleQueue>) -> Self {
        WorkspaceList { store, queue }
    }

    /// The kept lists.
    pub fn store(&self) -> &WorkspaceFlags {
        &self.store
    }

    /// The queue the refresh runs on.
    pub fn queue(&self) -> Option<&ToggleQueue> {
        self.queue.as_ref()
    }

    /// The flags of workspace `account_id` that `listed` lacks, marked off since `now_ms`; and,
    /// when no refresh is scheduled, one is started. Never reads VWO; a failure leaves the
    /// drop-down as it was (logged).
    pub async fn off_flags(&self, account_id: u64, listed: &[Flag], now_ms: u64) -> Vec<Flag> {
        let kept = match self.store.get(account_id).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the workspace's flag list; the drop-down shows the settings file's");
                return Vec::new();
            }
        };
        if let Err(e) = self
            .keep_fresh(account_id, kept.active_until_ms, kept.wanted_ms, now_ms)
            .await
        {
            tracing::warn!(error = %e, "could not start the flag list's refresh; the next drop-down tries again");
        }
        kept.listing
            .known()
            .into_iter()
            .filter(|f| !listed.iter().any(|l| l.id == f.id || l.key == f.key))
            .map(|f| Flag::off(&f.id, &f.key, now_ms))
            .collect()
    }

    /// Starts a refresh when none is scheduled (one caller across containers wins the claim);
    /// else notes the ask, once an hour, so that refreshes go on.
    async fn keep_fresh(
        &self,
        account_id: u64,
        active_until_ms: u64,
        wanted_ms: u64,
        now_ms: u64,
    ) -> bridge_platform::Result<()> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        if active_until_ms > now_ms {
            if now_ms.saturating_sub(wanted_ms) > WANTED_EVERY.as_millis() as u64 {
                self.store.wanted(account_id, now_ms).await?;
            }
            return Ok(());
        }
        let until = now_ms + REFRESH_HOLD.as_millis() as u64;
        if self.store.claim(account_id, now_ms, until).await? {
            let message = Refresh { account_id }.encode()?;
            queue.send_text(&message, Duration::ZERO).await?;
            tracing::info!(
                account_id,
                "the workspace's flag list is being refreshed in the background"
            );
        }
        Ok(())
    }
}
