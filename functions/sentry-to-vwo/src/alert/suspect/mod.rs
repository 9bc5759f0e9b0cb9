//! Stage 2b, the suspect: an alert whose rule names no flag but [`Feature::Suspect`] asks the
//! kill switch for the flag change that started the issue — judged as Sentry's own suspect flags
//! are (the issue page's `useLegacyEventSuspectFlags`: flag changes before the issue's **first
//! seen**), never against one event's clock, and never on one event alone unless the operator
//! opted in:
//!
//! - the flags on the alert's event (`contexts.flags.values`) that evaluated `true`;
//! - with a change, kept by change tracking in the rule's VWO environment (by its id; a flag's
//!   earlier changes too), within `SUSPECT_WINDOW_MINUTES` before the issue began (up to 60 s
//!   after still counts: clocks and VWO's webhook timestamp lag) that turned the flag on or
//!   changed what it serves;
//! - that `KILLABLE_FLAGS` allows;
//! - and that the issue's events back ([`evidence`]): on in its first event and in at least
//!   `SUSPECT_MIN_SHARE` of its latest events in the alert's environment, the issue having at
//!   least `SUSPECT_MIN_EVENTS` events (read with Sentry's API); or, with
//!   `SUSPECT_EVIDENCE=event`, the alert's event alone.
//!
//! When the issue began comes from its `issue.created` (kept by [`super::note`]) or from Sentry's
//! API; without either nothing is switched, and the answer says what to set up. One candidate
//! becomes the decision's flag — or, when its change touched one rule alone, that rule, paused
//! with VWO's rule toggle as `rule=` does; none or several make the decision "ignore", saying
//! which case it was.

mod evidence;

use std::collections::HashMap;
use std::time::Duration;

use bridge_platform::clock::unix_secs;
use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};
use bridge_state::latest_change::LatestChange;
use bridge_vwo::api::FlagTarget;
use bridge_vwo::projects::Environment;

use super::decide::Decided;
use super::deferred::{self, Wait};
use super::verify::Alert;
use crate::alert::decide::decision::{AlertFacts, Decision, Feature};
use crate::app::App;
use crate::config::{suspects_all, MAX_SUSPECTS};
use bridge_sentry::webhook::EventSummary;
use evidence::Found;

/// A flag on the event whose change makes it a suspect.
#[derive(Debug)]
pub struct Candidate {
    change: LatestChange,
    /// Seconds between the change and the issue's start (negative: after it).
    before: i64,
    /// When the issue began: `issue 1170820242 began (first seen 12:03:10 UTC)`.
    began: String,
    /// What backs it: `on in 37 of 37 of its latest events`.
    evidence: String,
}

impl Candidate {
    /// `search-v2 (switched on by ana@example.com 4 min before)`.
    fn describe(&self) -> String {
        format!("{} ({})", self.change.flag, self.change_described())
    }

    /// `switched on by ana@example.com 4 min before` (seconds under two minutes; `… 20 s after`
    /// for a change just after the issue began), or for a change of one rule `rule 'eu-50'
    /// changed by ana@example.com 11 min before`.
    fn change_described(&self) -> String {
        let ago = match self.before {
            s if s < 0 => format!("{} s after", -s),
            s if s < 120 => format!("{s} s before"),
            s => format!("{} min before", (s + 30) / 60),
        };
        let what = match &self.change.rule {
            Some(rule) => format!("rule '{rule}' changed"),
            None => self.change.kind.as_str().to_owned(),
        };
        let evidence = match self.evidence.as_str() {
            "" => String::new(),
            evidence => format!("; {evidence}"),
        };
        format!(
            "{what} by {} {ago} {}{evidence}",
            self.change.by, self.began
        )
    }
}

/// What the suspect stage made of a decision: the decisions to carry out now, or a wait for the
/// evidence (on the queue).
#[derive(Debug)]
pub enum Resolution {
    /// Carry these out.
    Now(Resolved),
    /// The evidence is not there yet.
    Later(Wait),
}

/// The decisions an alert's decision resolves to, and how many suspects its event named.
#[derive(Debug)]
pub struct Resolved {
    /// The decisions to carry out, in order; never empty.
    pub decisions: Vec<Decided>,
    /// For `@suspect`: how many suspects the alert's event named (1 when one is switched).
    pub suspects: Option<usize>,
}

