//! The few REST lookups change tracking needs besides the settings file: the workspace's numeric
//! id and an environment's SDK key (from `bridge_vwo::projects`), the flag list's pages,
//! and whether a flag still exists. Shapes: `docs/protocols.md` §3.

use bridge_platform::{Error, Result};
use bridge_vwo::api::{TokenSource, VwoClient};
use serde_json::Value;

fn unexpected(what: &str) -> Error {
    Error::Upstream {
        service: "VWO",
        status: Some(200),
        message: format!("{what} has an unexpected shape"),
    }
}

use bridge_vwo::projects;
pub use bridge_vwo::projects::account_id;

/// What a delivery already knows of its environment (from the webhook URL or the snapshot).
#[derive(Clone, Copy, Debug, Default)]
pub struct Known<'a> {
    /// The SDK key the webhook URL gives (`?sdkKey=`): the operator asked for no lookup.
    pub sdk_key_override: Option<&'a str>,
    /// The SDK key the snapshot keeps.
    pub sdk_key: Option<&'a str>,
    /// VWO's id of the environment, as the snapshot keeps it.
    pub environment_id: Option<&'a str>,
}

/// The SDK key and VWO id of the environment named `environment` (its id, name, key or SDK key;
/// see `projects::find`): what is `known` is kept, the rest read with one
/// `GET /accounts/{a}/projects`. A numeric `environment` is taken as the id. With an SDK key in
/// the URL nothing is read (the id is then the numeric `environment`, else `None`); the id is
/// also `None` when VWO's projects cannot be read but the SDK key is known (logged). Without an
/// id the delivery goes on; its changes are not kept for the kill switch.
pub async fn environment(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    environment: &str,
    known: Known<'_>,
) -> Result<(String, Option<String>)> {
    let numeric = environment
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some(environment);
    let id = known.environment_id.or(numeric);
    if let Some(sdk_key) = known.sdk_key_override {
        return Ok((sdk_key.to_owned(), id.map(str::to_owned)));
    }
    if let (Some(sdk_key), Some(id)) = (known.sdk_key, id) {
        return Ok((sdk_key.to_owned(), Some(id.to_owned())));
    }
    let found = projects::read_environments(client, token, account)
        .await
        .and_then(|all| Ok(projects::find(&all, environment)?.clone()));
    match (found, known.sdk_key) {
        (Ok(env), _) => {
            let sdk_key = match known.sdk_key {
                Some(key) => key.to_owned(),
                None => env
                    .sdk_key
                    .clone()
                    .ok_or_else(|| unexpected("the environment"))?,
            };
            Ok((sdk_key, Some(env.id)))
        }
        (Err(e), Some(sdk_key)) => {
            tracing::warn!(error = %e, "could not read the environment's VWO id; its changes are not kept for the kill switch this time");
            Ok((sdk_key.to_owned(), None))
        }
        (Err(e), None) => Err(e),
    }
}

/// The SDK key of the environment named `environment` in a projects answer.
pub fn find_sdk_key(body: &Value, environment: &str) -> Result<String> {
    projects::find(&projects::environments(body)?, environment)?
        .sdk_key
        .clone()
        .ok_or_else(|| unexpected("the environment"))
}

/// Whether the flag still exists in the workspace: 200 with a flag → yes, 404 → no.
pub async fn flag_exists(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    flag_id: &str,
) -> Result<bool> {
    match client
        .get(token, &["accounts", account, "features", flag_id], &[])
        .await
    {
        Ok(reply) => {
            let flag = &reply.body["_data"];
            if flag.get("id").is_some() || flag.get("featureKey").is_some() {
                Ok(true)
            } else {
                Err(unexpected("the flag"))
            }
        }
        Err(Error::Upstream {
            status: Some(404), ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn projects() -> Value {
        json!({"_data": [
            {"id": 7, "name": "Web", "environments": [
                {"id": 11, "name": "Production", "isEnabled": true, "token": "sdk-web-prod"},
                {"id": 12, "name": "staging", "isEnabled": true, "token": "sdk-web-stage"}]},
            {"id": 8, "name": "Mobile", "environments": [
                {"id": 21, "name": "production", "isEnabled": true, "token": "sdk-mob-prod"}]}]})
    }

    #[test]
    fn environments_are_found_by_id_name_or_sdk_key() {
        for (given, sdk_key) in [
            ("11", "sdk-web-prod"),
            ("staging", "sdk-web-stage"),
            ("Staging", "sdk-web-stage"),
            ("sdk-mob-prod", "sdk-mob-prod"),
            // An exact name wins over a case-insensitive one.
            ("production", "sdk-mob-prod"),
        ] {
            assert_eq!(
                find_sdk_key(&projects(), given).unwrap(),
                sdk_key,
                "{given}"
            );
        }
    }

    #[test]
    fn unknown_ambiguous_and_malformed_answers_are_errors() {
        assert_eq!(find_sdk_key(&projects(), "qa").unwrap_err().status(), 400);
        let twice = json!({"_data": [
            {"environments": [{"id": 1, "name": "prod", "token": "a"}]},
            {"environments": [{"id": 2, "name": "prod", "token": "b"}]}]});
        let err = find_sdk_key(&twice, "prod").unwrap_err();
        assert!(err.to_string().contains("ids 1, 2"), "{err}");
        assert_eq!(
            find_sdk_key(&json!({"_data": {}}), "prod")
                .unwrap_err()
                .status(),
            502
        );
    }
}
