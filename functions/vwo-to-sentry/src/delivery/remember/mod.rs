//! Stage 6, remember: once Sentry took the changes, the kill switch's records that explained
//! some are consumed (each names one change), and every change is kept for the kill switch's
//! suspect ([`latest`]); the snapshot itself is committed with the lease.

pub mod latest;

use bridge_platform::Result;
use bridge_vwo::settings_file::snapshot::Snapshot;

use super::diff::Change;
use super::send::{attribution, Sent};
use super::Delivery;

/// Remembers what `sent` sent of `reportable`, the changes that led to `current`.
pub async fn remember(
    delivery: &Delivery<'_>,
    current: &Snapshot,
    reportable: &[Change],
    sent: &Sent,
) -> Result<()> {
    let app = delivery.app;
    attribution::consume(&app.kill_records, &sent.kills).await;
    let kept: Vec<_> = reportable
        .iter()
        .map(latest::what)
        .zip(&sent.changes)
        .collect();
    let (timestamp, prefix) = (delivery.timestamp, &delivery.target.flag_prefix);
    latest::record(&app.latest_changes, current, timestamp, prefix, &kept).await
}
