//! Least privilege for a token that can switch every flag: which flags the kill switch may
//! switch (`KILLABLE_FLAGS`), and where it may turn one **on** (`ENABLE_ALLOWED_IN`).
//!
//! Patterns are `environment:flag` with `*` and `?` wildcards (`production:checkout-*`,
//! `staging:*`), matched against VWO's names: the environment's name and the flag's key. An
//! alert may name the environment by id, name or SDK key and the flag by key or id, so ids and
//! SDK keys are resolved first — environments from `GET /accounts/{a}/projects` (kept for
//! [`NAMES_TTL`]; read through the drop-downs' shared cache when there is one, so that a burst
//! of cold starts costs the token one read, not one per container), a numeric flag from
//! `GET /accounts/{a}/features/{id}`. When that cannot be
//! done (VWO unreachable, unknown environment), the answer is a refusal: a flag the list does not
//! clearly allow is never switched.

use std::time::Duration;

use bridge_platform::{Error, Result};
use bridge_vwo::api::{FlagTarget, TokenSource, VwoClient};
use bridge_vwo::projects::{self, Environment};
use tokio::sync::Mutex;

use crate::rule_form::catalog::Catalog;
use tokio::time::Instant;
use wildmatch::WildMatch;

/// How long the workspace's environments are kept.
pub const NAMES_TTL: Duration = Duration::from_secs(600);

/// One `environment:flag` pattern.
#[derive(Clone, Debug)]
struct Pattern {
    environment: WildMatch,
    flag: WildMatch,
}

/// A list of patterns as configured, with its text for messages.
#[derive(Clone, Debug)]
pub struct PatternList {
    text: String,
    patterns: Vec<Pattern>,
}

impl PatternList {
    /// Parses `production:checkout-*,staging:*`; with `flag_part` false the entries are
    /// environment patterns only (`production,staging`). The error names the bad entry.
    pub fn parse(name: &str, raw: &str, flag_part: bool) -> Result<PatternList> {
        let mut patterns = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (environment, flag) = match (flag_part, entry.split_once(':')) {
                (true, Some((e, f))) if !e.trim().is_empty() && !f.trim().is_empty() => {
                    (e.trim(), f.trim())
                }
                (false, None) => (entry, "*"),
                _ => {
                    let shape = if flag_part {
                        "environment:flag"
                    } else {
                        "environment"
                    };
                    return Err(Error::Config(format!(
                        "{name}: {entry:?} is not {shape} (wildcards * and ? allowed)"
                    )));
                }
            };
            patterns.push(Pattern {
                environment: WildMatch::new_case_insensitive(environment),
                flag: WildMatch::new(flag),
            });
        }
        Ok(PatternList {
            text: raw.trim().to_owned(),
            patterns,
        })
    }

    /// Whether any pattern matches the environment — by any identifier a person writes for it
    /// (its id, name or key, regardless of case: `production` matches VWO's "Production") — and
    /// the flag's key.
    pub fn matches(&self, environment: &Environment, flag: &str) -> bool {
        let key = environment.key();
        let identifiers = [environment.id.as_str(), environment.name.as_str(), &key];
        self.patterns
            .iter()
            .any(|p| p.flag.matches(flag) && identifiers.iter().any(|id| p.environment.matches(id)))
    }

    /// The list as configured.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The guard rails of one function.
#[derive(Debug)]
pub struct GuardRails {
    /// `KILLABLE_FLAGS`; `None`: any flag (a warning at start).
    pub killable: Option<PatternList>,
    /// `ENABLE_ALLOWED_IN`: environments where a flag may be turned on (none by default).
    pub enable_allowed_in: PatternList,
    environments: Mutex<Option<(Instant, Vec<Environment>)>>,
}

/// A flag as VWO names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The environment.
    pub environment: Environment,
    /// The flag's key.
    pub flag: String,
}

impl GuardRails {
    /// Guard rails from the configured lists.
    pub fn new(killable: Option<PatternList>, enable_allowed_in: PatternList) -> GuardRails {
        GuardRails {
            killable,
            enable_allowed_in,
            environments: Mutex::new(None),
        }
    }

    /// Cold-start work when a list is configured: keeps the workspace's environments as the
    /// shared cache last had them, whatever their age (a cold start happens while Sentry waits
    /// for the first alert's answer: no VWO read when any list is kept); only a deployment whose
    /// cache never held them reads them from VWO here, so that the first alert does not. A
    /// failure is logged; the first alert that needs them reads them again.
    pub async fn warm_up(&self, lookup: Lookup<'_>, account: &str) {
        if self.killable.is_none() && self.enable_allowed_in.text().is_empty() {
            return;
        }
        if let Some(catalog) = lookup.catalog {
            if let Some(workspace) = catalog.peek_workspace(account).await {
                *self.environments.lock().await = Some((Instant::now(), workspace.environments));
                return;
            }
        }
        if let Err(e) = self.environments(lookup, account).await {
            tracing::warn!(error = %e, "could not read VWO's environments for the guard rails at cold start");
        }
    }

