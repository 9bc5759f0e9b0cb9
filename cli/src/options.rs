//! `bridge options`: what an alert rule's drop-down shows, asked of the kill switch exactly as
//! Sentry asks (`GET <function URL's scheme and host><uri>?installationId=...&query=...
//! &dependentData=...`, `Sentry-App-Signature` over the empty body; getsentry/sentry
//! `select_requester.py`).

use bridge_platform::signature::sign_hex;
use bridge_platform::{Error, Result};
use sentry_to_vwo::rule_form::options::List;
use serde_json::{json, Value};

use crate::failure::Failure;

/// What to ask for.
#[derive(Clone, Debug, Default)]
pub struct Asked<'a> {
    /// The chosen environment (`dependentData.environment`).
    pub environment: Option<&'a str>,
    /// The chosen flag (`dependentData.feature`).
    pub feature: Option<&'a str>,
    /// Search text (`query`).
    pub query: Option<&'a str>,
}

/// The URL Sentry calls for `list`: the function URL's scheme, host and port, the list's `uri`.
pub fn options_url(function_url: &str, list: List, asked: &Asked<'_>) -> Result<url::Url> {
    let mut url = url::Url::parse(function_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| Error::BadRequest(format!("{function_url:?} is not an http(s) URL")))?;
    url.set_path(list.uri());
    url.set_query(None);
    let mut data = serde_json::Map::new();
    if let Some(environment) = asked.environment {
        data.insert("environment".into(), json!(environment));
    }
    if let Some(feature) = asked.feature {
        data.insert("feature".into(), json!(feature));
    }
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("installationId", "bridge-cli");
        if let Some(query) = asked.query {
            pairs.append_pair("query", query);
        }
        if !data.is_empty() {
            pairs.append_pair("dependentData", &Value::Object(data).to_string());
        }
    }
    Ok(url)
}

/// The choices as `(label, value)`, or the message the kill switch gave (what Sentry would
/// show the user).
pub async fn fetch(
    function_url: &str,
    list: List,
    asked: &Asked<'_>,
    client_secret: &str,
) -> std::result::Result<Vec<(String, String)>, Failure> {
    let url = options_url(function_url, list, asked)?;
    let response = bridge_platform::tls::client()?
        .get(url.clone())
        .header("content-type", "application/json")
        .header("request-id", "bridge-cli")
        .header(
            "sentry-app-signature",
            sign_hex(client_secret.as_bytes(), b""),
        )
        .send()
        .await
        .map_err(|e| Failure::Failed(crate::failure::unanswered(url.as_str(), &e, "")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(Failure::Failed(format!(
            "the kill switch answered {status}: {message}"
        )));
    }
    let choices = body
        .as_array()
        .ok_or_else(|| Failure::Failed(format!("the answer is not a list: {body}")))?;
    choices
        .iter()
        .map(|c| match (c["label"].as_str(), c["value"].as_str()) {
            (Some(label), Some(value)) => Ok((label.to_owned(), value.to_owned())),
            _ => Err(Failure::Failed(format!(
                "Sentry would refuse this choice (no string label and value): {c}"
            ))),
        })
        .collect()
}

/// The choices as lines: the label Sentry shows, and the value the rule keeps.
pub fn render(choices: &[(String, String)]) -> String {
    if choices.is_empty() {
        return "(no choices)\n".into();
    }
    let width = choices
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    choices
        .iter()
        .map(|(label, value)| format!("{label:<width$}  → {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_hosts_with_the_lists_uri_as_sentry_builds_it() {
        let asked = Asked {
            environment: Some("production"),
            query: Some("check out"),
            ..Asked::default()
        };
        let url = options_url(
            "http://127.0.0.1:9000/sentry-to-vwo?feature=x",
            List::Flags,
            &asked,
        )
        .unwrap();
        assert_eq!(url.path(), "/options/flags");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[1], ("query".into(), "check out".into()));
        assert_eq!(
            pairs[2],
            (
                "dependentData".into(),
                r#"{"environment":"production"}"#.into()
            )
        );
        assert!(options_url("ftp://x", List::Flags, &asked).is_err());
    }

    #[test]
    fn choices_are_aligned_labels_and_values() {
        let lines = render(&[
            (
                "Checkout v2 (checkout-new-flow)".into(),
                "checkout-new-flow".into(),
            ),
            ("Search".into(), "search".into()),
        ]);
        assert_eq!(
            lines,
            "Checkout v2 (checkout-new-flow)  → checkout-new-flow\nSearch                           → search\n"
        );
        assert_eq!(render(&[]), "(no choices)\n");
    }
}
