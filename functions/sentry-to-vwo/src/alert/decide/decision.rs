//! Deciding what a verified Sentry webhook asks for: which flag, which state, or nothing.

use bridge_platform::{Error, Result};
use bridge_sentry::webhook::{AlertData, Envelope};
use bridge_vwo::api::FlagTarget;
use serde_json::Value;

use crate::config::Config;

/// The flag named by the function URL's query string or by an alert rule's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagChoice {
    /// `feature`: flag id or key.
    pub feature: Option<String>,
    /// `environment`: id, key or SDK key.
    pub environment: Option<String>,
    /// `isEnabled`: the state to set, as given (`0`/`1`/`true`/`false`).
    pub is_enabled: Option<String>,
    /// `account`: workspace id or `current`.
    pub account: Option<String>,
    /// `dryRun`: `"true"` to say what the alert would do and switch nothing.
    pub dry_run: Option<String>,
    /// `rule`: one rule of the flag (key or id) to switch instead of the whole flag.
    pub rule: Option<String>,
}

impl FlagChoice {
    /// Reads the choice from `(name, value)` pairs; unknown names are ignored and empty
    /// values count as absent.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut choice = FlagChoice::default();
        for (name, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let slot = match name {
                "feature" => &mut choice.feature,
                "environment" => &mut choice.environment,
                "isEnabled" => &mut choice.is_enabled,
                "account" => &mut choice.account,
                "dryRun" => &mut choice.dry_run,
                "rule" => &mut choice.rule,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        choice
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    pub fn overridden_by(self, over: FlagChoice) -> FlagChoice {
        FlagChoice {
            feature: over.feature.or(self.feature),
            environment: over.environment.or(self.environment),
            is_enabled: over.is_enabled.or(self.is_enabled),
            account: over.account.or(self.account),
            dry_run: over.dry_run.or(self.dry_run),
            rule: over.rule.or(self.rule),
        }
    }
}

/// What an alert rule's flag field names: a VWO flag by its key, or the issue's suspect (the
/// flag change that started the issue), which the kill switch finds from the issue's event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature<'a> {
    /// The flag with this key.
    Named(&'a str),
    /// The issue's suspect: `@suspect`, a value no VWO flag key can take.
    Suspect,
}

impl<'a> Feature<'a> {
    /// How a rule writes [`Feature::Suspect`] in its flag field (and the drop-down offers it).
    pub const SUSPECT: &'static str = "@suspect";

    /// What the flag field `value` names.
    pub fn of(value: &'a str) -> Self {
        if value == Self::SUSPECT {
            Feature::Suspect
        } else {
            Feature::Named(value)
        }
    }
}

/// What to do with a webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Set `target` to `enabled`. `restore` is true when undoing an earlier kill (resolved alert).
    Toggle {
        /// The flag.
        target: FlagTarget,
        /// The state to set.
        enabled: bool,
        /// Whether this restores the flag after a resolved alert.
        restore: bool,
        /// Dry run (the rule's `dryRun` or `DRY_RUN`): say what would happen, switch nothing.
        dry_run: bool,
    },
    /// Nothing to do, for this reason.
    Ignore(String),
}

impl Decision {
    /// The flag (or rule) a toggle switches; `None` for a decision to do nothing.
    pub fn target(&self) -> Option<&FlagTarget> {
        match self {
            Decision::Toggle { target, .. } => Some(target),
            Decision::Ignore(_) => None,
        }
    }

    /// What the decision does, for people: "turn checkout-new-flow off in production",
    /// "turn checkout-new-flow back on in production", or "do nothing (<reason>)".
    pub fn describe(&self) -> String {
        match self {
            Decision::Toggle {
                target,
                enabled,
                restore,
                ..
            } => {
                let state = match (enabled, restore) {
                    (true, true) => "back on",
                    (true, false) => "on",
                    (false, _) => "off",
                };
                format!(
                    "turn {} {state} in {}",
                    target.describe(),
                    target.environment
                )
            }
            Decision::Ignore(reason) => format!("do nothing ({reason})"),
        }
    }
}

/// Facts about the alert, for the log line and the kill record change tracking reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFacts {
    /// The alert rule's name, when the payload has one.
    pub rule: Option<String>,
    /// The alert rule's id, when the payload has one.
    pub rule_id: Option<String>,
    /// Sentry's page for the event or alert, when the payload has one.
    pub web_url: Option<String>,
    /// For `@suspect`: the suspect's change, for people (set by the alert's suspect stage).
    pub suspect: Option<String>,
}