    /// Whether the rails need VWO's names for a toggle to `enabled`.
    fn needs_names(&self, enabled: bool) -> bool {
        self.killable.is_some() || enabled
    }

    /// `Ok(None)` when switching `target` to `enabled` is allowed, else the reason it is not. A
    /// failure to resolve the names is a refusal too, with that reason.
    pub async fn refusal(
        &self,
        lookup: Lookup<'_>,
        target: &FlagTarget,
        enabled: bool,
    ) -> Option<String> {
        if !self.needs_names(enabled) {
            return None;
        }
        let names = match self.names(lookup, target).await {
            Ok(names) => names,
            Err(e) => {
                return Some(format!(
                    "{} in {} cannot be checked against the guard rails ({e}); not switched",
                    target.feature, target.environment
                ))
            }
        };
        self.judge(&names, enabled)
    }

    /// The verdict for resolved names (pure: unit-tested).
    pub fn judge(&self, names: &Names, enabled: bool) -> Option<String> {
        if let Some(killable) = &self.killable {
            if !killable.matches(&names.environment, &names.flag) {
                return Some(format!(
                    "flag {} in {} is not in KILLABLE_FLAGS ({}); not switched",
                    names.flag,
                    names.environment.name,
                    killable.text()
                ));
            }
        }
        if enabled
            && !self
                .enable_allowed_in
                .matches(&names.environment, &names.flag)
        {
            let listed = match self.enable_allowed_in.text() {
                "" => "none".to_owned(),
                text => text.to_owned(),
            };
            return Some(format!(
                "turning flag {} on in {} is not allowed: ENABLE_ALLOWED_IN lists {listed}; a person must turn it on",
                names.flag, names.environment.name
            ));
        }
        None
    }

    /// VWO's names of `target`'s environment and flag.
    pub async fn names(&self, lookup: Lookup<'_>, target: &FlagTarget) -> Result<Names> {
        let environments = self.environments(lookup, &target.account).await?;
        let environment = projects::find(&environments, &target.environment)?.clone();
        let flag = if target.feature.bytes().all(|b| b.is_ascii_digit()) && !lookup.cached_only {
            let reply = lookup
                .vwo
                .get(
                    lookup.token,
                    &["accounts", &target.account, "features", &target.feature],
                    &[],
                )
                .await?;
            reply.body["_data"]["featureKey"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::Upstream {
                    service: "VWO",
                    status: Some(reply.status),
                    message: format!("flag {} has no featureKey", target.feature),
                })?
        } else {
            target.feature.clone()
        };
        Ok(Names { environment, flag })
    }

    /// The environment of `account` that `wanted` names (id, name, key or SDK key; see
    /// `projects::find`), from the environments kept for [`NAMES_TTL`].
    pub async fn environment(
        &self,
        lookup: Lookup<'_>,
        account: &str,
        wanted: &str,
    ) -> Result<Environment> {
        let environments = self.environments(lookup, account).await?;
        Ok(projects::find(&environments, wanted)?.clone())
    }

    /// The environment `wanted` names in `account` when it is known without reading VWO (for the
    /// kill record's key, on the kill's path): from the environments kept here, else from the
    /// workspace `catalog` last read (the state table).
    pub async fn known_environment(
        &self,
        catalog: Option<&Catalog>,
        account: &str,
        wanted: &str,
    ) -> Option<Environment> {
        let kept = {
            let cached = self.environments.lock().await;
            let list = cached.as_ref().map(|(_, list)| list);
            list.and_then(|list| projects::find(list, wanted).ok().cloned())
        };
        if kept.is_some() {
            return kept;
        }
        catalog?.known_environment(account, wanted).await
    }

