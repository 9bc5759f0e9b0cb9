//! The alert rule's drop-downs: Sentry asks the kill switch for the options of a `select` field
//! whose `uri` is one of [`List`]'s, and shows the answer as the field's choices.
//!
//! Facts (docs/protocols.md §1b; getsentry/sentry
//! `src/sentry/sentry_apps/external_requests/select_requester.py`): `GET <the webhook URL's
//! scheme and host><uri>?installationId=<uuid>[&projectSlug=][&query=][&dependentData=<JSON of the
//! fields in depends_on>]`, with `Sentry-App-Signature` = the app's HMAC-SHA256 of the **empty
//! body**. The answer is a JSON array of `{"label", "value", "default"?}` strings; on an error
//! status Sentry shows the user the body's `message`.
//!
//! The signature covers an empty body, so it is the same for every options request of the
//! installation: whoever captures one can replay it. These answers therefore hold names, keys
//! and ids only — never a token, an SDK key or a rule's settings — and are bounded
//! ([`MAX_CHOICES`]; VWO is read at most once per list per TTL, `crate::rule_form::catalog::cache`).

use bridge_platform::{Error, Result};
use bridge_vwo::api::{TokenSource, VwoClient};
use bridge_vwo::projects::Environment;
use serde::Serialize;
use serde_json::Value;

use crate::alert::decide::decision::Feature;
use crate::alert::guard::guard_rails::PatternList;
use crate::rule_form::catalog::{Catalog, Flag, Workspace};

/// The most choices one answer holds: a search narrows the rest.
pub const MAX_CHOICES: usize = 100;

/// The longest search text considered (Sentry sends what the user types).
const MAX_QUERY_CHARS: usize = 100;

/// The largest `dependentData` accepted.
const MAX_DEPENDENT_DATA_BYTES: usize = 2048;

/// A list the kill switch serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    /// `/options/environments`: the workspace's environments (value: VWO's id).
    Environments,
    /// `/options/flags`: the chosen environment's flags (value: the flag's key); searchable.
    Flags,
    /// `/options/rules`: the chosen flag's rules in the chosen environment (value: the rule's key).
    Rules,
}

impl List {
    /// Every list, in the order of the schema's fields.
    pub const ALL: [List; 3] = [List::Environments, List::Flags, List::Rules];

    /// The `uri` of the list in `sentry/integration-schema.json`.
    pub fn uri(self) -> &'static str {
        match self {
            List::Environments => "/options/environments",
            List::Flags => "/options/flags",
            List::Rules => "/options/rules",
        }
    }

    /// The list a request path asks for (the path may carry a stage prefix).
    pub fn from_path(path: &str) -> Option<List> {
        List::ALL.into_iter().find(|l| path.ends_with(l.uri()))
    }

    /// The list named `name` (`environments`, `flags`, `rules`), for the CLI.
    pub fn named(name: &str) -> Option<List> {
        List::ALL
            .into_iter()
            .find(|l| l.uri().rsplit('/').next() == Some(name))
    }
}

/// What a request asks for: the search text and the fields it depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// What the user typed (`query`).
    pub query: Option<String>,
    /// The chosen environment (`dependentData.environment`).
    pub environment: Option<String>,
    /// The chosen flag (`dependentData.feature`).
    pub feature: Option<String>,
}

/// Reads the query parameters (`first(name)`: the first value of one). `dependentData` must be a
/// JSON object when present.
pub fn asked<'a>(first: impl Fn(&str) -> Option<&'a str>) -> Result<Asked> {
    let query = first("query")
        .map(|q| q.trim().chars().take(MAX_QUERY_CHARS).collect::<String>())
        .filter(|q| !q.is_empty());
    let mut asked = Asked {
        query,
        ..Asked::default()
    };
    if let Some(raw) = first("dependentData").filter(|d| !d.trim().is_empty()) {
        if raw.len() > MAX_DEPENDENT_DATA_BYTES {
            return Err(Error::BadRequest(format!(
                "dependentData is over {MAX_DEPENDENT_DATA_BYTES} bytes"
            )));
        }
        let data: Value = serde_json::from_str(raw)
            .map_err(|e| Error::BadRequest(format!("dependentData is not JSON: {e}")))?;
        if !data.is_object() {
            return Err(Error::BadRequest(
                "dependentData is not a JSON object".into(),
            ));
        }
        let text = |name: &str| match &data[name] {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        asked.environment = text("environment");
        asked.feature = text("feature");
    }
    Ok(asked)
}

/// Where the lists come from.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The shared cache of VWO's lists.
    pub catalog: &'a Catalog,
    /// The client for token reads (background priority at the rate gate).
    pub vwo: &'a VwoClient,
    /// The token.
    pub token: TokenSource<'a>,
    /// The workspace the lists are of.
    pub account: &'a str,
    /// `KILLABLE_FLAGS`, when set: only those flags are offered.
    pub killable: Option<&'a PatternList>,
}

