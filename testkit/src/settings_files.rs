//! Settings files for tests, benchmarks and examples: VWO's published shape, at any size, in
//! serde's member order or in VWO's own layout. Sources: `docs/protocols.md` §3b and
//! `tests/fixtures/README.md`.

use serde_json::{json, Value};

/// A settings document with the given features and campaigns .
pub fn document(account_id: u64, features: Vec<Value>, campaigns: Vec<Value>) -> Value {
    json!({"accountId": account_id, "version": 1, "sdkKey": "sdk", "features": features, "campaigns": campaigns})
}

/// A settings file shaped like VWO's published samples: each flag with a rollout rule and a
/// two-variation testing rule (for tests,
/// benchmarks and `examples/settings_file.rs`). `off` names a flag left out (switched off).
pub fn sample(account_id: u64, flags: usize, off: Option<usize>) -> Vec<u8> {
    let mut features = Vec::new();
    let mut campaigns = Vec::new();
    for i in (0..flags).filter(|i| Some(*i) != off) {
        let (rollout, testing) = (i * 2 + 1, i * 2 + 2);
        let key = format!("flag-{i:05}");
        features.push(json!({"id": i + 1, "key": key, "name": key, "status": "ON", "type": "FEATURE_FLAG",
            "metrics": [{"id": 1, "type": "CUSTOM_GOAL", "identifier": "conversion", "mca": -1}],
            "impactCampaign": {},
            "rules": [{"ruleKey": "rolloutRule1", "type": "FLAG_ROLLOUT", "campaignId": rollout, "variationId": 1},
                      {"ruleKey": "testingRule1", "type": "FLAG_TESTING", "campaignId": testing}],
            "variables": [{"id": 1, "key": "copy", "type": "string", "value": "on"}]}));
        for (id, kind, rule) in [
            (rollout, "FLAG_ROLLOUT", "rolloutRule1"),
            (testing, "FLAG_TESTING", "testingRule1"),
        ] {
            campaigns.push(json!({"id": id, "key": format!("{key}_{rule}"), "name": format!("{key}_{rule}"),
                "type": kind, "status": "RUNNING", "percentTraffic": 100, "segments": {},
                "isForcedVariationEnabled": false, "salt": format!("salt-{id}"),
                "variations": [{"id": 1, "name": "Default", "weight": 50, "segments": {},
                                "variables": [{"id": 1, "key": "copy", "type": "string", "value": "a"}]},
                               {"id": 2, "name": "Variation-1", "weight": 50, "segments": {},
                                "variables": [{"id": 1, "key": "copy", "type": "string", "value": "b"}]}]}));
        }
    }
    serde_json::to_vec(&document(account_id, features, campaigns)).unwrap_or_default()
}

/// [`sample`]'s flags and campaigns laid out as VWO's published settings files are
/// (`RolloutForceUsersSettings.json` in `wingify/vwo-fme-sdk-e2e-test-settings-n-cases`):
/// features before campaigns, a feature's `rules` among its first members and its `id` near
/// its end, a rule's `campaignId` last, a campaign's `id` after its status and type. Serde's
/// own output (`sample`) sorts every object's members instead.
pub fn sample_in_vwo_order(account_id: u64, flags: usize, off: Option<usize>) -> Vec<u8> {
    use std::fmt::Write;
    let kept: Vec<usize> = (0..flags).filter(|i| Some(*i) != off).collect();
    let mut out = format!(r#"{{"accountId":{account_id},"sdkKey":"sdk","version":1,"features":["#);
    // A comma before every item but a list's first.
    let separate = |out: &mut String| {
        if !out.ends_with('[') {
            out.push(',');
        }
    };
    for i in &kept {
        let (id, rollout, testing) = (i + 1, i * 2 + 1, i * 2 + 2);
        let key = format!("flag-{i:05}");
        separate(&mut out);
        let _ = write!(
            out,
            concat!(
                r#"{{"status":"ON","name":"{key}","impactCampaign":{{}},"#,
                r#""rules":[{{"ruleKey":"rolloutRule1","type":"FLAG_ROLLOUT","variationId":1,"campaignId":{rollout}}},"#,
                r#"{{"ruleKey":"testingRule1","type":"FLAG_TESTING","campaignId":{testing}}}],"#,
                r#""type":"FEATURE_FLAG","metrics":[{{"identifier":"conversion","mca":-1,"id":1,"type":"CUSTOM_GOAL"}}],"#,
                r#""id":{id},"key":"{key}","variables":[{{"value":"on","type":"string","id":1,"key":"copy"}}]}}"#
            ),
            key = key,
            rollout = rollout,
            testing = testing,
            id = id
        );
    }
    out.push_str(r#"],"campaigns":["#);
    for i in &kept {
        let key = format!("flag-{i:05}");
        for (id, kind, rule) in [
            (i * 2 + 1, "FLAG_ROLLOUT", "rolloutRule1"),
            (i * 2 + 2, "FLAG_TESTING", "testingRule1"),
        ] {
            separate(&mut out);
            let _ = write!(
                out,
                concat!(
                    r#"{{"status":"RUNNING","type":"{kind}","isForcedVariationEnabled":false,"id":{id},"#,
                    r#""key":"{key}_{rule}","name":"{key}_{rule}","percentTraffic":100,"segments":{{}},"salt":"salt-{id}","#,
                    r#""variations":[{{"id":1,"name":"Default","weight":50,"segments":{{}},"#,
                    r#""variables":[{{"value":"a","type":"string","id":1,"key":"copy"}}]}},"#,
                    r#"{{"id":2,"name":"Variation-1","weight":50,"segments":{{}},"#,
                    r#""variables":[{{"value":"b","type":"string","id":1,"key":"copy"}}]}}]}}"#
                ),
                kind = kind,
                id = id,
                key = key,
                rule = rule
            );
        }
    }
    out.push_str("]}");
    out.into_bytes()
}
