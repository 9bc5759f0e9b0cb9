//! The few REST lookups change tracking needs besides the settings file: the workspace's numeric
//! id and an environment's SDK key (from `bridge_shared::vwo_projects`), the flag list's pages,
//! and whether a flag still exists. Shapes: `docs/protocols.md` §3.

use bridge_shared::vwo::{TokenSource, VwoClient};
use bridge_shared::{Error, Result};
use serde_json::Value;

fn unexpected(what: &str) -> Error {
    Error::Upstream {
        service: "VWO",
        status: Some(200),
        message: format!("{what} has an unexpected shape"),
    }
}

pub use bridge_shared::vwo_projects::account_id;
use bridge_shared::vwo_projects::{self, as_text};

/// The SDK key of the environment named `environment` (its id, name or SDK key; a name matches
/// regardless of case when nothing matches exactly).
pub async fn sdk_key(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    environment: &str,
) -> Result<String> {
    let environments = vwo_projects::read_environments(client, token, account).await?;
    sdk_key_in(&environments, environment)
}

/// [`sdk_key`] over a projects answer.
pub fn find_sdk_key(body: &Value, environment: &str) -> Result<String> {
    sdk_key_in(&vwo_projects::environments(body)?, environment)
}

fn sdk_key_in(environments: &[vwo_projects::Environment], environment: &str) -> Result<String> {
    vwo_projects::find(environments, environment)?
        .sdk_key
        .clone()
        .ok_or_else(|| unexpected("the environment"))
}

/// One page of the workspace's flag list as `(id, key)`:
/// `GET /accounts/{a}/features?limit=&offset=` (`fme-get-all-feature-flags-of-a-workspace`).
pub async fn flag_page(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
    offset: u32,
    limit: u32,
) -> Result<Vec<(String, String)>> {
    let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
    let reply = client
        .get(token, &["accounts", account, "features"], &query)
        .await?;
    let items = reply.body["_data"]
        .as_array()
        .ok_or_else(|| unexpected("a page of the flag list"))?;
    items
        .iter()
        .map(|item| {
            let id = as_text(&item["id"]).ok_or_else(|| unexpected("a listed flag"))?;
            let key = item["featureKey"]
                .as_str()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| unexpected("a listed flag"))?;
            Ok((id, key.to_owned()))
        })
        .collect()
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
        assert_eq!(find_sdk_key(&projects(), "11").unwrap(), "sdk-web-prod");
        assert_eq!(
            find_sdk_key(&projects(), "staging").unwrap(),
            "sdk-web-stage"
        );
        assert_eq!(
            find_sdk_key(&projects(), "Staging").unwrap(),
            "sdk-web-stage"
        );
        assert_eq!(
            find_sdk_key(&projects(), "sdk-mob-prod").unwrap(),
            "sdk-mob-prod"
        );
        // An exact name wins over a case-insensitive one.
        assert_eq!(
            find_sdk_key(&projects(), "production").unwrap(),
            "sdk-mob-prod"
        );
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
