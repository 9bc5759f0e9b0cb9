//! Stage 2, decide: the flag (or rule), environment and state this alert asks for, from the
//! rule's settings in the payload and the function URL's query.

use bridge_platform::Result;
use lambda_http::{Request, RequestExt};

use super::verify::Alert;
use crate::answer::Report;
use crate::app::App;
use crate::decision::{self, AlertFacts, Decision, FlagChoice};

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
pub fn decide(app: &App, req: &Request, alert: &Alert<'_>, report: &mut Report) -> Result<Decided> {
    let facts = decision::alert_facts(&alert.resource, &alert.envelope);
    report.rule = facts.rule.clone();
    let query = req.query_string_parameters();
    let choice =
        FlagChoice::from_pairs(QUERY.into_iter().filter_map(|k| Some((k, query.first(k)?))));
    let decision = decision::decide(&app.config, &alert.resource, &alert.envelope, choice)?;
    if let Decision::Toggle { target, .. } = &decision {
        report.feature = Some(target.feature.clone());
        report.environment = Some(target.environment.clone());
    }
    Ok(Decided { decision, facts })
}
