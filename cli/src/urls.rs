//! `bridge url`: the webhook URLs to paste into Sentry and VWO, validated and percent-encoded.

use bridge_platform::{Error, Result};
use bridge_vwo::api::validate_identifier;
use url::Url;

/// A function URL as AWS prints it (`https://<id>.lambda-url.<region>.on.aws/`), or a local one.
pub fn function_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::BadRequest(format!("function URL {raw:?}: {e}")))?;
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost"));
    if url.scheme() != "https" && !(local && url.scheme() == "http") {
        return Err(Error::BadRequest(format!(
            "function URL {raw:?} must be https://"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::BadRequest(format!(
            "function URL {raw:?} must not have a query: give the flag with --feature/--environment"
        )));
    }
    if url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("authtoken") || k == "token")
    {
        return Err(Error::BadRequest("never put a token in the URL".into()));
    }
    Ok(url)
}

/// The kill switch's webhook URL for Sentry: `<function URL>?feature=…&environment=…[&isEnabled=1][&account=…]`.
pub fn sentry_webhook_url(
    function: &str,
    feature: &str,
    environment: &str,
    enable: bool,
    account: Option<&str>,
) -> Result<Url> {
    let mut url = function_url(function)?;
    validate_identifier("feature", feature)?;
    validate_identifier("environment", environment)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("feature", feature)
            .append_pair("environment", environment);
        if enable {
            q.append_pair("isEnabled", "1");
        }
        if let Some(account) = account {
            validate_identifier("account", account)?;
            q.append_pair("account", account);
        }
    }
    Ok(url)
}

/// Change tracking's webhook URL for one VWO environment: `<function URL>?environment=…`.
pub fn vwo_webhook_url(function: &str, environment: &str) -> Result<Url> {
    let mut url = function_url(function)?;
    validate_identifier("environment", environment)?;
    url.query_pairs_mut()
        .append_pair("environment", environment);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FN: &str = "https://abc123.lambda-url.eu-west-1.on.aws/";

    #[test]
    fn sentry_urls_carry_the_flag_encoded() {
        let url = sentry_webhook_url(FN, "checkout new&flow", "prod", false, None).unwrap();
        assert_eq!(url.as_str(), "https://abc123.lambda-url.eu-west-1.on.aws/?feature=checkout+new%26flow&environment=prod");
        let url = sentry_webhook_url(FN, "f", "e", true, Some("123")).unwrap();
        assert_eq!(
            url.query(),
            Some("feature=f&environment=e&isEnabled=1&account=123")
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(sentry_webhook_url("http://example.com/", "f", "e", false, None).is_err());
        assert!(
            sentry_webhook_url("https://x.on.aws/?authToken=abc", "f", "e", false, None).is_err()
        );
        assert!(sentry_webhook_url(FN, "..", "e", false, None).is_err());
        assert!(vwo_webhook_url(FN, "").is_err());
        assert_eq!(
            vwo_webhook_url("http://127.0.0.1:9000/vwo-to-sentry", "staging")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/vwo-to-sentry?environment=staging"
        );
    }
}
