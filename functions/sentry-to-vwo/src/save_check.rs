//! When an alert rule is saved, VWO is asked whether the flag, the environment (and the rule)
//! it names exist, so that a typo is found at the desk and not during the incident.
//!
//! One read with the token (`VwoClient::check_target`), through the shared rate gate at
//! background priority: a save never takes a slot a kill wants. Saves are Sentry's signed
//! requests only (`Sentry-App-Signature` over the body, verified first). When VWO cannot be
//! asked (busy, down, rate-limited), the save is accepted and its message says it was not
//! checked: refusing every save during a VWO outage would help no one.

use bridge_shared::vwo::{FlagTarget, TokenSource, VwoClient};
use bridge_shared::Error;

/// What VWO said of a rule's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// VWO has the flag (and rule) in the environment.
    Exists,
    /// VWO does not: why, naming what is missing (the save is refused with it).
    Missing(String),
    /// VWO could not be asked now: why (the save is accepted, saying so).
    Unchecked(String),
}

/// Asks VWO whether `target` exists.
pub async fn existence(vwo: &VwoClient, token: TokenSource<'_>, target: &FlagTarget) -> Found {
    match vwo.check_target(token, target).await {
        Ok(_) => Found::Exists,
        Err(Error::Upstream {
            status: Some(404),
            message,
            ..
        }) => Found::Missing(missing(target, vwo_says(&message))),
        Err(error) => Found::Unchecked(error.to_string()),
    }
}

/// VWO's own words in the client's message ("HTTP 404 after 1 attempt(s) (...): <VWO's>").
fn vwo_says(message: &str) -> &str {
    message.rsplit_once("): ").map_or(message, |(_, said)| said)
}

/// Why the save is refused: what VWO lacks, in VWO's words too.
fn missing(target: &FlagTarget, said: &str) -> String {
    let (feature, environment) = (&target.feature, &target.environment);
    match &target.rule {
        Some(rule) => format!(
            "VWO has no rule {rule} of flag {feature} in environment {environment} (VWO: {said}); \
             check the keys or ids in VWO"
        ),
        None => format!(
            "VWO has no flag {feature} in environment {environment} (VWO: {said}); check the key \
             or id in VWO"
        ),
    }
}

/// The save message with what VWO said: unchanged when it has the flag, with a note when it
/// could not be asked.
pub fn message(checked: &str, found: &Found) -> String {
    match found {
        Found::Unchecked(why) => format!(
            "{checked} (VWO could not be asked whether the flag exists: {why}; saved unchecked)"
        ),
        Found::Exists | Found::Missing(_) => checked.to_owned(),
    }
}
