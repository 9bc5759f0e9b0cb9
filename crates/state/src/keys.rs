//! The state table's one owner: its key attribute, its expiry attribute, and the key of every
//! kind of item the functions keep there. Every read and write builds its key here; the formats
//! are those of deployed tables and never change (the tests below pin each one).
//!
//! One table (`STATE_TABLE`, `template.yaml`'s `StateTable`), partition key [`PARTITION_KEY`]
//! (a string; its name is historical: most items are not environments), TTL on [`EXPIRES_AT`].
//! Item kinds, by key:
//!
//! | key | written by | what |
//! | --- | --- | --- |
//! | `<environment>` | change tracking | an environment's snapshot head and lease ([`environment`]) |
//! | `snapshot#<environment>#<i>` | change tracking | a chunk of the snapshot ([`snapshot_chunk`]) |
//! | `toggled#…` | kill switch | the kill record change tracking reads ([`kill_record`]) |
//! | `kill#…` | kill switch | a flag's (or rule's) decision order and lease ([`flag_order`]) |
//! | `replay#<hash>` | kill switch | one accepted signed delivery ([`replay`]) |
//! | `restores#kill#…` | kill switch | a flag's automatic restores in 24 h ([`restores`]) |
//! | `options#<list>` | kill switch | VWO's lists, cached ([`options`]) |
//! | `ratelimit#<token parameter>` | both | the token's request slots ([`rate_limit`]) |
//! | `change#…` | change tracking | a flag's latest reported change in an environment, by VWO's environment id, with its earlier ones ([`latest_change`]) |
//! | `issue#<id>` | kill switch | when a Sentry issue began, from its `issue.created` ([`issue_start`]) |
//! | `issues#webhooks` | kill switch | when the last `issue.created` came ([`ISSUE_WEBHOOKS`]) |
//! | `flaglist#<account id>` | kill switch | the workspace's flag list and its refresh ([`workspace_flags`]) |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// The table's partition key attribute (a string).
pub const PARTITION_KEY: &str = "environment";

/// The attribute DynamoDB's TTL reads (Unix seconds).
pub const EXPIRES_AT: &str = "expires_at";

/// Prefix of the rate gate's item.
pub const RATE_LIMIT_PREFIX: &str = "ratelimit#";

/// Prefix of a cached VWO list.
pub const OPTIONS_PREFIX: &str = "options#";

/// The item that says when the last `issue.created` came.
pub const ISSUE_WEBHOOKS: &str = "issues#webhooks";

/// The key map of the item whose partition key is `key`.
pub fn key(key: impl Into<String>) -> HashMap<String, AttributeValue> {
    HashMap::from([(PARTITION_KEY.to_owned(), AttributeValue::S(key.into()))])
}

/// Each part prefixed by its length, joined by `/`: `7:current/10:production/8:checkout`. No
/// part can be mistaken for another, whatever characters it holds.
fn length_prefixed(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("{}:{p}", p.len()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Change tracking's item for one environment (its snapshot head and lease): the environment as
/// change tracking names it.
pub fn environment(environment: &str) -> String {
    environment.to_owned()
}

/// When Sentry's issue `issue_id` (its numeric id) began.
pub fn issue_start(issue_id: &str) -> String {
    format!("issue#{issue_id}")
}

/// The workspace's flag list, by VWO's numeric id of the workspace.
pub fn workspace_flags(account_id: u64) -> String {
    format!("flaglist#{account_id}")
}

/// The `i`-th chunk of an environment's snapshot.
pub fn snapshot_chunk(environment: &str, i: u64) -> String {
    format!("snapshot#{environment}#{i}")
}

/// The kill record for one flag in one environment.
pub fn kill_record(account: &str, environment: &str, feature: &str) -> String {
    format!(
        "toggled#{}",
        length_prefixed(&[account, environment, feature])
    )
}

/// A flag's (or one of its rules') decision order and lease: a rule is ordered on its own, so
/// decisions for one rule never overtake another rule's or the flag's.
pub fn flag_order(account: &str, environment: &str, feature: &str, rule: Option<&str>) -> String {
    let mut parts = vec![account, environment, feature];
    parts.extend(rule);
    format!("kill#{}", length_prefixed(&parts))
}

/// One accepted signed delivery (`hash`: of its signature, never the signature itself).
pub fn replay(hash: &str) -> String {
    format!("replay#{hash}")
}

/// A flag's automatic restores in 24 hours (`flag_order`: the flag's [`flag_order`] key).
pub fn restores(flag_order: &str) -> String {
    format!("restores#{flag_order}")
}

/// A flag's latest reported change in the environment with VWO id `environment_id`.
pub fn latest_change(environment_id: &str, flag: &str) -> String {
    format!("change#{}", length_prefixed(&[environment_id, flag]))
}

/// A cached VWO list (`list`: which list, for which account and environment).
pub fn options(list: &str) -> String {
    format!("{OPTIONS_PREFIX}{list}")
}

/// The rate gate of the token in Parameter Store parameter `token_param`.
pub fn rate_limit(token_param: &str) -> String {
    format!("{RATE_LIMIT_PREFIX}{token_param}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key exactly as deployed tables hold it (written by the code before this module).
    #[test]
    fn every_key_keeps_its_deployed_format() {
        assert_eq!(environment("production"), "production");
        assert_eq!(snapshot_chunk("production", 3), "snapshot#production#3");
        assert_eq!(
            kill_record("current", "production", "checkout"),
            "toggled#7:current/10:production/8:checkout"
        );
        assert_eq!(
            flag_order("7", "production", "checkout", None),
            "kill#1:7/10:production/8:checkout"
        );
        assert_eq!(
            flag_order("current", "production", "checkout", Some("eu-50")),
            "kill#7:current/10:production/8:checkout/5:eu-50"
        );
        assert_eq!(replay("ab12"), "replay#ab12");
        assert_eq!(latest_change("1", "search-v2"), "change#1:1/9:search-v2");
        assert_eq!(issue_start("1170820242"), "issue#1170820242");
        assert_eq!(ISSUE_WEBHOOKS, "issues#webhooks");
        assert_eq!(workspace_flags(654_321), "flaglist#654321");
        assert_eq!(restores("kill#1:7/1:p/1:f"), "restores#kill#1:7/1:p/1:f");
        assert_eq!(options("flags#654321#2"), "options#flags#654321#2");
        assert_eq!(
            rate_limit("/sentry-vwo-bridge/vwo-api-token"),
            "ratelimit#/sentry-vwo-bridge/vwo-api-token"
        );
        assert_eq!(
            key("x"),
            HashMap::from([("environment".to_owned(), AttributeValue::S("x".into()))])
        );
    }

    #[test]
    fn length_prefixes_keep_parts_apart() {
        assert_ne!(
            kill_record("a/1:b", "c", "d"),
            kill_record("a", "1:b/c", "d")
        );
    }
}