/// The choices of `list` for what `asked` says; an empty list while a field it depends on is
/// not chosen yet.
pub async fn choices(source: Source<'_>, list: List, asked: &Asked) -> Result<Vec<Choice>> {
    let Source {
        catalog,
        vwo,
        token,
        account,
        killable,
    } = source;
    let search = asked.query.as_deref();
    match (list, &asked.environment, &asked.feature) {
        (List::Environments, _, _) => {
            let workspace = catalog.workspace(vwo, token, account).await?;
            Ok(environment_choices(&workspace, search))
        }
        (List::Flags, Some(environment), _) => {
            let (environment, flags) = catalog.flags(vwo, token, account, environment).await?;
            Ok(flag_choices(&environment, &flags, killable, search))
        }
        (List::Rules, Some(environment), Some(feature)) => {
            let (_, flags) = catalog.flags(vwo, token, account, environment).await?;
            Ok(rule_choices(&flags, feature, search))
        }
        (List::Flags | List::Rules, _, _) => Ok(Vec::new()),
    }
}

/// One choice, as Sentry's select requester wants it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// What the user reads.
    pub label: String,
    /// What the alert rule keeps and the kill switch receives.
    pub value: String,
}

fn matches(query: Option<&str>, texts: &[&str]) -> bool {
    match query {
        None => true,
        Some(q) => {
            let q = q.to_lowercase();
            texts.iter().any(|t| t.to_lowercase().contains(&q))
        }
    }
}

/// The workspace's environments, "Project / Environment", by VWO's id.
pub fn environment_choices(workspace: &Workspace, query: Option<&str>) -> Vec<Choice> {
    let mut choices: Vec<Choice> = workspace
        .environments
        .iter()
        .filter(|e| matches(query, &[&e.name, &e.project, &e.id]))
        .map(|e| Choice {
            label: e.label(),
            value: e.id.clone(),
        })
        .collect();
    choices.sort_by_cached_key(|c| c.label.to_lowercase());
    choices.truncate(MAX_CHOICES);
    choices
}

/// The environment's flags the kill switch may switch (`killable`: `KILLABLE_FLAGS`, matched as
/// the guard rails do), "Name (key)", by key, searched by name or key.
pub fn flag_choices(
    environment: &Environment,
    flags: &[Flag],
    killable: Option<&PatternList>,
    query: Option<&str>,
) -> Vec<Choice> {
    let suspect = matches(query, &[SUSPECT_LABEL, Feature::SUSPECT]).then(|| Choice {
        label: SUSPECT_LABEL.to_owned(),
        value: Feature::SUSPECT.to_owned(),
    });
    suspect
        .into_iter()
        .chain(flag_list(environment, flags, killable, query))
        .take(MAX_CHOICES)
        .collect()
}

/// The label of the first flag choice: the issue's suspect, found when the alert fires.
pub const SUSPECT_LABEL: &str =
    "The issue's suspect flag (changed shortly before the issue started)";

fn flag_list<'a>(
    environment: &'a Environment,
    flags: &'a [Flag],
    killable: Option<&'a PatternList>,
    query: Option<&'a str>,
) -> impl Iterator<Item = Choice> + 'a {
    flags
        .iter()
        .filter(move |f| killable.is_none_or(|k| k.matches(environment, &f.key)))
        .filter(move |f| matches(query, &[&f.name, &f.key]))
        .map(move |f| Choice {
            label: match f.off_since_ms {
                Some(_) => format!("{} — off in {}", f.label(), environment.name),
                None => f.label(),
            },
            value: f.key.clone(),
        })
}

