//! The alert-rule-action settings check: Sentry POSTs an alert rule's settings to the schema's
//! `uri` (`/alert-rule-action`) when a user saves the rule, and shows our message on a 4xx.
//!
//! Body (from Sentry's alert-rule-action requester): `{"fields": [{"name": ..., "value": ...}],
//! "installationId": ...}`, signed like webhooks, in `Sentry-App-Signature`. The check has no side
//! effect and calls no one; it validates the identifiers the kill switch will use
//! (`crate::rule_form::save::vwo_check` then asks VWO whether they exist).

use bridge_platform::{Error, Result};
use bridge_vwo::api::FlagTarget;
use serde_json::Value;

use crate::alert::decide::decision;

/// Path suffix of the settings check.
pub const PATH_SUFFIX: &str = "/alert-rule-action";

/// What a valid rule's settings say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The message Sentry shows when the rule is saved.
    pub message: String,
    /// The flag the rule switches.
    pub target: FlagTarget,
    /// The state it switches it to.
    pub enabled: bool,
    dry_run: bool,
    dry_run_all: bool,
}

impl Checked {
    /// Whether the rule (or the whole function) only says what it would do.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run || self.dry_run_all
    }

    /// The message naming the flag and the environment as given (`None`) or by VWO's names.
    pub fn message_naming(&self, names: Option<(&str, &str)>) -> String {
        let described = self.target.describe();
        let (feature, environment) =
            names.unwrap_or((described.as_str(), self.target.environment.as_str()));
        let state = if self.enabled { "on" } else { "off" };
        match (self.dry_run, self.dry_run_all) {
            (false, false) => format!(
                "When this alert fires, VWO flag {feature} in {environment} will be turned {state}."
            ),
            (true, _) => format!(
                "Dry run: when this alert fires, the kill switch will only say that it would turn VWO flag {feature} in {environment} {state}; nothing is switched."
            ),
            (false, true) => format!(
                "Dry run (the whole function, DRY_RUN): when this alert fires, the kill switch will only say that it would turn VWO flag {feature} in {environment} {state}; nothing is switched."
            ),
        }
    }
}

/// Validates the submitted fields; returns what the rule will do and the message Sentry shows on
/// success. `dry_run_all`: the function runs every alert as a dry run (`DRY_RUN`).
pub fn check_fields(body: &[u8], default_account: &str, dry_run_all: bool) -> Result<Checked> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("settings are not JSON: {e}")))?;
    let choice = decision::settings_choice(&value["fields"]);
    let (Some(feature), Some(environment)) = (choice.feature.clone(), choice.environment.clone())
    else {
        return Err(Error::BadRequest(
            "a VWO feature flag and an environment are required".into(),
        ));
    };
    let enabled = decision::parse_is_enabled(choice.is_enabled.as_deref())?;
    let target = FlagTarget {
        account: choice
            .account
            .clone()
            .unwrap_or_else(|| default_account.to_owned()),
        environment: environment.clone(),
        feature: feature.clone(),
        rule: choice.rule.clone(),
    };
    target.validate()?;
    let dry_run = decision::parse_dry_run(choice.dry_run.as_deref())?;
    let mut checked = Checked {
        message: String::new(),
        target,
        enabled,
        dry_run,
        dry_run_all,
    };
    checked.message = checked.message_naming(None);
    Ok(checked)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_fields_give_a_message_and_bad_ones_a_reason() {
        let ok = br#"{"fields":[{"name":"feature","value":"checkout"},{"name":"environment","value":"production"}],"installationId":"x"}"#;
        assert_eq!(
            check_fields(ok, "current", false).unwrap().message,
            "When this alert fires, VWO flag checkout in production will be turned off."
        );
        let missing = br#"{"fields":[{"name":"feature","value":"checkout"}]}"#;
        assert_eq!(
            check_fields(missing, "current", false)
                .unwrap_err()
                .status(),
            400
        );
        let dots =
            br#"{"fields":[{"name":"feature","value":".."},{"name":"environment","value":"p"}]}"#;
        assert_eq!(
            check_fields(dots, "current", false).unwrap_err().status(),
            400
        );
        let on = br#"{"fields":[{"name":"feature","value":"f"},{"name":"environment","value":"p"},{"name":"isEnabled","value":"1"}]}"#;
        assert!(check_fields(on, "current", false)
            .unwrap()
            .message
            .ends_with("turned on."));
        let everywhere = check_fields(ok, "current", true).unwrap().message;
        assert!(
            everywhere.starts_with("Dry run (the whole function, DRY_RUN)"),
            "{everywhere}"
        );
        let bad = br#"{"fields":[{"name":"feature","value":"f"},{"name":"environment","value":"p"},{"name":"dryRun","value":"maybe"}]}"#;
        assert_eq!(
            check_fields(bad, "current", false).unwrap_err().status(),
            400
        );
    }

    /// The schema we ship is valid JSON, and every field it defines is one the settings parser reads.
    #[test]
    fn the_shipped_integration_schema_matches_the_settings_parser() {
        let schema = crate::rule_form::options::tests::shipped_schema();
        let settings = &schema["elements"][0]["settings"];
        assert_eq!(schema["elements"][0]["type"], "alert-rule-action");
        assert!(settings["uri"].as_str().unwrap().ends_with(PATH_SUFFIX));
        let mut submitted = Vec::new();
        for group in ["required_fields", "optional_fields"] {
            for field in settings[group].as_array().unwrap() {
                let name = field["name"].as_str().unwrap();
                let value = match name {
                    "isEnabled" => field["options"][1][0].clone(),
                    "dryRun" => field["options"][1][0].clone(),
                    "account" => Value::from("123"),
                    "rule" => Value::from("rule-value"),
                    other => Value::from(format!("{other}-value")),
                };
                submitted.push(serde_json::json!({"name": name, "value": value}));
            }
        }
        let choice = decision::settings_choice(&Value::Array(submitted.clone()));
        assert_eq!(choice.feature.as_deref(), Some("feature-value"));
        assert_eq!(choice.environment.as_deref(), Some("environment-value"));
        assert_eq!(choice.is_enabled.as_deref(), Some("1"));
        assert_eq!(choice.account.as_deref(), Some("123"));
        assert_eq!(choice.dry_run.as_deref(), Some("true"));
        assert_eq!(choice.rule.as_deref(), Some("rule-value"));
        let body = serde_json::json!({"fields": submitted}).to_string();
        assert!(check_fields(body.as_bytes(), "current", false)
            .unwrap()
            .message
            .starts_with("Dry run: "));
    }
}