/// Reads the rule's name and id and the alert's link from the places Sentry puts them
/// (docs/protocols.md): `event_alert` — `triggered_rule`, `issue_alert.id`, `event.web_url`;
/// `metric_alert` — `metric_alert.alert_rule.{name,id}`, `web_url`; `issue` — the issue's
/// `shortId` and `web_url`.
pub fn alert_facts(resource: &str, envelope: &Envelope) -> AlertFacts {
    let data = &envelope.data;
    let (rule, rule_id, web_url) = match resource {
        "event_alert" => (
            &data.triggered_rule,
            &data.issue_alert["id"],
            &data.event.web_url,
        ),
        "metric_alert" => (
            &data.metric_alert["alert_rule"]["name"],
            &data.metric_alert["alert_rule"]["id"],
            &data.web_url,
        ),
        "issue" => (&data.issue["shortId"], &Value::Null, &data.issue["web_url"]),
        _ => (&Value::Null, &Value::Null, &Value::Null),
    };
    let text = |v: &Value, max: usize| {
        let t = match v {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!t.is_empty()).then(|| t.chars().take(max).collect())
    };
    AlertFacts {
        rule: text(rule, 200),
        rule_id: text(rule_id, 64),
        web_url: text(web_url, 500)
            .filter(|u: &String| u.starts_with("https://") || u.starts_with("http://")),
        suspect: None,
    }
}

/// What the alert rule's own action says about the flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSettings {
    /// This integration's action settings (possibly empty).
    One(FlagChoice),
    /// Several actions could be this integration's and they disagree: refuse to guess.
    Ambiguous(usize),
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Settings of this integration's alert-rule action, if any.
///
/// Issue alerts carry them in `data.issue_alert` (with its `sentry_app_id`). A metric alert's
/// triggers list **every** action of the rule — e-mail, Slack, other Sentry apps — so only this
/// integration's are read: those whose `sentry_app_id` is `app_id` when it is configured,
/// otherwise those whose settings name a `feature` (our schema's required field). The trigger
/// labelled like the action (`critical`, `warning`) is read first; if its candidates disagree
/// (or, without one there, the other triggers' do), the answer is [`RuleSettings::Ambiguous`].
pub fn rule_settings(
    resource: &str,
    action: &str,
    data: &AlertData,
    app_id: Option<&str>,
) -> RuleSettings {
    fn list(value: &Value) -> &[Value] {
        value.as_array().map(Vec::as_slice).unwrap_or_default()
    }
    let ours = |a: &Value| match app_id {
        Some(id) => id_text(&a["sentry_app_id"]).as_deref() == Some(id),
        None => settings_choice(&a["settings"]).feature.is_some(),
    };
    match resource {
        "event_alert" => {
            let alert = &data.issue_alert;
            let other_app = app_id.is_some_and(|id| {
                id_text(&alert["sentry_app_id"]).is_some_and(|given| given != id)
            });
            if other_app {
                RuleSettings::One(FlagChoice::default())
            } else {
                RuleSettings::One(settings_choice(&alert["settings"]))
            }
        }
        "metric_alert" => {
            let triggers = list(&data.metric_alert["alert_rule"]["triggers"]);
            let labelled = |t: &&Value| t["label"].as_str() == Some(action);
            let choices = |pick: &dyn Fn(&&Value) -> bool| {
                let mut found: Vec<FlagChoice> = triggers
                    .iter()
                    .filter(pick)
                    .flat_map(|t| list(&t["actions"]))
                    .filter(|a| ours(a))
                    .map(|a| settings_choice(&a["settings"]))
                    .collect();
                found.dedup();
                found
            };
            let mut found = choices(&labelled);
            if found.is_empty() {
                found = choices(&|t| !labelled(t));
            }
            match found.len() {
                0 => RuleSettings::One(FlagChoice::default()),
                1 => RuleSettings::One(found.remove(0)),
                n => RuleSettings::Ambiguous(n),
            }
        }
        _ => RuleSettings::One(FlagChoice::default()),
    }
}

/// Settings as Sentry sends them (`[{"name": ..., "value": ...}]`) or as a plain object.
pub fn settings_choice(settings: &Value) -> FlagChoice {
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    let pairs: Vec<(String, String)> = match settings {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| Some((i["name"].as_str()?.to_owned(), text(&i["value"])?)))
            .collect(),
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
            .collect(),
        _ => Vec::new(),
    };
    FlagChoice::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// `isEnabled` as given (`0`, `1`, `true`, `false`; absent is `0`).
