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

/// A rule whose flag is the issue's suspect: its environment must be one VWO has; the message
/// says what the rule will do, and that a metric alert (which carries no event) does nothing
/// (Sentry's save request does not say which kind of rule it is: `fields` and `installationId`).
async fn suspect_rule(app: &App, checked: &settings::Checked) -> Result<String> {
    let lookup = Lookup {
        vwo: &app.background_vwo,
        ..app.lookup()
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
    let uses = evidence_used(app).await;
    Ok(format!(
        "{dry}When this issue alert fires, the kill switch switches off the issue's suspect in {}: \
         the flag on the issue's event whose change in {} came within {minutes} minutes before \
         the issue began. Several suspects: none is switched, each is named. A metric alert \
         carries no event: with it, this rule does nothing. {uses}",
        environment.name, environment.name
    ))
}

/// What a `@suspect` rule will rest on: Sentry's API with the token, issue webhooks (an
/// `issue.created` received in the last days), or neither (it then switches nothing).
async fn evidence_used(app: &App) -> String {
    let webhooks = match app.issue_starts() {
        Some(starts) => starts.last_received().await.ok().flatten(),
        None => None,
    };
    let event_alone = app.config.evidence.alert_event_alone;
    match (&app.sentry_api, webhooks) {
        (Some(_), _) => "Evidence: the issue's start and its events, read with the kill switch's \
                         Sentry token."
            .into(),
        (None, Some(_)) if event_alone => {
            "Evidence: the issue's start from its issue.created webhook, \
                                    and the alert's event alone (SUSPECT_EVIDENCE=event)."
                .into()
        }
        (None, Some(_)) => "Evidence: none yet — issue webhooks arrive, but the issue's events \
                            need a Sentry token (SENTRY_API_TOKEN_PARAM), or set \
                            SUSPECT_EVIDENCE=event: until then this rule switches nothing."
            .into(),
        (None, None) => "Evidence: none — no Sentry token and no issue.created received: \
                         subscribe the integration to issue webhooks, or give the kill switch a \
                         Sentry token; until then this rule switches nothing."
            .into(),
    }
}
