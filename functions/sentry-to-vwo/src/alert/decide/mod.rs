//! Stage 2, decide: the flag (or rule), environment and state this alert asks for, from the
//! rule's settings in the payload and the function URL's query.

pub mod decision;

use bridge_platform::frame::Frame;
use bridge_platform::Result;

use super::verify::Alert;
use crate::app::App;
use decision::{AlertFacts, Decision, FlagChoice};

/// The query parameters a function URL may carry.
const QUERY: [&str; 6] = [
    "feature",
    "environment",
    "isEnabled",
    "account",
    "dryRun",
    "rule",
];

/// What the alert asks for, and the facts about its rule that the kill record keeps.
#[derive(Debug)]
pub struct Decided {
    /// What to do.
    pub decision: Decision,
    /// The alert rule's name, id and link.
    pub facts: AlertFacts,
}

/// Decides what `alert` asks for.
pub fn decide(app: &App, frame: &Frame<'_>, alert: &Alert) -> Result<Decided> {
    let facts = decision::alert_facts(&alert.resource, &alert.envelope);
    let query = &frame.query;
    let choice =
        FlagChoice::from_pairs(QUERY.into_iter().filter_map(|k| Some((k, query.first(k)?))));
    let decision = decision::decide(&app.config, &alert.resource, &alert.envelope, choice)?;
    Ok(Decided { decision, facts })
}
