//! What VWO has, for the alert rule's drop-downs and the save check: the workspace's
//! environments (one projects read with the token) and, per environment, its flags and their
//! rules (the environment's SDK settings file: one read, no token, no rate limit).
//!
//! Why the settings file first: VWO's flag list has no search and 25 flags a page, so 10,000
//! flags are 400 requests, 400 s of the token the kill switch needs; it is read in the
//! background instead ([`workspace_list`]) and only adds the flags the file lacks. The settings
//! file holds every flag that can be switched off in the environment, with its rules (`features[]`:
//! `id`, `key`, `name`, `status`, `rules[]` of `{ruleKey, campaignId}`; `campaigns[]`: `id`,
//! `name`; either list may be `{}` when empty — docs/protocols.md §3b). **Assumed**: a flag that
//! is off in the environment may be missing from the file; the save check then asks VWO's API
//! instead of refusing.

use bridge_platform::clock::unix_millis;
use bridge_platform::{Error, Result};
use bridge_vwo::api::{TokenSource, VwoClient};
use bridge_vwo::projects::{self, Environment};
use bridge_vwo::settings_file::{self, SettingsClient};
use serde::{Deserialize, Serialize};

pub mod cache;
pub mod tracked;
pub mod workspace_list;

pub use cache::CatalogCache;
use cache::{ENVIRONMENTS_TTL, FLAGS_TTL};
pub use tracked::Tracked;
pub use workspace_list::WorkspaceList;

/// Reads what VWO has through the shared [`CatalogCache`]: the token only for the workspace's
/// environments (through the client it is given, the rate gate's background priority in the
/// kill switch), the settings file for an environment's flags.
#[derive(Debug)]
pub struct Catalog {
    cache: CatalogCache,
    settings: SettingsClient,
    tracked: Tracked,
    list: WorkspaceList,
}

impl Catalog {
    /// A catalog keeping its lists in `cache`, reading settings files with `settings`, and the
    /// flags they leave out from change tracking's snapshots and the workspace's flag `list` in
    /// the same table.
    pub fn new(cache: CatalogCache, settings: SettingsClient, list: WorkspaceList) -> Self {
        let tracked = cache.tracked();
        Catalog {
            cache,
            settings,
            tracked,
            list,
        }
    }

    /// The workspace's flag list, kept fresh in the background.
    pub fn workspace_list(&self) -> &WorkspaceList {
        &self.list
    }

    /// `account`'s numeric id and environments (one projects read per
    /// [`ENVIRONMENTS_TTL`], and one workspace read when `account` is not numeric).
    pub async fn workspace(
        &self,
        vwo: &VwoClient,
        token: TokenSource<'_>,
        account: &str,
    ) -> Result<Workspace> {
        let key = format!("{account}#environments");
        let cached = self
            .cache
            .get(&key, ENVIRONMENTS_TTL, |_| async {
                let account_id = projects::account_id(vwo, token, account).await?;
                let environments = projects::read_environments(vwo, token, account).await?;
                Ok(Workspace {
                    account_id,
                    environments,
                })
            })
            .await?;
        Ok(cached.value)
    }

    /// The environment `wanted` names (id, name, key or SDK key) in `account`, from the
    /// workspace as last read (however old), without reading VWO: `None` when it was never read
    /// or does not name one. For keying a kill record by the environment's id on the kill's path.
    pub async fn known_environment(&self, account: &str, wanted: &str) -> Option<Environment> {
        let workspace = self.peek_workspace(account).await?;
        projects::find(&workspace.environments, wanted)
            .ok()
            .cloned()
    }

    /// `account`'s workspace as last read (however old), without reading VWO: `None` when it
    /// was never read (or the cache cannot be read: logged).
    pub async fn peek_workspace(&self, account: &str) -> Option<Workspace> {
        let key = format!("{account}#environments");
        match self.cache.peek::<Workspace>(&key).await {
            Ok(workspace) => workspace,
            Err(e) => {
                tracing::info!(error = %e, "the shared environments could not be read");
                None
            }
        }
    }

