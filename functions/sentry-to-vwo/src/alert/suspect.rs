//! Stage 2b, the suspect: an alert whose rule names no flag but [`Feature::Suspect`] asks the kill switch
//! for the flag change that started the issue — the evidence Sentry itself uses to name a
//! suspect flag (flags on the issue's event ∩ flag changes shortly before it; Sentry's
//! `useLegacyEventSuspectFlags.tsx`):
//!
//! - the flags on the alert's event (`contexts.flags.values`) that evaluated `true`;
//! - whose latest change in the rule's VWO environment (kept by change tracking, by VWO's
//!   environment id) came within `SUSPECT_WINDOW_MINUTES` before the event's own time, and turned
//!   the flag on or changed what it serves (a change that switched it off is no suspect);
//! - and that `KILLABLE_FLAGS` allows.
//!
//! One candidate becomes the decision's flag — or, when its latest change touched one rule alone
//! (change tracking's [`LatestChange::rule`]), that rule, paused with VWO's rule toggle as
//! `rule=` does; none or several make the decision "ignore", saying which case it was (no event,
//! no flags, nothing changed, or each candidate with its change).

use std::time::Duration;

use bridge_platform::clock::unix_secs;
use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};
use bridge_state::latest_change::LatestChange;
use bridge_vwo::api::FlagTarget;
use bridge_vwo::projects::Environment;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::decide::Decided;
use super::verify::Alert;
use crate::alert::decide::decision::{AlertFacts, Decision, Feature};
use crate::app::App;
use crate::config::{suspects_all, MAX_SUSPECTS};
use bridge_sentry::webhook::EventSummary;

/// A flag on the event whose latest change makes it a suspect.
#[derive(Debug)]
struct Candidate {
    change: LatestChange,
    /// Seconds between the change and the event.
    before: i64,
}

impl Candidate {
    /// `search-v2 (switched on by ana@example.com 4 min before)`.
    fn describe(&self) -> String {
        format!("{} ({})", self.change.flag, self.change_described())
    }

    /// `switched on by ana@example.com 4 min before` (seconds under two minutes), or for a
    /// change of one rule `rule 'eu-50' changed by ana@example.com 11 min before`.
    fn change_described(&self) -> String {
        let ago = match self.before {
            s if s < 120 => format!("{s} s"),
            s => format!("{} min", (s + 30) / 60),
        };
        let what = match &self.change.rule {
            Some(rule) => format!("rule '{rule}' changed"),
            None => self.change.kind.as_str().to_owned(),
        };
        format!("{what} by {} {ago} before", self.change.by)
    }
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
    fn one(decided: Decided, suspects: Option<usize>) -> Self {
        Resolved {
            decisions: vec![decided],
            suspects,
        }
    }
}

/// Resolves a [`Feature::Suspect`] decision to the suspect's flag (with `SUSPECTS=all`, each
/// suspect's: at most [`MAX_SUSPECTS`]), or to "ignore" with the reason; any other decision
/// passes unchanged.
pub async fn resolve(
    app: &App,
    frame: &Frame<'_>,
    alert: &Alert<'_>,
    decided: Decided,
) -> Result<Resolved> {
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
    let found = match suspect(app, alert, &target, asked).await? {
        Ok(found) => found,
        Err((reason, suspects)) => {
            let decision = Decision::Ignore(reason);
            return Ok(Resolved::one(Decided { decision, facts }, Some(suspects)));
        }
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
    Ok(Resolved {
        decisions,
        suspects,
    })
}

/// What the alert's URL asks of the suspect stage.
#[derive(Clone, Copy, Debug)]
struct Asked<'a> {
    /// `flagPrefix`: the environment's flags are named `<prefix><key>` in Sentry.
    prefix: &'a str,
    /// `SUSPECTS=all` or `suspects=all`: several suspects are each switched.
    all: bool,
}

