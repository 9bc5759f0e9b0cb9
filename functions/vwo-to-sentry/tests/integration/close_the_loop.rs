//! Both functions together: the kill switch turns a flag off for a Sentry alert, VWO's webhook
//! tells change tracking, and Sentry's audit log gets the change attributed to the alert rule.
//! Change tracking is the real binary under a Runtime API stand-in; the kill switch is its
//! handler, called in this process (its own binary is tested end to end in its crate, and a
//! test binary can run only its own package's binaries). Both share one state table in moto;
//! VWO and Sentry are the loopback stand-ins (the Sentry one verifies signature and schema).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bridge_platform::secrets::SsmParameters;
use lambda_http::Body;
use serde_json::{json, Value};
use testkit::answers::suspect_change;
use testkit::process::{artifact, FunctionProcess};
use testkit::runtime_api::RuntimeApi;

use crate::{moto, response};
use testkit::sentry::FakeSentry;
use testkit::vwo::{FakeRule, FakeVwo};
use testkit::{sample, sentry_hook_event, vwo_hook_event};

const WAIT: Duration = Duration::from_secs(30);
const FLAG: &str = "checkout-new-flow";

struct Loop {
    vwo: FakeVwo,
    sentry: FakeSentry,
    kill: sentry_to_vwo::App,
    tracking_api: RuntimeApi,
    /// Kept so the change-tracking process lives as long as the test.
    _tracking: FunctionProcess,
    table: String,
    webhook_time: i64,
}

impl Loop {
    async fn start(name: &str) -> Loop {
        Loop::start_with(name, &[]).await
    }

    /// As [`Loop::start`], with flags `never_on` in the workspace, off everywhere, before change
    /// tracking's baseline.
    async fn start_with(name: &str, never_on: &[&str]) -> Loop {
        let moto = moto();
        let prefix = format!("/e2e/loop-{name}");
        let secrets = [
            ("sentry-client-secret", "loop-client-secret"),
            ("vwo-api-token", "loop-token"),
            ("vwo-webhook-secret", "loop-webhook-secret"),
            ("sentry-signing-secret", "loop-signing-secret"),
        ];
        let secret_vars = moto.put_secrets(&prefix, &secrets).await;
        let table = format!("loop-{name}");
        moto.create_table(&table).await;
        let vwo = FakeVwo::start("loop-token").await;
        vwo.add_flag(FLAG, true);
        for flag in never_on {
            vwo.add_flag(flag, false);
        }
        let sentry = FakeSentry::start("loop-signing-secret").await;
        // What both functions read: AWS at moto, their secrets, the table, VWO's API.
        let mut common = moto.aws_env();
        common.extend(secret_vars);
        common.extend(vwo.env());
        common.extend(
            [
                ("STATE_TABLE", table.clone()),
                // The issue's start comes from its issue.created; the alert's event is the
                // evidence (the issue's events are read with a token: suspect_evidence tests).
                ("SUSPECT_EVIDENCE", "event".into()),
                // No pacing between VWO calls: the stand-in has no rate limit to respect.
                ("VWO_MIN_INTERVAL_MS", "0".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let vars: HashMap<String, String> = common.iter().cloned().collect();
        let config =
            sentry_to_vwo::config::Config::from_vars(&move |n: &str| vars.get(n).cloned()).unwrap();
        // This process's AWS environment points at the same moto (`moto()` exported it).
        let sdk = bridge_platform::aws::aws_config().await;
        let kill =
            sentry_to_vwo::App::new(config, Arc::new(SsmParameters::new(&sdk)), &sdk).unwrap();
        kill.warm_up().await;

        let tracking_api = RuntimeApi::start().await;
        let mut env = tracking_api.lambda_env("vwo-to-sentry");
        env.extend(common);
        env.extend([("SENTRY_WEBHOOK_URL".to_owned(), sentry.hook_url())]);
        let tracking = FunctionProcess::spawn(
            &artifact("vwo-to-sentry", env!("CARGO_BIN_EXE_vwo-to-sentry")),
            &env,
        );
        let mut l = Loop {
            vwo,
            sentry,
            kill,
            tracking_api,
            _tracking: tracking,
            table,
            webhook_time: 1_795_416_000,
        };
        // The first delivery per environment records the baseline; nothing is sent.
        for environment in ["production", "staging"] {
            let (status, body) = l.webhook(environment).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["baseline"]["flags"], 1 + never_on.len(), "{body}");
        }
        l
    }

    /// A signed metric alert for `rule` (id `rule_id`) asking to turn the flag off in
    /// `environment`; answers the kill switch's status.
    async fn alert(&self, rule: &str, rule_id: u64, environment: &str) -> u16 {
        let mut body: Value =
            serde_json::from_slice(&sample("sentry/metric_alert.critical.json")).unwrap();
        body["data"]["metric_alert"]["alert_rule"]["name"] = json!(rule);
        body["data"]["metric_alert"]["alert_rule"]["id"] = json!(rule_id);
        // The rule's own action settings name the flag and environment (they win over the URL).
        body["data"]["metric_alert"]["alert_rule"]["triggers"][0]["actions"][0]["settings"] = json!([{"name": "feature", "value": FLAG}, {"name": "environment", "value": environment}]);
        let query = format!("feature={FLAG}&environment={environment}");
        let (status, answer) = self.kill_switch("metric_alert", &body, &query).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["toggled"]["environment"], environment, "{answer}");
        status
    }

    /// VWO's webhook for `environment` (each a minute after the last); change tracking's answer.
    async fn webhook(&mut self, environment: &str) -> (u16, Value) {
        self.webhook_time += 60;
        let mut event = vwo_hook_event(
            "loop-webhook-secret",
            "feature_flag_updated",
            self.webhook_time,
        );
        event["rawQueryString"] = json!(format!("environment={environment}"));
        event["queryStringParameters"] = json!({ "environment": environment });
        let answer = response(self.tracking_api.invoke(event, WAIT).await);
        assert!(
            self.sentry.rejections().is_empty(),
            "{:?}",
            self.sentry.rejections()
        );
        answer
    }

    /// Alert → kill switch (the rule naming production as `environment`) → VWO: off; then
    /// VWO's webhook for production → change tracking → Sentry: the change is the rule's.
    async fn kill_is_the_rules(&mut self, environment: &str) {
        self.kill_is_the_rules_seen_by(environment, "production")
            .await
    }

    /// As [`Loop::kill_is_the_rules`], with change tracking's webhook URL naming the
    /// environment as `webhook`.
    async fn kill_is_the_rules_seen_by(&mut self, environment: &str, webhook: &str) {
        self.alert("Checkout errors > 50/5m", 31, environment).await;
        self.vwo.assert_off(FLAG, "production");
        let (status, body) = self.webhook(webhook).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            self.last_actor(),
            json!({"type": "name", "id": "kill switch: Checkout errors > 50/5m"})
        );
    }