    /// The environment `wanted` names (id, name or SDK key) and its flags (one settings-file
    /// read per [`FLAGS_TTL`]), with the workspace's flags the file lacks, marked off (its kept
    /// list: [`WorkspaceList`]). An environment VWO does not have is a 400 naming it.
    pub async fn flags(
        &self,
        vwo: &VwoClient,
        token: TokenSource<'_>,
        account: &str,
        wanted: &str,
    ) -> Result<(Environment, Vec<Flag>)> {
        let workspace = self.workspace(vwo, token, account).await?;
        let environment = projects::find(&workspace.environments, wanted)?.clone();
        let sdk_key = environment.sdk_key.clone().ok_or_else(|| Error::Upstream {
            service: "VWO",
            status: Some(200),
            message: format!("VWO's environment {} has no SDK key", environment.label()),
        })?;
        let key = format!("{account}#flags#{}", environment.id);
        let flags = self
            .cache
            .get(&key, FLAGS_TTL, |previous: Option<Vec<Flag>>| async {
                let bytes = self.settings.fetch(&sdk_key, workspace.account_id).await?;
                let mut now = flags_in_settings(&bytes, workspace.account_id)?;
                let never_on = self.tracked.off_flags(&environment, &now, unix_millis());
                now.extend(never_on.await);
                Ok(keep_off(previous.unwrap_or_default(), now, unix_millis()))
            })
            .await?
            .value;
        let mut flags = flags;
        let listed = self
            .list
            .off_flags(workspace.account_id, &flags, unix_millis());
        let listed = listed.await;
        if !listed.is_empty() {
            flags.extend(listed);
            flags.sort_by_cached_key(|f| (f.name.to_lowercase(), f.key.clone()));
        }
        Ok((environment, flags))
    }
}

/// The workspace as the drop-downs need it (cached for [`crate::rule_form::catalog::cache`]'s TTL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// VWO's numeric id of the workspace (the settings file's `a`).
    pub account_id: u64,
    /// Every environment of every project.
    pub environments: Vec<Environment>,
}

/// A flag in an environment's settings file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// VWO's id of the flag.
    pub id: String,
    /// Its key (what the kill switch is given).
    pub key: String,
    /// Its name (the key when the file has none).
    pub name: String,
    /// Its rules in the environment, in VWO's order.
    pub rules: Vec<Rule>,
    /// Since when the settings file has left the flag out (Unix milliseconds): VWO leaves a
    /// flag that is off out of the file, so a flag switched off (by a person or a kill) is kept
    /// on the list, marked off, for [`KEEP_OFF`]. `None`: in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_since_ms: Option<u64>,
}

/// How long a flag that left the environment's settings file stays on its list, marked off.
pub const KEEP_OFF: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// `now`'s flags, and those of `previous` that left the file (switched off), marked off since
/// they left, for [`KEEP_OFF`]; sorted by name as the file's are.
pub fn keep_off(previous: Vec<Flag>, mut now: Vec<Flag>, now_ms: u64) -> Vec<Flag> {
    let keep = KEEP_OFF.as_millis() as u64;
    let left: Vec<Flag> = previous
        .into_iter()
        .filter(|f| !now.iter().any(|n| n.id == f.id))
        .map(|f| Flag {
            off_since_ms: Some(f.off_since_ms.unwrap_or(now_ms)),
            ..f
        })
        .filter(|f| {
            f.off_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) < keep)
        })
        .collect();
    now.extend(left);
    now.sort_by_cached_key(|f| (f.name.to_lowercase(), f.key.clone()));
    now
}

impl Flag {
    /// A flag known off in the environment since `now_ms` (absent from its settings file), named
    /// by its key: from change tracking's snapshot or the workspace's list.
    pub fn off(id: &str, key: &str, now_ms: u64) -> Self {
        Flag {
            id: id.to_owned(),
            key: key.to_owned(),
            name: key.to_owned(),
            rules: Vec::new(),
            off_since_ms: Some(now_ms),
        }
    }

    /// "Name (key)", or the key alone when the name is the key.
    pub fn label(&self) -> String {
        labelled(&self.name, &self.key)
    }

    /// Whether `wanted` names this flag (its key or its id).
    pub fn is(&self, wanted: &str) -> bool {
        self.key == wanted || self.id == wanted
    }
}

/// A rule of a flag in an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule's key (what the kill switch is given).
    pub key: String,
    /// Its campaign's name (the key when there is none).
    pub name: String,
}

impl Rule {
    /// "Name (key)", or the key alone when the name is the key.
    pub fn label(&self) -> String {
        labelled(&self.name, &self.key)
    }
}

fn labelled(name: &str, key: &str) -> String {
    if name == key || name.is_empty() {
        key.to_owned()
    } else {
        format!("{name} ({key})")
    }
}

