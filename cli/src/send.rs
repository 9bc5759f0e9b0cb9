//! `bridge sign` and `bridge send`: sign a payload as Sentry does, and deliver it as Sentry or VWO would.

use std::time::{SystemTime, UNIX_EPOCH};

use bridge_platform::signature::sign_hex;
use bridge_platform::Result;

/// Who the delivery pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A Sentry integration webhook for this resource (`metric_alert`, ...): signed body.
    Sentry,
    /// A VWO webhook: the secret goes in `x-vwo-auth`.
    Vwo,
}

/// What the receiver answered.
#[derive(Debug)]
pub struct Delivery {
    /// HTTP status.
    pub status: u16,
    /// `Sentry-Hook-Error`, if any.
    pub hook_error: Option<String>,
    /// Response body.
    pub body: String,
}

/// The resource a sample's file name names (`events/sentry/event_alert.triggered.json` →
/// `event_alert`), if it names one.
pub fn resource_from_file_name(path: &std::path::Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let first = name.split('.').next()?;
    bridge_sentry::webhook::RESOURCES
        .iter()
        .copied()
        .find(|r| *r == first)
}

/// Why sending `payload` (as Sentry, for `resource`) to `url` could switch another flag than
/// the URL names: the payload's alert-rule settings override the URL's query. `None` when the
/// URL is on this machine (a local run) or the payload names no other flag.
pub fn override_risk(url: &str, payload: &[u8], resource: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let local = match parsed.host()? {
        url::Host::Domain(d) => d == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if local {
        return None;
    }
    let envelope = bridge_sentry::webhook::Envelope::parse(payload).ok()?;
    let settings = match sentry_to_vwo::alert::decide::decision::rule_settings(
        resource,
        &envelope.action,
        &envelope.data,
        None,
    ) {
        sentry_to_vwo::alert::decide::decision::RuleSettings::One(choice) => choice,
        sentry_to_vwo::alert::decide::decision::RuleSettings::Ambiguous(_) => return None,
    };
    let query: std::collections::HashMap<String, String> =
        parsed.query_pairs().into_owned().collect();
    let differs = |named: &Option<String>, key: &str| {
        named
            .as_ref()
            .filter(|v| query.get(key) != Some(*v))
            .map(|v| format!("{key}={v}"))
    };
    let overrides: Vec<String> = [
        differs(&settings.feature, "feature"),
        differs(&settings.environment, "environment"),
        differs(&settings.is_enabled, "isEnabled"),
        differs(&settings.account, "account"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!overrides.is_empty()).then(|| {
        format!(
            "the payload's alert-rule settings ({}) override the URL's query, so this would act on \
             that flag at {}; edit the payload, or pass --yes to send it anyway",
            overrides.join(", "),
            parsed.host_str().unwrap_or("the receiver")
        )
    })
}

/// Posts `payload` to `url` as `sender` would, authenticated with `secret`.
pub async fn send(
    url: &str,
    payload: &[u8],
    sender: Sender,
    resource: &str,
    secret: &str,
) -> Result<Delivery> {
    let client = bridge_platform::tls::client()?;
    let mut request = client.post(url).header("content-type", "application/json");
    request = match sender {
        Sender::Sentry => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            request
                .header("sentry-hook-resource", resource)
                .header("sentry-hook-timestamp", now.to_string())
                .header(
                    "sentry-hook-signature",
                    sign_hex(secret.as_bytes(), payload),
                )
                .header("request-id", format!("{:032x}", now))
        }
        Sender::Vwo => request.header("x-vwo-auth", secret),
    };
    let response = request
        .body(payload.to_vec())
        .send()
        .await
        .map_err(|e| crate::failure::unanswered_by("the function", url, &e, ""))?;
    let status = response.status().as_u16();
    let hook_error = response
        .headers()
        .get("sentry-hook-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    Ok(Delivery {
        status,
        hook_error,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = br#"{"action":"critical","data":{"metric_alert":{"alert_rule":{"name":"r","triggers":[{"label":"critical","actions":[{"type":"sentry_app","settings":[{"name":"feature","value":"checkout-new-flow"},{"name":"environment","value":"production"}]}]}]}}}}"#;

    #[test]
    fn a_sample_naming_another_flag_is_flagged_only_for_remote_urls() {
        let remote = "https://abc.lambda-url.eu-west-1.on.aws/?feature=nope&environment=production";
        let risk = override_risk(remote, SAMPLE, "metric_alert").unwrap();
        assert!(risk.contains("feature=checkout-new-flow"), "{risk}");
        assert!(override_risk(
            "http://127.0.0.1:9000/sentry-to-vwo?feature=nope",
            SAMPLE,
            "metric_alert"
        )
        .is_none());
        let same = "https://abc.lambda-url.eu-west-1.on.aws/?feature=checkout-new-flow&environment=production";
        assert!(override_risk(same, SAMPLE, "metric_alert").is_none());
    }

    #[test]
    fn the_resource_comes_from_the_sample_file_name() {
        let p = std::path::Path::new("events/sentry/event_alert.triggered.json");
        assert_eq!(resource_from_file_name(p), Some("event_alert"));
        assert_eq!(
            resource_from_file_name(std::path::Path::new("alert.json")),
            None
        );
    }
}
