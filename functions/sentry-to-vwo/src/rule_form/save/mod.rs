//! The alert rule's save check: Sentry posts the rule's action settings, signed, when the rule is
//! saved; a refusal's message is shown to the user in the rule's form. The settings are read and
//! checked in [`settings`]; whether VWO has what they name is asked in [`vwo_check`].

pub mod settings;
pub mod vwo_check;

use bridge_platform::{Error, Result};

use crate::alert::decide::decision::Feature;
use crate::alert::guard::guard_rails::Lookup;
use crate::app::App;
use vwo_check::{Found, Listed};

/// Checks the rule's settings (`body`, verified before routing): well-formed, allowed by the guard rails, and naming a flag and an
/// environment VWO has. `Ok` carries the message Sentry shows on success.
pub async fn check(app: &App, body: &[u8]) -> Result<String> {
    let config = &app.config;
    let checked = settings::check_fields(body, &config.common.vwo.default_account, config.dry_run)?;
    if Feature::of(&checked.target.feature) == Feature::Suspect {
        return suspect_rule(app, &checked).await;
    }
    if let Some(reason) = app
        .guard_rails
        .refusal(app.lookup(), &checked.target, checked.enabled)
        .await
    {
        return Err(Error::BadRequest(reason));
    }
    let listed = match app.catalog() {
        Some(catalog) => {
            vwo_check::named(catalog, &app.background_vwo, app.token(), &checked.target).await
        }
        None => Listed::Unlisted,
    };
    match listed {
        Listed::Named { flag, environment } => {
            return Ok(checked.message_naming(Some((&flag, &environment))))
        }
        Listed::Missing(reason) => return Err(Error::BadRequest(reason)),
        Listed::Unlisted => {}
    }
    let found = vwo_check::existence(&app.background_vwo, app.token(), &checked.target).await;
    if let Found::Missing(reason) = found {
        return Err(Error::BadRequest(reason));
    }
    Ok(vwo_check::message(&checked.message, &found))
}

/// A rule whose flag is the suspect: its environment must be one VWO has; the message
/// says what the rule will do, and that a metric alert (which carries no event) does nothing
/// (Sentry's save request does not say which kind of rule it is: `fields` and `installationId`).
async fn suspect_rule(app: &App, checked: &settings::Checked) -> Result<String> {
    let lookup = Lookup {
        vwo: &app.background_vwo,
        token: app.token(),
        catalog: app.catalog(),
    };
    let target = &checked.target;
    let environment = app
        .guard_rails
        .environment(lookup, &target.account, &target.environment)
        .await
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let minutes = app.config.suspect_window.as_secs() / 60;
    let dry = if checked.is_dry_run() {
        "Dry run: the kill switch will only say what it would do. "
    } else {
        ""
    };
    Ok(format!(
        "{dry}When this issue alert fires, the kill switch switches off the issue's suspect in {}: \
         the flag on the issue's event whose latest change in {} came within {minutes} minutes \
         before it. Several suspects: none is switched, each is named. A metric alert carries no \
         event: with it, this rule does nothing.",
        environment.name, environment.name
    ))
}