/// The flags (with their rules) of an environment's settings file for `account_id`, sorted by
/// name, read by the one settings-file reader; a body that is not one is an upstream error.
pub fn flags_in_settings(bytes: &[u8], account_id: u64) -> Result<Vec<Flag>> {
    let settings = settings_file::parse(bytes, account_id)?;
    let mut flags: Vec<Flag> = settings
        .listing()
        .into_iter()
        .map(|f| Flag {
            off_since_ms: None,
            name: f.name.unwrap_or_else(|| f.key.clone()),
            id: f.id,
            key: f.key,
            rules: f
                .rules
                .into_iter()
                .map(|r| Rule {
                    name: r.campaign_name.unwrap_or_else(|| r.key.clone()),
                    key: r.key,
                })
                .collect(),
        })
        .collect();
    flags.sort_by_cached_key(|f| (f.name.to_lowercase(), f.key.clone()));
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shaped as VWO's `OnlyRolloutSettings.json` (wingify/vwo-fme-sdk-e2e-test-settings-n-cases).
    fn settings() -> Vec<u8> {
        json!({
            "accountId": 654321, "sdkKey": "sdk", "version": 3,
            "features": [
                {"id": 2, "key": "search-v2", "name": "Search v2", "status": "ON",
                 "type": "FEATURE_FLAG", "metrics": [], "variables": [],
                 "rules": [{"ruleKey": "rollout", "type": "FLAG_ROLLOUT", "campaignId": 9,
                            "variationId": 1}]},
                {"id": "1", "key": "checkout-new-flow", "name": "Checkout v2", "status": "ON",
                 "rules": [{"ruleKey": "rollout1", "type": "FLAG_ROLLOUT", "campaignId": 7},
                           {"ruleKey": "ab", "type": "FLAG_TESTING", "campaignId": 8}]}
            ],
            "campaigns": [
                {"id": 7, "key": "checkout-new-flow_rollout1", "name": "Checkout rollout",
                 "variations": [{"id": 1, "name": "Rollout", "weight": 100}]},
                {"id": 8, "key": "checkout-new-flow_ab", "status": "RUNNING"}
            ]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn flags_come_with_names_and_their_rules_sorted_by_name() {
        let flags = flags_in_settings(&settings(), 654321).unwrap();
        let labels: Vec<String> = flags.iter().map(Flag::label).collect();
        assert_eq!(
            labels,
            ["Checkout v2 (checkout-new-flow)", "Search v2 (search-v2)"]
        );
        let rules: Vec<String> = flags[0].rules.iter().map(Rule::label).collect();
        assert_eq!(rules, ["Checkout rollout (rollout1)", "ab"]);
        assert!(flags[0].is("1") && flags[0].is("checkout-new-flow") && !flags[0].is("x"));
    }

    #[test]
    fn empty_lists_come_as_objects_and_other_workspaces_are_refused() {
        let empty = br#"{"accountId": "654321", "version": 1, "features": {}, "campaigns": {}}"#;
        assert_eq!(flags_in_settings(empty, 654321).unwrap(), []);
        assert_eq!(flags_in_settings(&settings(), 1).unwrap_err().status(), 502);
        assert_eq!(
            flags_in_settings(b"<html>", 654321).unwrap_err().status(),
            502
        );
    }

    #[test]
    fn a_flag_that_left_the_file_is_kept_marked_off_for_thirty_days() {
        let before = flags_in_settings(&settings(), 654321).unwrap();
        let now: Vec<Flag> = before
            .iter()
            .filter(|f| f.key != "search-v2")
            .cloned()
            .collect();
        let at = 1_796_500_000_000;
        let kept = keep_off(before.clone(), now.clone(), at);
        assert_eq!(kept.len(), 2);
        let search = kept.iter().find(|f| f.key == "search-v2").unwrap();
        assert_eq!(search.off_since_ms, Some(at));
        // Still off a day later: kept, since when it left.
        let later = keep_off(kept.clone(), now.clone(), at + 86_400_000);
        assert_eq!(
            later
                .iter()
                .find(|f| f.key == "search-v2")
                .unwrap()
                .off_since_ms,
            Some(at)
        );
        // Thirty days on: dropped (deleted in VWO, or off for good).
        let gone = keep_off(later, now.clone(), at + KEEP_OFF.as_millis() as u64);
        assert!(gone.iter().all(|f| f.key != "search-v2"));
        // Back on: in the file again, not marked.
        let back = keep_off(kept, before, at + 1);
        assert!(back.iter().all(|f| f.off_since_ms.is_none()));
    }
}
