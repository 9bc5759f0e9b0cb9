//! The workspace's environments, from VWO's projects, and its numeric id: what both functions
//! need to find an environment's SDK settings file.
//!
//! Shapes (see `docs/protocols.md` §3): answers come in VWO's `{"_data": ...}` envelope;
//! `GET /accounts/{a}` → `_data.id` numeric; `GET /accounts/{a}/projects` → `_data` an array of
//! projects (`id`, `name`) with `environments[]` of `{id, name, isEnabled, token}`, `token` being
//! the environment's SDK key (VWO API reference, project resource representation;
//! `wingify/vwo-fme-mcp` `lib/utils/ResponseMessages.ts` reads `_data` as an array of projects).
//! Environments have no key of their own: the bridge names them by id or name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{TokenSource, VwoClient};
use bridge_platform::{Error, Result};

/// One environment of one of the workspace's projects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// VWO's id of the environment (what the kill switch puts in VWO's URLs).
    pub id: String,
    /// Its name, as VWO's UI shows it.
    pub name: String,
    /// The name of its project.
    pub project: String,
    /// Its SDK key (the settings file's `i`); never shown to anyone.
    pub sdk_key: Option<String>,
}

impl Environment {
    /// The environment's key as a person writes it in a URL: its name in lower case, each run of
    /// other characters than letters and digits one `-` ("Production EU" → `production-eu`).
    /// **Assumed**: VWO's API paths take an environment "id or key", but the projects read
    /// publishes no key field (docs/protocols.md); a name is what people know.
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(self.name.len());
        for c in self.name.chars() {
            if c.is_alphanumeric() {
                key.extend(c.to_lowercase());
            } else if !key.is_empty() && !key.ends_with('-') {
                key.push('-');
            }
        }
        key.trim_end_matches('-').to_owned()
    }

    /// Whether `wanted` names this environment: its id, its name or its key ([`Self::key`]),
    /// regardless of case, or its SDK key exactly.
    pub fn is(&self, wanted: &str) -> bool {
        self.id == wanted
            || self.sdk_key.as_deref() == Some(wanted)
            || self.name.eq_ignore_ascii_case(wanted)
            || self.key().eq_ignore_ascii_case(wanted)
    }

    /// "Project / Environment", as a person finds it in VWO's UI.
    pub fn label(&self) -> String {
        if self.project.is_empty() {
            self.name.clone()
        } else {
            format!("{} / {}", self.project, self.name)
        }
    }
}

fn unexpected(what: &str) -> Error {
    Error::Upstream {
        service: "VWO",
        status: Some(200),
        message: format!("{what} has an unexpected shape"),
    }
}

/// A number or a non-empty string as text.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The numeric id of `account`: the value itself when numeric, else `GET /accounts/{account}`.
pub async fn account_id(client: &VwoClient, token: TokenSource<'_>, account: &str) -> Result<u64> {
    if let Ok(id) = account.parse() {
        return Ok(id);
    }
    let reply = client.get(token, &["accounts", account], &[]).await?;
    as_text(&reply.body["_data"]["id"])
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| unexpected("the workspace"))
}

/// Every environment of `account`'s projects: one `GET /accounts/{a}/projects`.
pub async fn read_environments(
    client: &VwoClient,
    token: TokenSource<'_>,
    account: &str,
) -> Result<Vec<Environment>> {
    let reply = client
        .get(token, &["accounts", account, "projects"], &[])
        .await?;
    environments(&reply.body)
}

/// The environments in a projects answer (an environment without an id or a name is skipped).
pub fn environments(body: &Value) -> Result<Vec<Environment>> {
    let projects = body["_data"]
        .as_array()
        .ok_or_else(|| unexpected("the project list"))?;
    Ok(projects
        .iter()
        .flat_map(|project| {
            let name = project["name"].as_str().unwrap_or_default();
            project["environments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |e| {
                    Some(Environment {
                        id: as_text(&e["id"])?,
                        name: as_text(&e["name"])?,
                        project: name.to_owned(),
                        sdk_key: as_text(&e["token"]),
                    })
                })
        })
        .collect())
}

/// The one environment `wanted` names: by id, name or SDK key exactly, else by name or key
/// ([`Environment::key`]) regardless of case. None or several → 400 saying which.
pub fn find<'a>(environments: &'a [Environment], wanted: &str) -> Result<&'a Environment> {
    let exact = |e: &&Environment| {
        e.id == wanted || e.name == wanted || e.sdk_key.as_deref() == Some(wanted)
    };
    let mut found: Vec<&Environment> = environments.iter().filter(exact).collect();
    if found.is_empty() {
        found = environments.iter().filter(|e| e.is(wanted)).collect();
    }
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::BadRequest(format!(
            "VWO has no environment {wanted:?} in this workspace's projects"
        ))),
        several => Err(Error::BadRequest(format!(
            "{} VWO environments match {wanted:?} (ids {}); use the environment's id",
            several.len(),
            several
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn projects() -> Vec<Environment> {
        environments(&json!({"_data": [
            {"id": 7, "name": "Web", "environments": [
                {"id": 11, "name": "Production", "isEnabled": true, "token": "sdk-web-prod"},
                {"id": 12, "name": "staging", "isEnabled": true, "token": "sdk-web-stage"}]},
            {"id": 8, "name": "Mobile", "environments": [
                {"id": 21, "name": "production", "isEnabled": true, "token": "sdk-mob-prod"},
                {"name": "no id"}]}]}))
        .unwrap()
    }

    #[test]
    fn environments_carry_their_project_and_are_found_by_id_name_or_sdk_key() {
        let all = projects();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].label(), "Web / Production");
        let id = |wanted: &str| find(&all, wanted).unwrap().id.clone();
        assert_eq!(id("11"), "11");
        assert_eq!(id("Staging"), "12");
        assert_eq!(id("sdk-mob-prod"), "21");
        // An exact name wins over a case-insensitive one.
        assert_eq!(id("production"), "21");
    }

    #[test]
    fn unknown_ambiguous_and_malformed_answers_are_errors() {
        assert_eq!(find(&projects(), "qa").unwrap_err().status(), 400);
        let twice = environments(&json!({"_data": [
            {"environments": [{"id": 1, "name": "prod", "token": "a"}]},
            {"environments": [{"id": 2, "name": "prod", "token": "b"}]}]}))
        .unwrap();
        let err = find(&twice, "prod").unwrap_err();
        assert!(err.to_string().contains("ids 1, 2"), "{err}");
        assert_eq!(
            environments(&json!({"_data": {}})).unwrap_err().status(),
            502
        );
    }

    #[test]
    fn an_environment_is_found_by_its_key_in_any_case() {
        let env = |id: &str, name: &str| Environment {
            id: id.into(),
            name: name.into(),
            project: "Shop".into(),
            sdk_key: Some(format!("sdk-{id}")),
        };
        let all = [env("1", "Production"), env("2", "Staging EU")];
        assert_eq!(all[1].key(), "staging-eu");
        for wanted in ["1", "Production", "production", "PRODUCTION", "sdk-1"] {
            assert_eq!(find(&all, wanted).unwrap().id, "1", "{wanted}");
        }
        for wanted in ["staging-eu", "Staging-EU", "staging eu"] {
            assert_eq!(find(&all, wanted).unwrap().id, "2", "{wanted}");
        }
        assert!(find(&all, "prod").is_err());
    }
}
