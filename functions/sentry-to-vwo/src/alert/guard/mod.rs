//! Stage 3, guard: everything that answers an alert before a flag may be switched, in this
//! order — a test notification (changes no state at all), the guard rails, an ignored decision,
//! a dry run (only VWO's read of the flag), the restore budget.

pub mod dry_run;
pub mod guard_rails;
pub mod restore_budget;
pub mod test_notification;

use bridge_platform::Result;
use bridge_vwo::api::FlagTarget;

use super::decide::Decided;
use super::deferred;
use super::verify::Alert;
use crate::alert::decide::decision::{AlertFacts, Decision};
use crate::answer::Handled;
use crate::app::App;
use crate::toggle::job;
use guard_rails::Lookup;

/// A decision that passed every guard: switch `target` to `enabled`.
#[derive(Debug)]
pub struct Accepted {
    /// The flag (or rule).
    pub target: FlagTarget,
    /// The state to set.
    pub enabled: bool,
    /// Whether this undoes an earlier kill.
    pub restore: bool,
    /// The alert rule's name, id and link.
    pub facts: AlertFacts,
}

/// What the guards made of a decision.
#[derive(Debug)]
pub enum Guarded {
    /// Go on and switch.
    Pass(Accepted),
    /// Answer now; nothing is switched.
    Answer(Handled),
}

/// Runs the guards over `decided`.
pub async fn guard(app: &App, alert: &Alert, decided: Decided) -> Result<Guarded> {
    let Decided { decision, facts } = decided;
    if let Some(marker) = test_notification::detect(&alert.resource, &alert.envelope) {
        return Ok(Guarded::Answer(Handled::Tested { marker, decision }));
    }
    if let Decision::Toggle {
        ref target,
        enabled,
        ..
    } = decision
    {
        // A suspect's names, before Sentry is answered: only what is known without reading VWO
        // (the suspect stage found its environment so; a decision that could not waits).
        let cached_only =
            facts.suspect.is_some() && !alert.pass.answered() && deferred::possible(app);
        let lookup = Lookup {
            cached_only,
            ..app.lookup()
        };
        if let Some(reason) = app.guard_rails.refusal(lookup, target, enabled).await {
            return Ok(Guarded::Answer(Handled::Guarded(reason)));
        }
    }
    let (target, enabled, restore) = match decision {
        Decision::Ignore(reason) => return Ok(Guarded::Answer(Handled::Ignored(reason))),
        Decision::Toggle { dry_run: true, .. } => {
            let rehearsal = dry_run::rehearse(&app.vwo, app.token(), &decision).await?;
            let (message, response) = (rehearsal.message, rehearsal.response);
            return Ok(Guarded::Answer(Handled::DryRun { message, response }));
        }
        Decision::Toggle {
            target,
            enabled,
            restore,
            dry_run: false,
        } => (target, enabled, restore),
    };
    if let Some(reason) = restore_refused(app, &target, restore).await? {
        return Ok(Guarded::Answer(Handled::Guarded(reason)));
    }
    Ok(Guarded::Pass(Accepted {
        target,
        enabled,
        restore,
        facts,
    }))
}

/// Why a restore is refused by the restore budget (`MAX_RESTORES_PER_DAY`), if it is.
async fn restore_refused(app: &App, target: &FlagTarget, restore: bool) -> Result<Option<String>> {
    let (true, Some(restores)) = (restore, app.restores()) else {
        return Ok(None);
    };
    let refused = restores.take(&job::flag_key(target)).await?;
    if let Some(reason) = &refused {
        tracing::warn!(feature = %target.feature, environment = %target.environment, %reason, "restore refused: the flag stays off");
    }
    Ok(refused)
}
