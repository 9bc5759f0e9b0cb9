//! A settings file's flags as people pick them (the alert rule's drop-downs and its save check):
//! each flag's id, key and name, and its rules in order with their campaigns' names. Read from
//! the texts the one pass kept, only when asked (a cached list, not a delivery's hot path).

use serde_json::value::RawValue;

use super::json_text;
use super::Settings;

/// A flag of the file, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFlag {
    /// VWO's id of the flag.
    pub id: String,
    /// Its key.
    pub key: String,
    /// Its `name`, when the file gives one.
    pub name: Option<String>,
    /// Its rules that have a `ruleKey`, in the file's order.
    pub rules: Vec<ListedRule>,
}

/// A rule of a flag, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedRule {
    /// The rule's `ruleKey`.
    pub key: String,
    /// Its campaign's `name`, when the file has the campaign and it has one.
    pub campaign_name: Option<String>,
}

/// A JSON string member of an object's text, when present, a string, and not empty.
fn text_member(object: &str, name: &str) -> Option<String> {
    json_text::member(object, name)
        .and_then(json_text::string)
        .filter(|s| !s.is_empty())
        .map(|s| s.into_owned())
}

impl Settings<'_> {
    /// Every flag of the file, in the file's order.
    pub fn listing(&self) -> Vec<ListedFlag> {
        let mut campaign_at = 0;
        self.features
            .iter()
            .map(|feature| {
                let rules = json_text::member(feature.span, "rules")
                    .and_then(|text| serde_json::from_str::<Vec<&RawValue>>(text).ok())
                    .unwrap_or_default();
                // One campaign id was read for each rule that is an object, in order.
                let objects = rules.iter().filter(|r| r.get().starts_with('{'));
                let ids = self.rule_campaigns[feature.campaigns.clone()].iter();
                let rules = objects
                    .zip(ids)
                    .filter_map(|(rule, id)| {
                        let key = text_member(rule.get(), "ruleKey")?;
                        let campaign = id
                            .as_ref()
                            .and_then(|id| self.campaigns.get(id, &mut campaign_at));
                        let campaign_name = campaign.and_then(|(_, c)| text_member(c.span, "name"));
                        Some(ListedRule { key, campaign_name })
                    })
                    .collect();
                ListedFlag {
                    id: feature.id.clone().into_owned(),
                    key: feature.key.clone().into_owned(),
                    name: text_member(feature.span, "name"),
                    rules,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn flags_are_listed_with_names_and_their_rules_campaign_names() {
        // Shaped as VWO's `OnlyRolloutSettings.json` (wingify/vwo-fme-sdk-e2e-test-settings-n-cases).
        let body = serde_json::json!({
            "accountId": 654321, "sdkKey": "sdk", "version": 3,
            "features": [
                {"id": "1", "key": "checkout-new-flow", "name": "Checkout v2", "status": "ON",
                 "rules": [{"ruleKey": "rollout1", "type": "FLAG_ROLLOUT", "campaignId": 7},
                           "odd", {"type": "FLAG_TESTING", "campaignId": 8},
                           {"ruleKey": "ab", "type": "FLAG_TESTING", "campaignId": 8}]},
                {"rules": {}, "id": 2, "key": "search-v2", "status": "OFF"}
            ],
            "campaigns": [
                {"id": 7, "key": "checkout-new-flow_rollout1", "name": "Checkout rollout"},
                {"id": 8, "key": "checkout-new-flow_ab", "status": "RUNNING"}
            ]
        })
        .to_string();
        let settings = parse(body.as_bytes(), 654321).unwrap();
        let rule = |key: &str, name: Option<&str>| ListedRule {
            key: key.into(),
            campaign_name: name.map(Into::into),
        };
        assert_eq!(
            settings.listing(),
            [
                ListedFlag {
                    id: "1".into(),
                    key: "checkout-new-flow".into(),
                    name: Some("Checkout v2".into()),
                    rules: vec![rule("rollout1", Some("Checkout rollout")), rule("ab", None)],
                },
                ListedFlag {
                    id: "2".into(),
                    key: "search-v2".into(),
                    name: None,
                    rules: vec![],
                }
            ]
        );
    }
}
