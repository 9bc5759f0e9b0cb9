//! VWO's outgoing webhooks: the `x-vwo-auth` check and the (flag-less) payload.

use serde::Deserialize;
use serde_json::Value;

use bridge_platform::secrets::Secret;
use bridge_platform::{signature, Error, Result};

/// Header carrying the webhook's shared secret.
pub const AUTH_HEADER: &str = "x-vwo-auth";

/// Checks `x-vwo-auth` against the current secret and, during a rotation, the previous one.
/// Both comparisons always run, in constant time, so timing tells nothing about which matched.
pub fn verify_auth(given: Option<&str>, current: &Secret, previous: Option<&Secret>) -> Result<()> {
    let given = given.ok_or(Error::Unauthorized("missing x-vwo-auth"))?;
    let matches_current = signature::secrets_equal(current.expose().as_bytes(), given.as_bytes());
    let matches_previous =
        previous.is_some_and(|p| signature::secrets_equal(p.expose().as_bytes(), given.as_bytes()));
    if matches_current | matches_previous {
        Ok(())
    } else {
        Err(Error::Unauthorized("invalid x-vwo-auth"))
    }
}

/// The webhook body: `{"timestamp": 1606482285, "event": "settings_changed",
/// "action": "feature_flag_updated", "triggered_by": "vwo"}`. Read tolerantly: every field
/// may be missing, and the timestamp may be a number or a numeric string.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VwoWebhook {
    /// Unix seconds of the change, as VWO sends it.
    #[serde(default)]
    pub timestamp: Value,
    /// Event name (`settings_changed`).
    #[serde(default)]
    pub event: Option<String>,
    /// What changed (`feature_flag_updated`, `campaign_settings_changed`, ...).
    #[serde(default)]
    pub action: Option<String>,
    /// Who VWO says triggered it.
    #[serde(default)]
    pub triggered_by: Option<String>,
}

impl VwoWebhook {
    /// Parses a verified body; anything but a JSON object is a bad request.
    pub fn parse(body: &[u8]) -> Result<Self> {
        bridge_platform::request::parse_object(body, "a VWO webhook")
    }

    /// The change's Unix time, if the payload has a usable one.
    pub fn timestamp(&self) -> Option<i64> {
        match &self.timestamp {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_or_previous_secret_is_accepted() {
        let current = Secret::new("new");
        let previous = Secret::new("old");
        assert!(verify_auth(Some("new"), &current, Some(&previous)).is_ok());
        assert!(verify_auth(Some("old"), &current, Some(&previous)).is_ok());
        assert!(verify_auth(Some("old"), &current, None).is_err());
        assert!(verify_auth(Some("other"), &current, Some(&previous)).is_err());
        assert!(verify_auth(None, &current, Some(&previous)).is_err());
        assert!(verify_auth(Some(""), &current, None).is_err());
    }

    #[test]
    fn payloads_are_read_tolerantly() {
        let hook = VwoWebhook::parse(br#"{"timestamp":1606482285,"event":"settings_changed","action":"feature_flag_updated","triggered_by":"vwo"}"#).unwrap();
        assert_eq!(hook.timestamp(), Some(1606482285));
        let text = VwoWebhook::parse(br#"{"timestamp":"1606482285"}"#).unwrap();
        assert_eq!(text.timestamp(), Some(1606482285));
        let campaign = VwoWebhook::parse(br#"{"action":"campaign_settings_changed"}"#).unwrap();
        assert_eq!(
            campaign.action.as_deref(),
            Some("campaign_settings_changed")
        );
        assert_eq!(campaign.timestamp(), None);
        assert_eq!(VwoWebhook::parse(b"[]").unwrap_err().status(), 400);
        assert_eq!(
            VwoWebhook::parse(br#"{"action":"a","action":"b"}"#)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            VwoWebhook::parse(br#"{"timestamp":1"#)
                .unwrap_err()
                .status(),
            400
        );
    }
}