    /// The actor of the last change Sentry accepted, after checking it is an `updated` of the
    /// flag.
    fn last_actor(&self) -> Value {
        let changes = self.sentry.accepted_changes();
        let last = changes.last().expect("Sentry got a change").clone();
        assert_eq!(last["flag"], FLAG);
        assert_eq!(last["action"], "updated");
        last["created_by"].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sentry_is_told_which_alert_rule_turned_a_flag_off_and_only_that_change() {
    let mut l = Loop::start("attribution").await;
    l.kill_is_the_rules("production").await;

    // Someone turns it back on in VWO's UI right after: attributed as before, to VWO.
    l.vwo.set_enabled(FLAG, "production", true);
    l.webhook("production").await;
    assert_eq!(l.sentry.accepted_changes().len(), 2);
    assert_eq!(l.last_actor(), json!({"type": "name", "id": "vwo"}));

    // ... and off again by hand: the kill's record was consumed by the first change.
    l.vwo.set_enabled(FLAG, "production", false);
    l.webhook("production").await;
    assert_eq!(l.sentry.accepted_changes().len(), 3);
    assert_eq!(l.last_actor(), json!({"type": "name", "id": "vwo"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_in_another_environment_or_an_expired_one_explains_nothing() {
    let mut l = Loop::start("scope").await;

    // The kill switch turns the flag off in staging; a person turns it off in production.
    l.alert("Staging errors", 32, "staging").await;
    l.vwo.assert_off(FLAG, "staging");
    l.vwo.set_enabled(FLAG, "production", false);
    l.webhook("production").await;
    assert_eq!(l.last_actor(), json!({"type": "name", "id": "vwo"}));
    // Staging's own change is the rule's.
    l.webhook("staging").await;
    assert_eq!(
        l.last_actor(),
        json!({"type": "name", "id": "kill switch: Staging errors"})
    );

    // A kill whose record has expired (as if the webhook came more than the window later).
    l.vwo.set_enabled(FLAG, "production", true);
    l.webhook("production").await;
    l.alert("Checkout errors > 50/5m", 31, "production").await;
    let key = format!("toggled#1:1/10:production/{}:{FLAG}", FLAG.len());
    let account = l.kill_account();
    let key = key.replacen("1:1", &format!("{}:{account}", account.len()), 1);
    testkit::moto::shared()
        .call(
            "DynamoDB_20120810.UpdateItem",
            json!({
                "TableName": l.table,
                "Key": {"environment": {"S": key}},
                "UpdateExpression": "SET expires_at = :past",
                "ConditionExpression": "attribute_exists(environment)",
                "ExpressionAttributeValues": {":past": {"N": "1000"}},
            }),
        )
        .await;
    l.webhook("production").await;
    assert_eq!(l.sentry.accepted_changes().len(), 4);
    assert_eq!(l.last_actor(), json!({"type": "name", "id": "vwo"}));
}

impl Loop {
    /// The VWO account the kill switch called (as in its toggle URL).
    fn kill_account(&self) -> String {
        let toggles = self.vwo.toggles();
        let path = &toggles.last().expect("a toggle").raw_path;
        path.split('/')
            .skip_while(|p| *p != "accounts")
            .nth(1)
            .expect("an account in the toggle path")
            .to_owned()
    }
}

impl Loop {
    /// A signed issue alert of rule `rule` whose action asks for the suspect in `environment`,
    /// for an event at `event_at` carrying `flags`; the kill switch's status and answer.
    async fn suspect_alert(
        &self,
        rule: &str,
        environment: &str,
        event_at: i64,
        flags: &[(&str, bool)],
    ) -> (u16, Value) {
        let mut body: Value =
            serde_json::from_slice(&sample("sentry/event_alert.triggered.json")).unwrap();
        body["data"]["triggered_rule"] = json!(rule);
        body["data"]["issue_alert"]["title"] = json!(rule);
        body["data"]["issue_alert"]["settings"] = json!([
            {"name": "feature", "value": "@suspect"}, {"name": "environment", "value": environment}]);
        let datetime = time::OffsetDateTime::from_unix_timestamp(event_at)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        body["data"]["event"]["datetime"] = json!(datetime);
        let values: Vec<Value> = flags
            .iter()
            .map(|(flag, result)| json!({"flag": flag, "result": result}))
            .collect();
        body["data"]["event"]["contexts"] = json!({"flags": {"values": values}});
        // Sentry's issue.created for the issue, which began with this event.
        let mut created: Value =
            serde_json::from_slice(&sample("sentry/issue.created.json")).unwrap();
        created["data"]["issue"]["firstSeen"] = json!(datetime);
        let (status, noted) = self.kill_switch("issue", &created, "").await;
        assert_eq!(status, 200, "{noted}");
        self.kill_switch("event_alert", &body, "").await
    }

    /// VWO's webhook after the kill: change tracking reports it as the kill switch's, acting on
    /// the suspect of alert rule `rule`.
    async fn kill_is_the_rules_suspect(&mut self, rule: &str) {
        let (status, body) = self.webhook("production").await;
        assert_eq!(status, 200, "{body}");
        let actor = format!("kill switch (suspect of \"{rule}\")");
        assert_eq!(self.last_actor(), json!({"type": "name", "id": actor}));
    }

    /// `body`, signed as Sentry signs a `resource` webhook to the function URL with `query`,
    /// handled by the kill switch: its status and answer.
    async fn kill_switch(&self, resource: &str, body: &Value, query: &str) -> (u16, Value) {
        let body = serde_json::to_vec(body).unwrap();
        let event = sentry_hook_event("loop-client-secret", resource, &body, query);
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let answer = sentry_to_vwo::handle(&self.kill, request).await;
        let status = answer.status().as_u16();
        let answer: Value = match answer.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("a JSON answer, not {other:?}"),
        };
        (status, answer)
    }
}

/// The loop closed: change tracking keeps a person's change from VWO's webhook; an issue alert
/// whose rule names no flag (`@suspect`) switches exactly that flag off; and Sentry's change log
/// says the kill switch switched it as the rule's suspect.
#[tokio::test(flavor = "multi_thread")]
async fn the_flag_a_person_switched_on_before_the_issue_is_killed_as_its_suspect() {
    let mut l = Loop::start("suspect").await;
    // A person switches the flag off, then on again: the latest change is "switched on".
    l.vwo.set_enabled(FLAG, "production", false);
    l.webhook("production").await;
    l.vwo.set_enabled(FLAG, "production", true);
    let (status, body) = l.webhook("production").await;
    assert_eq!(status, 200, "{body}");
    let switched_on_at = l.webhook_time;
    // Staging changes too, later: never a suspect of production's issue.
    l.vwo.set_enabled(FLAG, "staging", false);
    l.webhook("staging").await;

    // The issue's event, four minutes later, carries the flag (evaluation tracking).
    let event_at = switched_on_at + 240;
    let rule = "Search errors > 20/5m";
    let (status, answer) = l
        .suspect_alert(
            rule,
            "production",
            event_at,
            &[(FLAG, true), ("other", false)],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["toggled"]["feature"], FLAG, "{answer}");
    assert_eq!(answer["toggled"]["suspect"]["flag"], FLAG, "{answer}");
    assert!(
        suspect_change(&answer)
            .starts_with("switched on by vwo 4 min before issue 1170820242 began"),
        "{answer}"
    );
    l.vwo.assert_off(FLAG, "production");
    l.vwo.assert_off(FLAG, "staging");

    // VWO → change tracking → Sentry: the change is the rule's suspect kill.
    l.kill_is_the_rules_suspect(rule).await;
}

/// The loop closed for one rule: a person widens one rule's traffic; change tracking (the real
/// binary) keeps that the change touched that rule alone; the suspect alert pauses that rule,
/// leaving the flag and its other rule on; Sentry's change log names the rule's suspect kill.
#[tokio::test(flavor = "multi_thread")]
async fn a_suspect_change_of_one_rule_pauses_that_rule_only() {
    let mut l = Loop::start("suspect-rule").await;
    let rollout = FakeRule::rollout("rolloutRule1");
    let eu = FakeRule::testing("eu-50", 10, ["Control", "New search"]);
    l.vwo
        .set_rules(FLAG, "production", vec![rollout.clone(), eu.clone()]);
    l.webhook("production").await;
    let wider = FakeRule { traffic: 50, ..eu };
    l.vwo.set_rules(FLAG, "production", vec![rollout, wider]);
    let (status, body) = l.webhook("production").await;
    assert_eq!(status, 200, "{body}");

    let event_at = l.webhook_time + 120;
    let rule = "Checkout errors > 50/5m";
    let (status, answer) = l
        .suspect_alert(rule, "production", event_at, &[(FLAG, true)])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["toggled"]["rule"], "eu-50", "{answer}");
    assert!(
        suspect_change(&answer)
            .starts_with("rule 'eu-50' changed by vwo 2 min before issue 1170820242 began"),
        "{answer}"
    );
    let toggles = l.vwo.toggles();
    assert!(toggles
        .last()
        .unwrap()
        .raw_path
        .ends_with(&format!("/features/{FLAG}/rules/eu-50/toggle")));
    l.vwo.assert_on(FLAG, "production");
    let enabled: Vec<(String, bool)> = l
        .vwo
        .rules(FLAG, "production")
        .into_iter()
        .map(|r| (r.key, r.enabled))
        .collect();
    assert_eq!(
        enabled,
        [("rolloutRule1".into(), true), ("eu-50".into(), false)]
    );

    l.kill_is_the_rules_suspect(rule).await;
}

/// A flag never on in the environment is on the flag drop-down, marked off: VWO's settings file
/// leaves it out, and change tracking's snapshot (the workspace's flag list) has it; the kill
/// switch reads that from the state table, spending no VWO token on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_flag_never_on_is_offered_from_change_trackings_list() {
    let l = Loop::start_with("never-on", &["new-search"]).await;
    let features_reads = |vwo: &testkit::vwo::FakeVwo| {
        let reads = vwo.api_requests();
        reads
            .iter()
            .filter(|r| r.raw_path.contains("/features"))
            .count()
    };
    let before = features_reads(&l.vwo);
    let data = json!({"environment": "1"}).to_string();
    let event = testkit::options_event(
        Some("loop-client-secret"),
        "/options/flags",
        &[("dependentData", &data)],
    );
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let answer = sentry_to_vwo::handle(&l.kill, request).await;
    let options: Value = match answer.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("a JSON answer, not {other:?}"),
    };
    let offered: Vec<(&str, &str)> = options
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["label"].as_str().unwrap(), o["value"].as_str().unwrap()))
        .collect();
    assert!(
        offered.contains(&("new-search — off in production", "new-search")),
        "{offered:?}"
    );
    let once = offered.iter().filter(|(_, v)| *v == "new-search").count();
    assert_eq!(once, 1, "offered once, whichever list has it: {offered:?}");
    assert!(offered.iter().any(|(_, v)| *v == FLAG), "{offered:?}");
    assert_eq!(
        features_reads(&l.vwo),
        before,
        "no VWO token spent on the flag list"
    );
}

/// The rule's drop-down gives the kill switch VWO's environment id; the webhook URL registered
/// in VWO names the environment by name: the kill is still the rule's.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_by_environment_id_is_attributed_to_a_webhook_by_name() {
    let mut l = Loop::start("by-id").await;
    l.kill_is_the_rules("1").await;
}

/// The other way round, with no guard rails and no suspect: the alert names the environment by
/// name, the webhook URL by id. Once the drop-downs have read the workspace (the state table
/// keeps it), the kill record is keyed by the id all the same, read without asking VWO.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_by_name_is_attributed_to_a_webhook_by_id_once_the_workspace_was_read() {
    let mut l = Loop::start("by-name").await;
    let (status, body) = l.webhook("1").await;
    assert_eq!(status, 200, "{body}");
    let event = testkit::options_event(Some("loop-client-secret"), "/options/environments", &[]);
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let answer = sentry_to_vwo::handle(&l.kill, request).await;
    assert_eq!(answer.status(), 200);
    l.kill_is_the_rules_seen_by("production", "1").await;
}
