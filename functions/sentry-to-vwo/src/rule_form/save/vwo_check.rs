//! When an alert rule is saved, VWO is asked whether the flag, the environment (and the rule)
//! it names exist, so that a typo is found at the desk and not during the incident.
//!
//! First from the drop-downs' lists ([`named`]: the environments and the environment's settings
//! file, cached for every container, no token when cached): an environment VWO does not have is
//! refused, a flag found there is named in the message ("VWO flag Checkout v2
//! (checkout-new-flow) in Production"). A flag or rule the settings file does not list (it may
//! be off, or a paused rule) is asked of VWO's API: one read with the token
//! (`VwoClient::check_target`), through the shared rate gate at background priority, so a save
//! never takes a slot a kill wants. Saves are Sentry's signed
//! requests only (`Sentry-App-Signature` over the body, verified first). When VWO cannot be
//! asked (busy, down, rate-limited), the save is accepted and its message says it was not
//! checked: refusing every save during a VWO outage would help no one.

use bridge_platform::Error;
use bridge_vwo::api::{FlagTarget, TokenSource, VwoClient};

use crate::rule_form::catalog::Catalog;

/// What the drop-downs' lists say of a rule's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    /// Found: VWO's names of the flag (with its rule) and of the environment.
    Named {
        /// "Checkout v2 (checkout-new-flow)", or "...'s rule Rollout (rollout1)".
        flag: String,
        /// The environment's name.
        environment: String,
    },
    /// VWO has no such environment: why (the save is refused with it).
    Missing(String),
    /// Not in the lists (or the lists could not be read): ask VWO's API.
    Unlisted,
}

/// Looks `target` up in the drop-downs' lists.
pub async fn named(
    catalog: &Catalog,
    vwo: &VwoClient,
    token: TokenSource<'_>,
    target: &FlagTarget,
) -> Listed {
    let (environment, flags) = match catalog
        .flags(vwo, token, &target.account, &target.environment)
        .await
    {
        Ok(found) => found,
        Err(Error::BadRequest(why)) => {
            return Listed::Missing(format!("{why}; check the environment in VWO"))
        }
        Err(e) => {
            tracing::info!(error = %e, "the drop-downs' lists could not be read; asking VWO's API");
            return Listed::Unlisted;
        }
    };
    let Some(flag) = flags.iter().find(|f| f.is(&target.feature)) else {
        return Listed::Unlisted;
    };
    let flag = match &target.rule {
        None => flag.label(),
        Some(wanted) => match flag.rules.iter().find(|r| &r.key == wanted) {
            Some(rule) => format!("{}'s rule {}", flag.label(), rule.label()),
            None => return Listed::Unlisted,
        },
    };
    Listed::Named {
        flag,
        environment: environment.name,
    }
}

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
