//! Stage 2, lease: the environment is one delivery's at a time, from its stored snapshot to the
//! next; the environment's first delivery records a baseline instead, and sends nothing.

use bridge_platform::Result;
use bridge_vwo::settings_file::snapshot::Snapshot;

use super::{read, Delivery};
use crate::answer::{self, Delivered, Handled};
use crate::app::App;
use crate::state::Acquired;

/// Takes the environment's lease under a name no other delivery holds (or finds it has no
/// snapshot yet).
pub async fn take<'a>(delivery: &Delivery<'a>) -> Result<Acquired<'a>> {
    let config = &delivery.app.config;
    let owner = delivery.frame.owner();
    let environment = &delivery.target.environment;
    let app: &'a App = delivery.app;
    app.state
        .acquire(environment, &owner, config.lease, config.claim_wait)
        .await
}

/// The environment's first delivery: the flags of its settings file, and as much of the
/// workspace's flag list as this delivery may read, become the baseline; nothing is sent to
/// Sentry. Later deliveries read the rest of the list. Returns the outcome and the number of
/// flags read.
pub(crate) async fn record_baseline(delivery: &Delivery<'_>) -> Result<(Delivered, usize)> {
    let mut baseline = read::environment(delivery, None, &Snapshot::default()).await?;
    baseline.listing = Some(0);
    let progress = read::rest_of_list(delivery, &mut baseline).await;
    let flags = baseline.flags.len();
    let state = &delivery.app.state;
    if !state
        .create_baseline(&delivery.target.environment, &baseline)
        .await?
    {
        let delivered = Delivered {
            handled: Handled::Ignored("baseline already recorded by a concurrent delivery".into()),
            flags,
            listing: None,
        };
        return Ok((delivered, flags));
    }
    Ok((
        answer::delivered(Handled::Baseline, &baseline, progress),
        flags,
    ))
}