pub fn parse_is_enabled(raw: Option<&str>) -> Result<bool> {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(Error::BadRequest(format!(
            "isEnabled must be 0 or 1, not {other:?}"
        ))),
    }
}

/// `dryRun` as given (`true`, `false`; absent is `false`).
pub fn parse_dry_run(raw: Option<&str>) -> Result<bool> {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Error::BadRequest(format!(
            "dryRun must be true or false, not {other:?}"
        ))),
    }
}

/// Decides what to do with a verified webhook of `resource` whose function URL named `query`.
pub fn decide(
    config: &Config,
    resource: &str,
    envelope: &Envelope,
    query: FlagChoice,
) -> Result<Decision> {
    let action = envelope.action.as_str();
    let key = format!("{resource}.{action}");
    let restore = match (resource, action) {
        ("metric_alert", "resolved") if config.restore_on_resolve => true,
        ("metric_alert", "resolved") => {
            return Ok(Decision::Ignore(
                "metric_alert.resolved: restoring is off (RESTORE_ON_RESOLVE)".into(),
            ))
        }
        _ if config.toggle_on.contains(&key) => false,
        ("installation", _) => return Ok(Decision::Ignore(format!("{key}: nothing to do"))),
        // The workflow engine's issue-activity alerts fire on every status change (resolved,
        // regression, escalating) and on Seer's activity: not a kill signal (docs/kill-switch.md, "Sentry's
        // workflow engine").
        ("activity_alert", _) => {
            return Ok(Decision::Ignore(format!(
            "{key}: issue activity alerts never switch a flag (alert rules and metric alerts do)"
        )))
        }
        _ => {
            return Ok(Decision::Ignore(format!(
                "{key} does not toggle (TOGGLE_ON)"
            )))
        }
    };
    let rule = match rule_settings(
        resource,
        action,
        &envelope.data,
        config.sentry_app_id.as_deref(),
    ) {
        RuleSettings::One(choice) => choice,
        RuleSettings::Ambiguous(n) => {
            return Ok(Decision::Ignore(format!(
                "{n} actions of the alert rule could be this integration's and they disagree; \
                 set SENTRY_APP_ID to tell them apart"
            )))
        }
    };
    let choice = query.overridden_by(rule);
    let (Some(feature), Some(environment)) = (choice.feature, choice.environment) else {
        return Ok(Decision::Ignore("no flag configured".into()));
    };
    let is_enabled = parse_is_enabled(choice.is_enabled.as_deref())?;
    let dry_run = config.dry_run || parse_dry_run(choice.dry_run.as_deref())?;
    let target = FlagTarget {
        account: choice
            .account
            .unwrap_or_else(|| config.common.vwo.default_account.clone()),
        environment,
        feature,
        rule: choice.rule,
    };
    target.validate()?;
    Ok(Decision::Toggle {
        target,
        enabled: if restore { !is_enabled } else { is_enabled },
        restore,
        dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(toggle_on: &str, restore: bool) -> Config {
        let toggle_on = toggle_on.to_owned();
        let restore = restore.to_string();
        let vars = move |n: &str| match n {
            "SENTRY_CLIENT_SECRET_PARAM" => Some("/b/s".to_owned()),
            "VWO_API_TOKEN_PARAM" => Some("/b/t".to_owned()),
            "TOGGLE_ON" => Some(toggle_on.clone()),
            "RESTORE_ON_RESOLVE" => Some(restore.clone()),
            _ => None,
        };
        Config::from_vars(&vars).unwrap()
    }

    fn envelope(action: &str, data: Value) -> Envelope {
        Envelope::parse(
            json!({"action": action, "data": data})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    fn query(pairs: &[(&'static str, &'static str)]) -> FlagChoice {
        FlagChoice::from_pairs(pairs.iter().copied())
    }

    const FLAG: [(&str, &str); 2] = [("feature", "checkout"), ("environment", "production")];

    fn target(feature: &str, environment: &str, account: &str) -> FlagTarget {
        FlagTarget::flag(account, environment, feature)
    }

    #[test]
    fn default_resources_toggle_the_query_flag_off() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        for (resource, action) in [
            ("metric_alert", "critical"),
            ("metric_alert", "warning"),
            ("event_alert", "triggered"),
        ] {
            let d = decide(&c, resource, &envelope(action, json!({})), query(&FLAG)).unwrap();
            assert_eq!(
                d,
                Decision::Toggle {
                    target: target("checkout", "production", "current"),
                    enabled: false,
                    restore: false,
                    dry_run: false
                },
                "{resource}.{action}"
            );
        }
    }

    #[test]
    fn issue_and_error_created_toggle_only_when_configured() {
        let off = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let on = config("issue.created,error.created", false);
        for resource in ["issue", "error"] {
            let e = envelope("created", json!({}));
            assert!(matches!(
                decide(&off, resource, &e, query(&FLAG)).unwrap(),
                Decision::Ignore(_)
            ));
            assert!(matches!(
                decide(&on, resource, &e, query(&FLAG)).unwrap(),
                Decision::Toggle { .. }
            ));
        }
    }

    #[test]
    fn resolved_restores_only_when_enabled() {
        let e = envelope("resolved", json!({}));
        let off = decide(
            &config(crate::config::DEFAULT_TOGGLE_ON, false),
            "metric_alert",
            &e,
            query(&FLAG),
        )
        .unwrap();
        assert!(matches!(off, Decision::Ignore(ref r) if r.contains("RESTORE_ON_RESOLVE")));
        let on = decide(
            &config(crate::config::DEFAULT_TOGGLE_ON, true),
            "metric_alert",
            &e,
            query(&FLAG),
        )
        .unwrap();
        assert_eq!(
            on,
            Decision::Toggle {
                target: target("checkout", "production", "current"),
                enabled: true,
                restore: true,
                dry_run: false
            }
        );
    }

    #[test]
    fn installation_and_unknown_resources_are_ignored_with_a_reason() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let d = decide(
            &c,
            "installation",
            &envelope("created", json!({})),
            query(&FLAG),
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Ignore("installation.created: nothing to do".into())
        );
        let d = decide(&c, "comment", &envelope("created", json!({})), query(&FLAG)).unwrap();
        assert_eq!(
            d,
            Decision::Ignore("comment.created does not toggle (TOGGLE_ON)".into())
        );
    }

    #[test]
    fn no_flag_is_ignored() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let d = decide(
            &c,
            "event_alert",
            &envelope("triggered", json!({})),
            query(&[("feature", "x")]),
        )
        .unwrap();
        assert_eq!(d, Decision::Ignore("no flag configured".into()));
    }

    #[test]
    fn issue_alert_settings_override_the_query() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let data = json!({"issue_alert": {"title": "t", "settings": [
            {"name": "feature", "value": "search-v2"}, {"name": "isEnabled", "value": "1"}]}});
        let d = decide(
            &c,
            "event_alert",
            &envelope("triggered", data),
            query(&FLAG),
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Toggle {
                target: target("search-v2", "production", "current"),
                enabled: true,
                restore: false,
                dry_run: false
            }
        );
    }

    #[test]
    fn another_integrations_action_never_names_the_flag() {
        // A Slack action and another Sentry app's action (its own `environment` field) sit in
        // the same trigger; only ours (with `feature`) counts.
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let data = json!({"metric_alert": {"alert_rule": {"name": "p95", "triggers": [
            {"label": "critical", "actions": [
                {"type": "slack", "target_identifier": "#ops", "settings": null},
                {"type": "sentry_app", "sentry_app_id": 77, "settings": [{"name": "environment", "value": "staging"}]},
                {"type": "sentry_app", "sentry_app_id": 42, "settings": [{"name": "feature", "value": "ours"}]}]}
        ]}}});
        let d = decide(
            &c,
            "metric_alert",
            &envelope("critical", data.clone()),
            query(&FLAG),
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Toggle {
                target: target("ours", "production", "current"),
                enabled: false,
                restore: false,
                dry_run: false
            }
        );
        // Two apps with a `feature` field and no SENTRY_APP_ID: refuse to guess.
        let mut two = data.clone();
        two["metric_alert"]["alert_rule"]["triggers"][0]["actions"][1]["settings"] =
            json!([{"name": "feature", "value": "theirs"}]);
        let d = decide(
            &c,
            "metric_alert",
            &envelope("critical", two.clone()),
            query(&FLAG),
        )
        .unwrap();
        assert!(
            matches!(d, Decision::Ignore(ref r) if r.contains("SENTRY_APP_ID")),
            "{d:?}"
        );
        // With SENTRY_APP_ID, ours is told apart by its id.
        let mut with_id = c.clone();
        with_id.sentry_app_id = Some("42".into());
        let d = decide(
            &with_id,
            "metric_alert",
            &envelope("critical", two),
            query(&FLAG),
        )
        .unwrap();
        assert!(matches!(d, Decision::Toggle { ref target, .. } if target.feature == "ours"));
        // An issue alert whose action belongs to another app: its settings are not ours.
        let issue = json!({"issue_alert": {"title": "t", "sentry_app_id": 77,
            "settings": [{"name": "feature", "value": "theirs"}]}});
        let d = decide(
            &with_id,
            "event_alert",
            &envelope("triggered", issue),
            query(&FLAG),
        )
        .unwrap();
        assert!(
            matches!(d, Decision::Toggle { ref target, .. } if target.feature == "checkout"),
            "{d:?}"
        );
    }

    #[test]
    fn metric_alert_settings_prefer_the_trigger_of_the_action() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let data = json!({"metric_alert": {"alert_rule": {"name": "p95", "triggers": [
            {"label": "warning", "actions": [{"settings": [{"name": "feature", "value": "warn-flag"}]}]},
            {"label": "critical", "actions": [{"type": "email"},
                {"settings": [{"name": "feature", "value": "crit-flag"}, {"name": "environment", "value": "7"}]}]}
        ]}}});
        let d = decide(
            &c,
            "metric_alert",
            &envelope("critical", data.clone()),
            query(&FLAG),
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Toggle {
                target: target("crit-flag", "7", "current"),
                enabled: false,
                restore: false,
                dry_run: false
            }
        );
        let d = decide(&c, "metric_alert", &envelope("warning", data), query(&FLAG)).unwrap();
        assert!(matches!(d, Decision::Toggle { ref target, .. } if target.feature == "warn-flag"));
    }

    #[test]
    fn account_and_is_enabled_come_from_the_query() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let q = query(&[
            ("feature", "f"),
            ("environment", "e"),
            ("account", "123"),
            ("isEnabled", "true"),
        ]);
        let d = decide(&c, "event_alert", &envelope("triggered", json!({})), q).unwrap();
        assert_eq!(
            d,
            Decision::Toggle {
                target: target("f", "e", "123"),
                enabled: true,
                restore: false,
                dry_run: false
            }
        );
    }

    #[test]
    fn invalid_is_enabled_and_dot_segments_are_bad_requests() {
        let c = config(crate::config::DEFAULT_TOGGLE_ON, false);
        let e = envelope("triggered", json!({}));
        let bad = query(&[("feature", "f"), ("environment", "e"), ("isEnabled", "2")]);
        assert_eq!(
            decide(&c, "event_alert", &e, bad).unwrap_err().status(),
            400
        );
        let dots = query(&[("feature", ".."), ("environment", "e")]);
        assert_eq!(
            decide(&c, "event_alert", &e, dots).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn rule_names_are_read_for_logs() {
        let e = envelope("triggered", json!({"triggered_rule": "Checkout errors"}));
        assert_eq!(
            alert_facts("event_alert", &e).rule.as_deref(),
            Some("Checkout errors")
        );
        let e = envelope(
            "critical",
            json!({"metric_alert": {"alert_rule": {"name": "p95"}}}),
        );
        assert_eq!(alert_facts("metric_alert", &e).rule.as_deref(), Some("p95"));
    }
}

#[cfg(test)]
mod workflow_engine_tests {
    use super::*;

    fn sample(bytes: &[u8]) -> Envelope {
        Envelope::parse(bytes).unwrap()
    }

    /// The workflow engine's payloads (events/sentry/*.workflow_engine.json): the rule is the
    /// workflow's or detector's name, its id the workflow id or the detector id plus an offset,
    /// kept as opaque text.
    #[test]
    fn workflow_engine_alerts_name_the_workflow_or_detector() {
        let issue = sample(include_bytes!(
            "../../../../../events/sentry/event_alert.triggered.workflow_engine.json"
        ));
        let facts = alert_facts("event_alert", &issue);
        assert_eq!(facts.rule.as_deref(), Some("Checkout errors (automation)"));
        assert_eq!(facts.rule_id.as_deref(), Some("4521987"));
        let metric = sample(include_bytes!(
            "../../../../../events/sentry/metric_alert.critical.workflow_engine.json"
        ));
        let facts = alert_facts("metric_alert", &metric);
        assert_eq!(
            facts.rule.as_deref(),
            Some("Checkout p95 latency (detector)")
        );
        assert_eq!(facts.rule_id.as_deref(), Some("1000012345"));
        assert_eq!(
            rule_settings("metric_alert", "critical", &metric.data, Some("4821")),
            RuleSettings::One(FlagChoice::from_pairs([
                ("feature", "checkout-new-flow"),
                ("environment", "production")
            ]))
        );
    }
}