impl Resolved {
    fn one(decided: Decided, suspects: Option<usize>) -> Resolution {
        Resolution::Now(Resolved {
            decisions: vec![decided],
            suspects,
        })
    }
}

/// Resolves a [`Feature::Suspect`] decision to the suspect's flag (with `SUSPECTS=all`, each
/// suspect's: at most [`MAX_SUSPECTS`]), or to "ignore" with the reason; any other decision
/// passes unchanged.
pub async fn resolve(
    app: &App,
    frame: &Frame<'_>,
    alert: &Alert,
    decided: Decided,
) -> Result<Resolution> {
    let Decided { decision, facts } = decided;
    let Decision::Toggle {
        target,
        enabled,
        restore,
        dry_run,
    } = decision
    else {
        return Ok(Resolved::one(Decided { decision, facts }, None));
    };
    if let Feature::Named(_) = Feature::of(&target.feature) {
        let decision = Decision::Toggle {
            target,
            enabled,
            restore,
            dry_run,
        };
        return Ok(Resolved::one(Decided { decision, facts }, None));
    }
    let query = &frame.query;
    let asked = Asked {
        prefix: query.first("flagPrefix").unwrap_or_default(),
        all: app.config.suspects_all
            || suspects_all(query.first("suspects")).map_err(Error::BadRequest)?,
    };
    let found = match suspect(app, frame, alert, &target, asked).await? {
        Suspects::Found(found) => found,
        Suspects::None(reason, suspects) => {
            let decision = Decision::Ignore(reason);
            return Ok(Resolved::one(Decided { decision, facts }, Some(suspects)));
        }
        Suspects::Later(wait) => return Ok(Resolution::Later(wait)),
    };
    let suspects = Some(found.len());
    let decisions = found
        .into_iter()
        .map(|candidate| {
            let facts = AlertFacts {
                suspect: Some(candidate.change_described()),
                ..facts.clone()
            };
            // A change of one rule: that rule is paused (VWO's rule toggle), the flag left on.
            let target = FlagTarget {
                feature: candidate.change.flag,
                rule: candidate.change.rule,
                ..target.clone()
            };
            let decision = Decision::Toggle {
                target,
                enabled,
                restore,
                dry_run,
            };
            Decided { decision, facts }
        })
        .collect();
    Ok(Resolution::Now(Resolved {
        decisions,
        suspects,
    }))
}

/// What the alert's URL asks of the suspect stage.
#[derive(Clone, Copy, Debug)]
struct Asked<'a> {
    /// `flagPrefix`: the environment's flags are named `<prefix><key>` in Sentry.
    prefix: &'a str,
    /// `SUSPECTS=all` or `suspects=all`: several suspects are each switched.
    all: bool,
}

/// What the suspect stage found.
#[derive(Debug)]
enum Suspects {
    /// The suspects to switch (one, or with `all` up to [`MAX_SUSPECTS`], most recent change
    /// first).
    Found(Vec<Candidate>),
    /// Why none is switched, and how many candidates there were.
    None(String, usize),
    /// The evidence is not there yet.
    Later(Wait),
}