    /// The workspace's environments (kept for [`NAMES_TTL`]): from the shared cache when there
    /// is one, else (or when it cannot answer) one projects read.
    async fn environments(&self, lookup: Lookup<'_>, account: &str) -> Result<Vec<Environment>> {
        let mut cached = self.environments.lock().await;
        if let Some((at, list)) = cached.as_ref() {
            if at.elapsed() < NAMES_TTL || lookup.cached_only {
                return Ok(list.clone());
            }
        }
        if lookup.cached_only {
            let kept = match lookup.catalog {
                Some(catalog) => catalog.peek_workspace(account).await,
                None => None,
            };
            let list = kept.map(|w| w.environments).ok_or_else(|| {
                Error::Busy("VWO's environments are not known yet without reading VWO".into())
            })?;
            *cached = Some((Instant::now(), list.clone()));
            return Ok(list);
        }
        let shared = match lookup.catalog {
            Some(catalog) => match catalog.workspace(lookup.vwo, lookup.token, account).await {
                Ok(workspace) => Some(workspace.environments),
                Err(e) => {
                    tracing::info!(error = %e, "the shared environments could not be read; reading VWO's projects");
                    None
                }
            },
            None => None,
        };
        let list = match shared {
            Some(list) => list,
            None => projects::read_environments(lookup.vwo, lookup.token, account).await?,
        };
        *cached = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

/// Where the guard rails look VWO's names up: the client (and token) a kill uses, and the
/// drop-downs' shared cache when the function has one.
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    /// The VWO client (the kill's priority at the rate gate).
    pub vwo: &'a VwoClient,
    /// The token.
    pub token: TokenSource<'a>,
    /// The shared cache of VWO's lists, with `STATE_TABLE`.
    pub catalog: Option<&'a Catalog>,
    /// Only what is known without reading VWO (kept here or in the shared cache, whatever its
    /// age): before Sentry is answered, for a decision that can wait on the queue.
    pub cached_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(environment: &str, flag: &str) -> Names {
        Names {
            environment: Environment {
                id: "17".into(),
                name: environment.into(),
                project: "Shop".into(),
                sdk_key: Some("sdk-key".into()),
            },
            flag: flag.into(),
        }
    }

    fn rails(killable: Option<&str>, enable: &str) -> GuardRails {
        GuardRails::new(
            killable.map(|k| PatternList::parse("KILLABLE_FLAGS", k, true).unwrap()),
            PatternList::parse("ENABLE_ALLOWED_IN", enable, false).unwrap(),
        )
    }

    #[test]
    fn only_listed_flags_may_be_switched() {
        let r = rails(Some("production:checkout-*, staging:*"), "");
        assert_eq!(
            r.judge(&names("production", "checkout-new-flow"), false),
            None
        );
        assert_eq!(r.judge(&names("staging", "anything"), false), None);
        let refused = r.judge(&names("production", "search-v2"), false).unwrap();
        assert_eq!(
            refused,
            "flag search-v2 in production is not in KILLABLE_FLAGS (production:checkout-*, staging:*); not switched"
        );
        assert!(r
            .judge(&names("productionx", "checkout-a"), false)
            .is_some());
    }

    #[test]
    fn turning_on_needs_the_environment_listed_and_nothing_is_listed_by_default() {
        let none = rails(None, "");
        assert_eq!(none.judge(&names("production", "f"), false), None);
        let refused = none.judge(&names("production", "f"), true).unwrap();
        assert!(
            refused.contains("ENABLE_ALLOWED_IN lists none"),
            "{refused}"
        );
        let staging = rails(None, "staging,dev-*");
        assert_eq!(staging.judge(&names("staging", "f"), true), None);
        assert_eq!(staging.judge(&names("dev-eu", "f"), true), None);
        assert!(staging.judge(&names("production", "f"), true).is_some());
    }

    #[test]
    fn malformed_lists_are_refused_at_start() {
        for bad in ["production", "production:", ":flag"] {
            let error = PatternList::parse("KILLABLE_FLAGS", bad, true).unwrap_err();
            assert!(error.to_string().contains("KILLABLE_FLAGS"), "{error}");
        }
        assert!(PatternList::parse("ENABLE_ALLOWED_IN", "production:x", false).is_err());
        assert!(PatternList::parse("ENABLE_ALLOWED_IN", "", false).is_ok());
    }

    /// VWO names its environments as its UI shows them ("Production"); the README's examples and
    /// the URL a user writes say `production`. Each identifier matches, regardless of case.
    #[test]
    fn an_environment_pattern_matches_its_id_key_or_name_in_any_case() {
        let r = rails(Some("production:checkout-*"), "staging,17");
        let production = names("Production", "checkout-new-flow");
        assert_eq!(r.judge(&production, false), None);
        for pattern in ["Production", "PRODUCTION", "17", "prod*"] {
            let listed = rails(Some(&format!("{pattern}:checkout-*")), "");
            assert_eq!(listed.judge(&production, false), None, "{pattern}");
        }
        let refused = r.judge(&names("Production", "search-v2"), false).unwrap();
        assert!(refused.contains("search-v2 in Production"), "{refused}");
        // A flag pattern matches the key as VWO spells it.
        assert!(r
            .judge(&names("Production", "Checkout-new-flow"), false)
            .is_some());
        // By id ("17") in ENABLE_ALLOWED_IN; "Staging EU" by its key.
        assert_eq!(r.judge(&names("Production", "checkout-x"), true), None);
        let eu = rails(None, "staging-eu");
        assert_eq!(eu.judge(&names("Staging EU", "f"), true), None);
    }
}
