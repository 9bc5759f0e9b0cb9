//! The webhook URL a user registers in VWO for change tracking: which environment it is about
//! (`?environment=`, its id or name), optionally its SDK key (`?sdkKey=`), and the prefix of its
//! flags' keys in Sentry (`?flagPrefix=`). VWO calls it as it was registered; only its query
//! says which environment changed (VWO's payload names none).

use bridge_platform::{Error, Result};

use crate::api;

/// Which environment a delivery is about.
#[derive(Clone, Debug)]
pub struct Target {
    /// `?environment=` of the webhook URL.
    pub environment: String,
    /// `?sdkKey=` of the webhook URL, when given.
    pub sdk_key_override: Option<String>,
    /// `?flagPrefix=` of the webhook URL (empty when not given).
    pub flag_prefix: String,
}

/// The environment (`?environment=`, required) and SDK key (`?sdkKey=`, optional) named by the
/// webhook URL registered in VWO.
impl Target {
    /// The target the webhook URL's query names; `query` gives a parameter's value.
    pub fn from_query<'q>(query: impl Fn(&str) -> Option<&'q str>) -> Result<Target> {
        let environment = query("environment")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                Error::BadRequest(
                    "the webhook URL needs ?environment=<VWO environment id or name>".into(),
                )
            })?
            .to_owned();
        api::validate_identifier("environment", &environment)?;
        let sdk_key = query("sdkKey")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        if let Some(key) = &sdk_key {
            api::validate_identifier("sdkKey", key)?;
        }
        Ok(Target {
            environment,
            sdk_key_override: sdk_key,
            flag_prefix: flag_prefix(query("flagPrefix"))?,
        })
    }
}

/// `?flagPrefix=`: put before every flag key sent to Sentry (`staging:` → `staging:search-v2`),
/// so that one Sentry organisation's flag log (which has no environment) can hold several VWO
/// environments without one's changes naming suspects of another's issues. At most 32
/// characters of letters, digits and `:._-`; none by default.
fn flag_prefix(raw: Option<&str>) -> Result<String> {
    let prefix = raw.unwrap_or_default().to_owned();
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":._-".contains(c);
    if prefix.len() > 32 || !prefix.chars().all(allowed) {
        return Err(Error::BadRequest(
            "flagPrefix: at most 32 letters, digits or :._- (e.g. staging:)".into(),
        ));
    }
    Ok(prefix)
}