/// The suspects of `alert`'s issue in the rule's environment, judged against the issue.
async fn suspect(
    app: &App,
    frame: &Frame<'_>,
    alert: &Alert,
    target: &FlagTarget,
    asked: Asked<'_>,
) -> Result<Suspects> {
    let prefix = asked.prefix;
    let (event, on, issue) = match flags_on(alert, prefix) {
        Ok(found) => found,
        Err(reason) => return Ok(Suspects::None(reason, 0)),
    };
    let (gathered, changes) = tokio::join!(
        evidence::gather(app, frame, alert, &issue, event.tag("environment")),
        changes_of(app, alert, target, &on)
    );
    let gathered = match gathered? {
        Found::Known(gathered) => gathered,
        Found::Unknown(reason) => return Ok(Suspects::None(reason, 0)),
        Found::Later(wait) => return Ok(Suspects::Later(wait)),
    };
    let (environment, changes) = match changes? {
        Ok(changes) => changes,
        Err(wait) => return Ok(Suspects::Later(wait)),
    };
    let began = &gathered.began;
    let window = app.config.suspect_window;
    let found = candidates(changes.values(), began, window, |flag| {
        killable(app, &environment, flag)
    });
    if found.is_empty() {
        let reason = format!(
            "no suspect: none of the {} flags on the event that were on changed in {} in the {} min before {}",
            on.len(),
            environment.name,
            window.as_secs() / 60,
            began.describe()
        );
        return Ok(Suspects::None(reason, 0));
    }
    let mut candidates = match evidence::judge(app, &gathered, prefix, found) {
        Ok(backed) => backed,
        Err(reason) => return Ok(Suspects::None(reason, 0)),
    };
    Ok(match candidates.len() {
        1 => Suspects::Found(candidates),
        n if n > 1 && asked.all => {
            candidates.truncate(MAX_SUSPECTS);
            Suspects::Found(candidates)
        }
        n => Suspects::None(
            format!(
                "{n} suspects: {}; not guessing",
                candidates
                    .iter()
                    .map(Candidate::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            n,
        ),
    })
}

/// The rule's environment (its VWO id) and the changes change tracking kept there of the `on`
/// flags. Before Sentry is answered (with the queue), the environment comes from what is cached
/// alone: when no cache knows it, VWO's environments are read after the answer (the wait).
async fn changes_of(
    app: &App,
    alert: &Alert,
    target: &FlagTarget,
    on: &[&str],
) -> Result<std::result::Result<(Environment, HashMap<String, LatestChange>), Wait>> {
    let (account, wanted) = (&target.account, &target.environment);
    let environment = if alert.pass.answered() || !deferred::possible(app) {
        app.guard_rails
            .environment(app.lookup(), account, wanted)
            .await?
    } else {
        let known = app
            .guard_rails
            .known_environment(app.catalog(), account, wanted);
        match known.await {
            Some(environment) => environment,
            None => {
                return Ok(Err(Wait::Environment {
                    environment: wanted.clone(),
                }))
            }
        }
    };
    let store = app.latest_changes().ok_or_else(|| {
        Error::Config(
            "feature=@suspect needs STATE_TABLE (change tracking's changes are kept there)".into(),
        )
    })?;
    let changes = store.get(&environment.id, on, unix_secs()).await?;
    Ok(Ok((environment, changes)))
}

/// The alert's event, the flags on it that were on (this environment's: with `flagPrefix`,
/// only the flags so named, without it), and its issue; or why there is no suspect.
fn flags_on<'a>(
    alert: &'a Alert,
    prefix: &str,
) -> std::result::Result<(&'a EventSummary, Vec<&'a str>, String), String> {
    let Some(event) = event_of(alert) else {
        return Err(format!(
            "no suspect: a {} alert carries no event (feature=@suspect needs an issue alert)",
            alert.resource
        ));
    };
    let on: Vec<&str> = event
        .flags
        .iter()
        .filter(|f| f.result)
        .filter_map(|f| f.flag.strip_prefix(prefix))
        .collect();
    if let Some(reason) = no_flags(event, &on) {
        return Err(reason);
    }
    let issue = event
        .issue()
        .ok_or("no suspect: the alert's event names no issue (issue_id)")?;
    Ok((event, on, issue))
}

/// The alert's event: an issue alert's `event`, or an `error.created`'s `error`.
fn event_of(alert: &Alert) -> Option<&EventSummary> {
    let data = &alert.envelope.data;
    [&data.event, &data.error]
        .into_iter()
        .find(|e| !e.datetime.is_null() || e.has_flags_context)
}

/// Why the event's flags name no candidate at all, if so.
fn no_flags(event: &EventSummary, on: &[&str]) -> Option<String> {
    if !event.has_flags_context || event.flags.is_empty() {
        return Some(
            "no suspect: the event carries no flags — the application records none (evaluation \
             tracking, integrations/, is not installed or recorded nothing before the error)"
                .into(),
        );
    }
    on.is_empty().then(|| {
        format!(
            "no suspect: none of the {} flags on the event was on",
            event.flags.len()
        )
    })
}

/// The changes that make suspects: a flag's change (its latest or an earlier one) that turned it
/// on or changed it, within `window` before the issue `began` or up to [`LATE_CHANGE`] after,
/// and `allowed`; for each flag its latest such change; most recent first.
fn candidates<'a>(
    changes: impl Iterator<Item = &'a LatestChange>,
    began: &evidence::Began,
    window: Duration,
    allowed: impl Fn(&str) -> bool,
) -> Vec<Candidate> {
    let window = window.as_secs() as i64;
    let late = LATE_CHANGE.as_secs() as i64;
    let mut found: Vec<Candidate> = changes
        .filter(|latest| allowed(&latest.flag))
        .filter_map(|latest| {
            latest
                .all()
                .filter(|c| c.kind.may_start_an_issue())
                .map(|c| (began.at - c.at, c))
                .filter(|(before, _)| (-late..=window).contains(before))
                .min_by_key(|(before, _)| *before)
        })
        .map(|(before, change)| Candidate {
            change: LatestChange {
                earlier: Vec::new(),
                ..change.clone()
            },
            before,
            began: began.describe(),
            evidence: String::new(),
        })
        .collect();
    found.sort_by(|a, b| (a.before, &a.change.flag).cmp(&(b.before, &b.change.flag)));
    found
}