/// The rules of the flag `feature` names (key or id), "Name (key)", by key; none for a flag
/// the environment does not have.
pub fn rule_choices(flags: &[Flag], feature: &str, query: Option<&str>) -> Vec<Choice> {
    flags
        .iter()
        .find(|f| f.is(feature))
        .map(|f| {
            f.rules
                .iter()
                .filter(|r| matches(query, &[&r.name, &r.key]))
                .take(MAX_CHOICES)
                .map(|r| Choice {
                    label: r.label(),
                    value: r.key.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rule_form::catalog::Rule;
    use serde_json::json;

    fn environment(id: &str, name: &str) -> Environment {
        Environment {
            id: id.into(),
            name: name.into(),
            project: "Web".into(),
            sdk_key: Some(format!("sdk-{id}")),
        }
    }

    fn flag(key: &str, name: &str, rules: &[&str]) -> Flag {
        Flag {
            off_since_ms: None,
            id: format!("{}", key.len()),
            key: key.into(),
            name: name.into(),
            rules: rules
                .iter()
                .map(|r| Rule {
                    key: (*r).into(),
                    name: format!("{name} {r}"),
                })
                .collect(),
        }
    }

    /// A `uri` Sentry accepts: JSON Schema `^\/` in `schema.py`, and `VALID_SENTRY_APP_URI_RE`
    /// (`^/(?!/)[^@]*$`) in `external_requests/utils.py`.
    fn sentry_uri(uri: &Value) -> bool {
        uri.as_str()
            .is_some_and(|u| u.starts_with('/') && !u.starts_with("//") && !u.contains('@'))
    }

    /// One form field, by the rules of getsentry/sentry
    /// `src/sentry/sentry_apps/api/parsers/schema.py` (`select`, `text`, `textarea`, `options`,
    /// `validate_text_component_defaults`), restated here.
    fn check_field(field: &Value, earlier: &[String]) -> std::result::Result<(), String> {
        let kind = field["type"].as_str().ok_or("a field without a type")?;
        if !field["name"].is_string() || !field["label"].is_string() {
            return Err(format!("{field}: name and label must be strings"));
        }
        match kind {
            "text" | "textarea" => match field.get("default") {
                None => Ok(()),
                Some(d) if d == "issue.title" || d == "issue.description" => Ok(()),
                Some(d) => Err(format!("{field}: default {d} is not allowed")),
            },
            "select" => {
                if field.get("uri").is_some() == field.get("options").is_some() {
                    return Err(format!("{field}: exactly one of uri and options"));
                }
                if let Some(uri) = field.get("uri") {
                    if !sentry_uri(uri) {
                        return Err(format!("{field}: uri must be a relative path"));
                    }
                }
                if let Some(options) = field.get("options") {
                    let pairs = options.as_array().filter(|o| !o.is_empty());
                    let ok = pairs.is_some_and(|pairs| {
                        pairs.iter().all(|p| {
                            p.as_array().is_some_and(|p| {
                                p.len() == 2
                                    && p[0].is_string()
                                    && (p[1].is_string() || p[1].is_number())
                            })
                        })
                    });
                    if !ok {
                        return Err(format!("{field}: options must be [label, value] pairs"));
                    }
                }
                for flag in ["async", "skip_load_on_open"] {
                    if field.get(flag).is_some_and(|v| !v.is_boolean()) {
                        return Err(format!("{field}: {flag} must be a boolean"));
                    }
                }
                if let Some(depends) = field.get("depends_on") {
                    let names = depends.as_array().filter(|d| !d.is_empty());
                    let names = names.ok_or(format!("{field}: depends_on must list fields"))?;
                    // Ours: a list depends on fields the user fills in before it.
                    for name in names {
                        let known = name
                            .as_str()
                            .is_some_and(|n| earlier.iter().any(|e| e == n));
                        if !known {
                            return Err(format!(
                                "{field}: depends on {name}, not an earlier field"
                            ));
                        }
                    }
                }
                Ok(())
            }
            other => Err(format!("a field of type {other}")),
        }
    }

    /// `sentry/integration-schema.json`, the schema the project ships, parsed.
    pub(crate) fn shipped_schema() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../sentry/integration-schema.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_shipped_schema_keeps_sentrys_rules_and_its_lists_are_served() {
        let schema = shipped_schema();
        let elements = schema["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 1, "one element of each type at most");
        let action = &elements[0];
        assert_eq!(action["type"], "alert-rule-action");
        assert!(action["title"].is_string());
        let settings = &action["settings"];
        assert_eq!(settings["type"], "alert-rule-settings");
        assert!(sentry_uri(&settings["uri"]));
        let description = settings["description"].as_str().unwrap();
        assert!(
            (1..=140).contains(&description.chars().count()),
            "{description}"
        );
        let mut earlier = Vec::new();
        let mut served = Vec::new();
        for group in ["required_fields", "optional_fields"] {
            let fields = settings[group].as_array().unwrap();
            assert!(!fields.is_empty(), "{group} needs at least one field");
            for field in fields {
                check_field(field, &earlier).unwrap();
                if let Some(uri) = field["uri"].as_str() {
                    served.push(
                        List::from_path(uri).unwrap_or_else(|| panic!("{uri} is not served")),
                    );
                }
                earlier.push(field["name"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(served, List::ALL);
        // The rules catch what Sentry refuses.
        let refused = [
            json!({"type": "select", "name": "x", "label": "X"}),
            json!({"type": "select", "name": "x", "label": "X", "uri": "//evil", }),
            json!({"type": "select", "name": "x", "label": "X", "uri": "/a", "depends_on": []}),
            json!({"type": "select", "name": "x", "label": "X", "options": [["a"]]}),
            json!({"type": "text", "name": "x", "label": "X", "default": "issue.id"}),
        ];
        for field in refused {
            assert!(check_field(&field, &[]).is_err(), "{field}");
        }
    }

    #[test]
    fn lists_are_found_by_path_and_name() {
        assert_eq!(List::from_path("/options/flags"), Some(List::Flags));
        assert_eq!(List::from_path("/prod/options/rules"), Some(List::Rules));
        assert_eq!(List::from_path("/options/tokens"), None);
        assert_eq!(List::named("environments"), Some(List::Environments));
    }

    #[test]
    fn dependent_data_is_a_json_object_of_the_chosen_fields() {
        let params = [
            ("installationId", "a1b2"),
            ("query", "  Check "),
            (
                "dependentData",
                r#"{"environment": 11, "feature": "checkout"}"#,
            ),
        ];
        let first = |n: &str| params.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert_eq!(
            asked(first).unwrap(),
            Asked {
                query: Some("Check".into()),
                environment: Some("11".into()),
                feature: Some("checkout".into()),
            }
        );
        for bad in ["[1]", "{", &"x".repeat(3000)] {
            let first = |n: &str| (n == "dependentData").then_some(bad);
            assert_eq!(asked(first).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(asked(|_: &str| None).unwrap(), Asked::default());
    }

    #[test]
    fn flags_are_searched_by_name_or_key_and_kept_to_the_killable_ones() {
        let production = environment("11", "Production");
        let flags = [
            flag("checkout-new-flow", "Checkout v2", &[]),
            flag("search-v2", "Search", &[]),
        ];
        let all = flag_choices(&production, &flags, None, None);
        assert_eq!(all.len(), 3);
        // First: the issue's suspect, found when the alert fires.
        assert_eq!(all[0].value, "@suspect");
        assert_eq!(all[1].label, "Checkout v2 (checkout-new-flow)");
        assert_eq!(all[1].value, "checkout-new-flow");
        let searched = flag_choices(&production, &flags, None, Some("SEARCH"));
        assert_eq!(searched.len(), 1);
        let suspect = flag_choices(&production, &flags, None, Some("suspect"));
        assert_eq!(suspect.len(), 1);
        let killable = PatternList::parse("KILLABLE_FLAGS", "Production:checkout-*", true).unwrap();
        let kept = flag_choices(&production, &flags, Some(&killable), None);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].value, "checkout-new-flow");
    }

    #[test]
    fn environments_are_labelled_with_their_project_and_valued_by_id() {
        let workspace = Workspace {
            account_id: 1,
            environments: vec![
                environment("12", "Staging"),
                environment("11", "Production"),
            ],
        };
        let choices = environment_choices(&workspace, None);
        assert_eq!(
            choices,
            [
                Choice {
                    label: "Web / Production".into(),
                    value: "11".into()
                },
                Choice {
                    label: "Web / Staging".into(),
                    value: "12".into()
                }
            ]
        );
        assert!(!serde_json::to_string(&choices).unwrap().contains("sdk-"));
    }

    #[test]
    fn rules_are_the_chosen_flags_own() {
        let flags = [
            flag("checkout", "Checkout", &["rollout", "ab"]),
            flag("search", "Search", &["other"]),
        ];
        let rules = rule_choices(&flags, "checkout", None);
        let values: Vec<&str> = rules.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(values, ["rollout", "ab"]);
        assert_eq!(rules[0].label, "Checkout rollout (rollout)");
        assert!(rule_choices(&flags, "gone", None).is_empty());
    }
}