/// The suspects to switch (one, or with `all` up to [`MAX_SUSPECTS`], most recent change
/// first), or why none is switched and how many candidates there were (the inner `Err`).
async fn suspect(
    app: &App,
    alert: &Alert<'_>,
    target: &FlagTarget,
    asked: Asked<'_>,
) -> Result<std::result::Result<Vec<Candidate>, (String, usize)>> {
    let prefix = asked.prefix;
    let Some(event) = event_of(alert) else {
        return Ok(Err((
            format!(
                "no suspect: a {} alert carries no event (feature=@suspect needs an issue alert)",
                alert.resource
            ),
            0,
        )));
    };
    // With `flagPrefix` (the environment's flags are named `<prefix><key>` in Sentry), only the
    // flags so named are this environment's.
    let on: Vec<&str> = event
        .flags
        .iter()
        .filter(|f| f.result)
        .filter_map(|f| f.flag.strip_prefix(prefix))
        .collect();
    if let Some(reason) = no_flags(event, &on) {
        return Ok(Err((reason, 0)));
    }
    let Some(event_at) = event.datetime.as_str().and_then(seconds) else {
        let reason = "no suspect: the event has no usable time (datetime)";
        return Ok(Err((reason.into(), 0)));
    };
    let environment = app
        .guard_rails
        .environment(app.lookup(), &target.account, &target.environment)
        .await?;
    let changes = app
        .latest_changes()
        .ok_or_else(|| {
            Error::Config(
                "feature=@suspect needs STATE_TABLE (change tracking's changes are kept there)"
                    .into(),
            )
        })?
        .get(&environment.id, &on, unix_secs())
        .await?;
    let window = app.config.suspect_window;
    let mut candidates = candidates(changes.into_values(), event_at, window, |flag| {
        killable(app, &environment, flag)
    });
    Ok(match candidates.len() {
        1 => Ok(candidates),
        n if n > 1 && asked.all => {
            candidates.truncate(MAX_SUSPECTS);
            Ok(candidates)
        }
        0 => Err((format!(
            "no suspect: none of the {} flags on the event that were on changed in {} in the {} min before it",
            on.len(),
            environment.name,
            window.as_secs() / 60
        ), 0)),
        n => Err((format!(
            "{n} suspects: {}; not guessing",
            candidates
                .iter()
                .map(Candidate::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ), n)),
    })
}

/// The alert's event: an issue alert's `event`, or an `error.created`'s `error`.
fn event_of<'a>(alert: &'a Alert<'_>) -> Option<&'a EventSummary> {
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

/// The changes that make suspects: within `window` before `event_at` (not after it), that
/// turned the flag on or changed it, and `allowed`; most recent first.
fn candidates(
    changes: impl Iterator<Item = LatestChange>,
    event_at: i64,
    window: Duration,
    allowed: impl Fn(&str) -> bool,
) -> Vec<Candidate> {
    let window = window.as_secs() as i64;
    let mut found: Vec<Candidate> = changes
        .filter(|c| c.kind.may_start_an_issue() && allowed(&c.flag))
        .map(|change| Candidate {
            before: event_at - change.at,
            change,
        })
        .filter(|c| (0..=window).contains(&c.before))
        .collect();
    found.sort_by(|a, b| (a.before, &a.change.flag).cmp(&(b.before, &b.change.flag)));
    found
}

/// Whether `KILLABLE_FLAGS` lets the kill switch switch `flag` in `environment`.
fn killable(app: &App, environment: &Environment, flag: &str) -> bool {
    app.guard_rails
        .killable
        .as_ref()
        .is_none_or(|list| list.matches(environment, flag))
}

/// An RFC 3339 time (Sentry's `2026-11-23T06:41:12.000000Z`) in Unix seconds.
fn seconds(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
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
        }
    }

    #[test]
    fn candidates_are_changes_that_turned_on_or_changed_within_the_window_most_recent_first() {
        let at = 1_796_500_000;
        let changes = vec![
            change("search-v2", at - 240, ChangeKind::SwitchedOn),
            LatestChange {
                rule: Some("eu-50".into()),
                ..change("new-pricing", at - 660, ChangeKind::Changed)
            },
            change("old", at - 3700, ChangeKind::SwitchedOn),
            change("after", at + 5, ChangeKind::SwitchedOn),
            change("off", at - 60, ChangeKind::SwitchedOff),
            change("listed-no", at - 60, ChangeKind::Created),
        ];
        let found = candidates(changes.into_iter(), at, Duration::from_secs(3600), |flag| {
            flag != "listed-no"
        });
        let described: Vec<String> = found.iter().map(Candidate::describe).collect();
        assert_eq!(
            described,
            [
                "search-v2 (switched on by ana@example.com 4 min before)",
                "new-pricing (rule 'eu-50' changed by ana@example.com 11 min before)"
            ]
        );
    }

    #[test]
    fn sentry_s_event_time_is_read() {
        assert_eq!(seconds("2026-11-23T06:41:12.000000Z"), Some(1_795_416_072));
        assert_eq!(seconds("2026-11-23T06:41:12+00:00"), Some(1_795_416_072));
        assert_eq!(seconds("yesterday"), None);
    }
}