/// How long after the issue's first seen a change still counts: the event's clock and VWO's
/// webhook timestamp lag.
pub const LATE_CHANGE: Duration = Duration::from_secs(60);

/// Whether `KILLABLE_FLAGS` lets the kill switch switch `flag` in `environment`.
fn killable(app: &App, environment: &Environment, flag: &str) -> bool {
    app.guard_rails
        .killable
        .as_ref()
        .is_none_or(|list| list.matches(environment, flag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_state::latest_change::ChangeKind;

    fn change(flag: &str, at: i64, kind: ChangeKind) -> LatestChange {
        LatestChange {
            environment_id: "1".into(),
            flag: flag.into(),
            at,
            kind,
            by: "ana@example.com".into(),
            rule: None,
            earlier: Vec::new(),
        }
    }

    #[test]
    fn candidates_are_changes_before_the_issue_began_or_just_after_most_recent_first() {
        let at = 1_796_500_000;
        let began = evidence::Began::at(at, "1170820242");
        let changes = [
            change("search-v2", at - 240, ChangeKind::SwitchedOn),
            LatestChange {
                rule: Some("eu-50".into()),
                ..change("new-pricing", at - 660, ChangeKind::Changed)
            },
            change("old", at - 3700, ChangeKind::SwitchedOn),
            change("just-after", at + 20, ChangeKind::SwitchedOn),
            change("too-late", at + 61, ChangeKind::SwitchedOn),
            change("off", at - 60, ChangeKind::SwitchedOff),
            change("listed-no", at - 60, ChangeKind::Created),
        ];
        let found = candidates(changes.iter(), &began, Duration::from_secs(3600), |flag| {
            flag != "listed-no"
        });
        let flags: Vec<&str> = found.iter().map(|c| c.change.flag.as_str()).collect();
        assert_eq!(flags, ["just-after", "search-v2", "new-pricing"]);
        assert!(found[1]
            .describe()
            .starts_with("search-v2 (switched on by ana@example.com 4 min before issue 1170820242 began (first seen "));
        assert!(found[0].describe().contains("20 s after issue"));
        assert!(found[2]
            .describe()
            .contains("rule 'eu-50' changed by ana@example.com 11 min before"));
    }

    #[test]
    fn the_change_that_started_the_issue_is_found_behind_a_later_edit() {
        let at = 1_796_500_000;
        let began = evidence::Began::at(at, "7");
        // Switched on 10 minutes before the issue began, edited again two hours later.
        let cause = change("new-header", at - 600, ChangeKind::SwitchedOn);
        let edit = LatestChange {
            earlier: vec![cause],
            ..change("new-header", at + 7200, ChangeKind::Changed)
        };
        let found = candidates(
            [&edit].into_iter(),
            &began,
            Duration::from_secs(3600),
            |_| true,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].change.at, at - 600);
        assert_eq!(found[0].before, 600);
        // An issue that began yesterday: today's change is no suspect.
        let yesterday = evidence::Began::at(at - 86_400, "7");
        let old = candidates(
            [&edit].into_iter(),
            &yesterday,
            Duration::from_secs(3600),
            |_| true,
        );
        assert!(old.is_empty());
    }
}
