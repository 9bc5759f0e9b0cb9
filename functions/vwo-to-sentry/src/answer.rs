//! Every answer change tracking gives VWO, built in one place: what a delivery did becomes the
//! HTTP response and the outcome logged and counted; [`Report`] is what its log line says.

use bridge_sentry::change_tracking::FlagChange;
use bridge_vwo::settings_file::snapshot::Snapshot;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};

use bridge_platform::request::{ignored_response, json_response};

use bridge_vwo::flag_list;

/// What one invocation did, logged as one line.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// `?environment=` of the webhook URL.
    pub(crate) environment: Option<String>,
    /// VWO's `action` (bounded).
    pub(crate) action: Option<String>,
    /// Flags in the environment's snapshot.
    pub(crate) flags: usize,
    /// Changes to report.
    pub(crate) changes: usize,
    /// Of those, changes the kill switch made.
    pub(crate) by_kill_switch: usize,
}

/// What a delivery did.
pub(crate) enum Handled {
    /// Nothing, for this reason (a concurrent baseline).
    Ignored(String),
    /// The environment recorded anew; how many flags it has is [`Delivered::flags`].
    Baseline,
    /// Nothing changed since the stored snapshot.
    Unchanged,
    /// These changes were sent to Sentry; these flags' keys were too long for it.
    Sent {
        sent: Vec<FlagChange>,
        skipped: Vec<String>,
    },
}

/// A delivery's outcome and, while the workspace's flag list is incomplete, where it stands.
pub(crate) struct Delivered {
    pub(crate) handled: Handled,
    /// Flags in the snapshot committed (the flag list's additions included).
    pub(crate) flags: usize,
    pub(crate) listing: Option<Listing>,
}

/// An incomplete flag list after this delivery.
pub(crate) struct Listing {
    pub(crate) next_offset: u32,
    pub(crate) progress: flag_list::Progress,
}

/// The answer to VWO for a delivery that did its work: 200, or 503 while the flag list is
/// incomplete (VWO delivers again in 1–2 s, and that delivery reads the next pages).
pub(crate) fn respond(
    handled: Handled,
    flags: usize,
    listing: Option<Listing>,
) -> (&'static str, Response<Body>, String) {
    let (outcome, mut body, detail) = match handled {
        // Only a concurrent baseline is ignored: it reads no flag list.
        Handled::Ignored(reason) => return ("ignored", ignored_response(&reason), reason),
        Handled::Baseline => (
            "baseline",
            json!({ "baseline": { "flags": flags } }),
            String::new(),
        ),
        Handled::Unchanged => ("unchanged", json!({ "unchanged": true }), String::new()),
        Handled::Sent { sent, skipped } => (
            "sent",
            json!({
                "sent": sent.iter().map(|c| json!({"flag": c.flag, "action": c.action, "change_id": c.change_id})).collect::<Vec<Value>>(),
                "skipped": skipped,
            }),
            String::new(),
        ),
    };
    let Some(listing) = listing else {
        return (outcome, json_response(StatusCode::OK, &body), detail);
    };
    let stopped = listing.progress.stopped.unwrap_or_default();
    body["listing"] = json!({
        "complete": false,
        "listed": listing.next_offset,
        "pages_read": listing.progress.pages,
        "detail": format!("listing the workspace's flags ({} a page, at the token's pace): {stopped}", flag_list::PAGE_SIZE),
    });
    (
        "listing",
        json_response(StatusCode::SERVICE_UNAVAILABLE, &body),
        stopped,
    )
}

/// The outcome with the snapshot committed and where its flag list stands.
pub(crate) fn delivered(
    handled: Handled,
    current: &Snapshot,
    progress: Option<flag_list::Progress>,
) -> Delivered {
    Delivered {
        handled,
        flags: current.flags.len(),
        listing: current
            .listing
            .zip(progress)
            .map(|(next_offset, progress)| Listing {
                next_offset,
                progress,
            }),
    }
}
