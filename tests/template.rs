//! template.yaml against the code: the SAM template is transformed locally (SAM's translator,
//! no AWS call) and each function's configuration is read from what the template sets, so a
//! renamed variable, a missing grant or a grant too many fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;

use bridge_platform::secrets::StaticParameters;
use serde_json::Value;
use testkit::process::workspace_root;

/// The CloudFormation that SAM makes of template.yaml.
fn transformed() -> Value {
    let root = workspace_root();
    let tools = testkit::pytools::get().unwrap_or_else(|message| panic!("{message}"));
    let output = testkit::process::run_ok(
        Command::new(&tools.python)
            .arg(root.join(".ci/sam_transform.py"))
            .arg(root.join("template.yaml")),
        "SAM transform",
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A template value with `Ref`s to parameters replaced by their defaults.
fn resolve(template: &Value, value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            let name = o.get("Ref")?.as_str()?;
            match &template["Parameters"][name]["Default"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                // A resource (the state table) or a parameter without default.
                _ => Some(format!("placeholder-for-{name}")),
            }
        }
        _ => None,
    }
}

/// `value` with its `Fn::If`s taken at the parameters' defaults (conditions of `Fn::Not`,
/// `Fn::Equals` and `Ref`, the template's kinds); `None` for `AWS::NoValue`.
fn branch<'a>(template: &Value, value: &'a Value) -> Option<&'a Value> {
    let Some(branches) = value.get("Fn::If").and_then(Value::as_array) else {
        return (value["Ref"] != "AWS::NoValue").then_some(value);
    };
    let condition = &template["Conditions"][branches[0].as_str().unwrap()];
    let chosen = if holds(template, condition) {
        &branches[1]
    } else {
        &branches[2]
    };
    branch(template, chosen)
}

fn holds(template: &Value, condition: &Value) -> bool {
    if let Some(inner) = condition.get("Fn::Not") {
        return !holds(template, &inner[0]);
    }
    let pair = condition["Fn::Equals"].as_array().unwrap();
    let side = |v: &Value| match v.get("Ref").and_then(Value::as_str) {
        Some(name) => template["Parameters"][name]["Default"].clone(),
        None => v.clone(),
    };
    side(&pair[0]) == side(&pair[1])
}

struct Function {
    env: BTreeMap<String, String>,
    /// Variables set only when a parameter is given (`Fn::If`), absent at the defaults.
    conditional: BTreeSet<String>,
    properties: Value,
    statements: Vec<Value>,
}

fn function(template: &Value, binary: &str) -> Function {
    let (id, resource) = template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap_or_else(|| panic!("no function builds {binary}"));
    let properties = resource["Properties"].clone();
    let env = properties["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k, branch(template, v)?)))
        .map(|(k, v)| {
            (
                k.clone(),
                resolve(template, v).unwrap_or_else(|| panic!("{k}: {v}")),
            )
        })
        .collect();
    let conditional = properties["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| branch(template, v).is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let role = &template["Resources"][format!("{id}Role")];
    let mut statements = Vec::new();
    for policy in role["Properties"]["Policies"].as_array().unwrap() {
        // Conditional policies (`Fn::If`) are checked in both branches.
        let documents: Vec<&Value> = match policy.get("Fn::If") {
            Some(branches) => branches.as_array().unwrap()[1..].iter().collect(),
            None => vec![policy],
        };
        for doc in documents {
            statements.extend(
                doc["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    Function {
        env,
        conditional,
        properties,
        statements,
    }
}

/// Parameter names granted by `ssm:` statements, with `${Param}` replaced by the default.
fn granted_parameters(template: &Value, f: &Function) -> BTreeSet<String> {
    let mut granted = BTreeSet::new();
    for statement in &f.statements {
        let actions = statement["Action"].to_string();
        if !actions.contains("ssm:") {
            continue;
        }
        let resources = statement["Resource"].as_array().unwrap();
        for resource in resources.iter().filter_map(|r| branch(template, r)) {
            let sub = resource["Fn::Sub"]
                .as_str()
                .expect("SSM ARNs are built with Fn::Sub");
            let (_, after) = sub.split_once(":parameter").expect("a parameter ARN");
            let (param, suffix) = after
                .strip_prefix("${")
                .and_then(|rest| rest.split_once('}'))
                .expect("the name comes from a template parameter");
            let default = template["Parameters"][param]["Default"].as_str().unwrap();
            granted.insert(format!("{default}{suffix}"));
        }
    }
    granted
}

fn lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| env.get(name).cloned()
}

fn assert_lambda_shape(f: &Function, binary: &str) {
    let p = &f.properties;
    assert_eq!(p["Runtime"], "provided.al2023", "{binary}");
    assert_eq!(p["Architectures"], serde_json::json!(["arm64"]), "{binary}");
    assert_eq!(p["Handler"], "bootstrap", "{binary}");
    // Change tracking parses settings files of up to 32 MiB (25 MB of work at 10,000 flags).
    let memory = if binary == "vwo-to-sentry" { 256 } else { 128 };
    assert_eq!(p["MemorySize"], memory, "{binary}");
    assert!(
        p["ReservedConcurrentExecutions"].is_object(),
        "{binary}: reserved concurrency is a parameter"
    );
    assert!(
        p["LoggingConfig"]["LogGroup"].is_object(),
        "{binary}: log group with retention"
    );
    for statement in &f.statements {
        let resource = statement["Resource"].to_string();
        assert!(
            !resource.contains("\"*\""),
            "{binary}: wildcard resource in {statement}"
        );
    }
}

#[test]
fn the_kill_switch_reads_exactly_what_the_template_sets_and_grants() {
    let template = transformed();
    let f = function(&template, "sentry-to-vwo");
    assert_lambda_shape(&f, "sentry-to-vwo");
    let expected: BTreeSet<String> = sentry_to_vwo::config::ENV_VARS
        .iter()
        .chain(bridge_vwo::config::COMMON_ENV_VARS)
        .map(|v| v.to_string())
        .collect();
    // Every variable the function reads is set, some only when their parameter is given.
    let set: BTreeSet<String> = f.env.keys().chain(&f.conditional).cloned().collect();
    assert_eq!(set, expected);
    let config = sentry_to_vwo::config::Config::from_vars(&lookup(&f.env))
        .expect("template defaults are valid");
    assert!(
        config.toggle_queue_url.is_some() && config.state_table.is_some(),
        "the template always gives the kill switch its queue and state table"
    );
    assert!(
        config.fast_path < std::time::Duration::from_secs(1),
        "Sentry waits 1 s"
    );
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let app = sentry_to_vwo::App::new(config, Arc::new(StaticParameters::default()), &aws).unwrap();
    let reads: BTreeSet<String> = app.secrets.parameter_names().iter().cloned().collect();
    assert_eq!(reads, granted_parameters(&template, &f));
    assert_eq!(
        actions_on(&f, "ToggleQueue"),
        BTreeSet::from(["sqs:SendMessage".to_owned()]),
        "the kill switch only sends to the queue"
    );
    assert!(
        actions_on(&f, "StateTable").contains("dynamodb:PutItem"),
        "the kill switch records its toggles for change tracking"
    );
}

/// The actions `f` is granted on the resource `logical_id` (by `Fn::GetAtt`).
fn actions_on(f: &Function, logical_id: &str) -> BTreeSet<String> {
    f.statements
        .iter()
        .filter(|s| s["Resource"]["Fn::GetAtt"][0] == logical_id)
        .flat_map(|s| match &s["Action"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn the_worker_reads_exactly_what_the_template_sets_and_grants() {
    let template = transformed();
    let f = function(&template, "toggle-worker");
    assert_lambda_shape(&f, "toggle-worker");
    let expected: BTreeSet<String> = sentry_to_vwo::config::WORKER_ENV_VARS
        .iter()
        .chain(sentry_to_vwo::config::ENV_VARS)
        .chain(bridge_vwo::config::COMMON_ENV_VARS)
        .map(|v| v.to_string())
        .collect();
    // The kill switch's variables too (deferred alerts), some only when their parameter is given.
    let set: BTreeSet<String> = f.env.keys().chain(&f.conditional).cloned().collect();
    assert_eq!(set, expected);
    let config = sentry_to_vwo::config::WorkerConfig::from_vars(&lookup(&f.env))
        .expect("template defaults are valid");
    let timeout = f.properties["Timeout"].as_u64().unwrap();
    assert!(
        timeout * 1000 >= config.common.vwo.budget.as_millis() as u64 + 5000,
        "timeout covers one VWO call"
    );
    let visibility = template["Resources"]["ToggleQueue"]["Properties"]["VisibilityTimeout"]
        .as_u64()
        .unwrap();
    assert!(
        visibility > timeout,
        "SQS needs a visibility timeout above the worker's"
    );
    let retention = template["Resources"]["ToggleQueue"]["Properties"]["MessageRetentionPeriod"]
        .as_u64()
        .unwrap();
    let horizon_max = template["Parameters"]["RetryHorizonSecs"]["MaxValue"]
        .as_u64()
        .unwrap();
    assert!(retention > horizon_max, "jobs outlive the longest horizon");
    assert_eq!(
        actions_on(&f, "ToggleQueue"),
        BTreeSet::from(
            [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:SendMessage"
            ]
            .map(str::to_owned)
        )
    );
    assert_eq!(
        actions_on(&f, "ToggleDeadLetterQueue"),
        BTreeSet::from(["sqs:SendMessage".to_owned()])
    );
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let worker = sentry_to_vwo::toggle::worker::Worker::new(
        config,
        Arc::new(StaticParameters::default()),
        &aws,
    )
    .unwrap();
    let mut reads: BTreeSet<String> = worker.secrets.parameter_names().iter().cloned().collect();
    let alerts = worker
        .alerts
        .as_ref()
        .expect("the worker decides deferred alerts");
    reads.extend(alerts.secrets.parameter_names().iter().cloned());
    assert_eq!(reads, granted_parameters(&template, &f));
    assert!(
        actions_on(&f, "StateTable").contains("dynamodb:PutItem"),
        "the worker records the toggles it completes for change tracking"
    );
}

#[test]
fn change_tracking_reads_exactly_what_the_template_sets_and_grants() {
    let template = transformed();
    let f = function(&template, "vwo-to-sentry");
    assert_lambda_shape(&f, "vwo-to-sentry");
    let expected: BTreeSet<String> = vwo_to_sentry::config::ENV_VARS
        .iter()
        .chain(bridge_vwo::config::COMMON_ENV_VARS)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(f.env.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let mut env = f.env.clone();
    // The one setting without a default: deploying asks for it.
    env.insert(
        "SENTRY_WEBHOOK_URL".into(),
        "https://sentry.io/api/0/organizations/acme/flags/hooks/provider/generic/".into(),
    );
    let config = vwo_to_sentry::config::Config::from_vars(&lookup(&env))
        .expect("template defaults are valid");
    let timeout = f.properties["Timeout"].as_u64().unwrap();
    assert!(
        config.lease.as_secs() > timeout,
        "a live delivery never loses its lease"
    );
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let app = vwo_to_sentry::App::new(config, Arc::new(StaticParameters::default()), &aws).unwrap();
    let reads: BTreeSet<String> = app.secrets.parameter_names().iter().cloned().collect();
    assert_eq!(reads, granted_parameters(&template, &f));
    let dynamo: Vec<&Value> = f
        .statements
        .iter()
        .filter(|s| s["Action"].to_string().contains("dynamodb:"))
        .collect();
    assert_eq!(dynamo.len(), 1);
    assert_eq!(
        dynamo[0]["Resource"],
        serde_json::json!({"Fn::GetAtt": ["StateTable", "Arn"]})
    );
    // Snapshots, and the kill switch's records: read in one batch, consumed once.
    let granted = dynamo[0]["Action"].to_string();
    for action in [
        "GetItem",
        "PutItem",
        "UpdateItem",
        "BatchGetItem",
        "BatchWriteItem",
        "DeleteItem",
    ] {
        assert!(
            granted.contains(&format!("\"dynamodb:{action}\"")),
            "{action}: {granted}"
        );
    }
}

#[test]
fn the_state_table_is_on_demand_with_point_in_time_recovery() {
    let template = transformed();
    let table = &template["Resources"]["StateTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    let key = bridge_state::keys::PARTITION_KEY;
    assert_eq!(table["KeySchema"][0]["AttributeName"], key);
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        bridge_state::keys::EXPIRES_AT
    );
}

#[test]
fn outputs_give_both_urls_and_the_paste_ready_patterns() {
    let template = transformed();
    let outputs = template["Outputs"].as_object().unwrap();
    for name in [
        "KillSwitchUrl",
        "SentryWebhookUrlPattern",
        "ChangeTrackingUrl",
        "VwoWebhookUrlPattern",
    ] {
        assert!(outputs.contains_key(name), "{name}");
    }
    let pattern = outputs["SentryWebhookUrlPattern"]["Value"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(
        pattern.contains("?feature=") && pattern.contains("&environment="),
        "{pattern}"
    );
    assert!(
        !pattern.to_lowercase().contains("token"),
        "the token never goes in the URL"
    );
}

/// `.ci/check-template` passes the real template and fails broken copies, including breakage
/// that cfn-lint alone does not see.
#[test]
fn the_template_check_fails_on_broken_templates() {
    let root = workspace_root();
    let original = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    let check = |text: &str| {
        let dir = std::env::temp_dir().join(format!("template-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.yaml", text.len()));
        std::fs::write(&path, text).unwrap();
        let tools = testkit::pytools::get().unwrap_or_else(|message| panic!("{message}"));
        let status = Command::new("bash")
            .arg(root.join(".ci/check-template"))
            .arg(&path)
            .env("PATH", tools.path_env())
            .current_dir(&dir)
            .output()
            .expect("bash runs");
        status.status.success()
    };
    assert!(check(&original), "the real template passes");
    for (from, to) in [
        ("AuthType: NONE", "AuthType: SOMETIMES"),
        (
            "!GetAtt KillSwitchFunctionUrl.FunctionUrl",
            "!GetAtt KillSwitchFunctionUrlX.FunctionUrl",
        ),
        (
            "    Runtime: provided.al2023",
            "    Runtim: provided.al2023",
        ),
    ] {
        assert!(original.contains(from), "{from}");
        let broken = original.replacen(from, to, 1);
        assert!(
            !check(&broken),
            "a template with {to:?} must fail the check"
        );
    }
}

/// `f`'s environment with the template parameters in `at` set to the given values.
fn env_at(
    template: &Value,
    f: &Function,
    at: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    f.properties["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k, branch(template, v)?)))
        .map(|(k, v)| {
            let value = v["Ref"]
                .as_str()
                .and_then(|name| at.get(name).cloned())
                .or_else(|| resolve(template, v))
                .unwrap_or_else(|| panic!("{k}: {v}"));
            (k.clone(), value)
        })
        .collect()
}

/// Every combination of each bounded numeric parameter at its minimum and maximum (one at a
/// time), plus all at their minimums and all at their maximums.
fn parameter_bounds(template: &Value) -> Vec<BTreeMap<String, String>> {
    let bounded: Vec<(String, String, String)> = template["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(name, p)| {
            Some((
                name.clone(),
                p["MinValue"].as_u64()?.to_string(),
                p["MaxValue"].as_u64()?.to_string(),
            ))
        })
        .collect();
    let mut cases = Vec::new();
    for (name, min, max) in &bounded {
        cases.push(BTreeMap::from([(name.clone(), min.clone())]));
        cases.push(BTreeMap::from([(name.clone(), max.clone())]));
    }
    cases.push(
        bounded
            .iter()
            .map(|(n, min, _)| (n.clone(), min.clone()))
            .collect(),
    );
    cases.push(
        bounded
            .iter()
            .map(|(n, _, max)| (n.clone(), max.clone()))
            .collect(),
    );
    cases
}

#[test]
fn every_function_works_with_every_parameter_at_its_bounds() {
    let template = transformed();
    for (name, p) in template["Parameters"].as_object().unwrap() {
        if p["Type"] == "Number" && p["AllowedValues"].is_null() {
            assert!(
                p["MinValue"].is_u64() && p["MaxValue"].is_u64(),
                "{name}: every number has both bounds"
            );
        }
    }
    let kill = function(&template, "sentry-to-vwo");
    let worker = function(&template, "toggle-worker");
    let tracking = function(&template, "vwo-to-sentry");
    for at in parameter_bounds(&template) {
        let env = env_at(&template, &kill, &at);
        let config = sentry_to_vwo::config::Config::from_vars(&lookup(&env))
            .unwrap_or_else(|e| panic!("kill switch at {at:?}: {e}"));
        assert!(
            config.common.secret_ttl.as_secs() >= 60,
            "{at:?}: no SSM call per request"
        );
        assert!(config.fast_path < std::time::Duration::from_secs(1));

        let env = env_at(&template, &worker, &at);
        let config = sentry_to_vwo::config::WorkerConfig::from_vars(&lookup(&env))
            .unwrap_or_else(|e| panic!("worker at {at:?}: {e}"));
        let timeout = worker.properties["Timeout"].as_u64().unwrap();
        assert!(
            timeout * 1000 >= config.common.vwo.budget.as_millis() as u64 + 5000,
            "worker at {at:?}: one VWO call fits in the timeout"
        );

        let mut env = env_at(&template, &tracking, &at);
        env.insert(
            "SENTRY_WEBHOOK_URL".into(),
            "https://sentry.io/api/0/organizations/acme/flags/hooks/provider/generic/".into(),
        );
        let config = vwo_to_sentry::config::Config::from_vars(&lookup(&env))
            .unwrap_or_else(|e| panic!("change tracking at {at:?}: {e}"));
        let timeout = tracking.properties["Timeout"].as_u64().unwrap();
        assert!(config.lease.as_secs() > timeout, "{at:?}");
        assert!(
            config.least_lease().as_secs() < timeout,
            "change tracking at {at:?}: one delivery fits in the timeout"
        );
    }
}

#[test]
fn reserved_concurrency_zero_reserves_nothing() {
    let template = transformed();
    assert_eq!(template["Parameters"]["ReservedConcurrency"]["Default"], 0);
    let kill = function(&template, "sentry-to-vwo");
    assert_eq!(
        kill.properties["ReservedConcurrentExecutions"]["Fn::If"][0],
        "HasReservedConcurrency"
    );
    assert_eq!(
        kill.properties["ReservedConcurrentExecutions"]["Fn::If"][2],
        serde_json::json!({"Ref": "AWS::NoValue"})
    );
}

#[test]
fn with_a_sentry_token_the_kill_switch_and_the_worker_read_it_and_nothing_more() {
    let mut template = transformed();
    template["Parameters"]["SentryApiTokenParam"]["Default"] =
        "/sentry-vwo-bridge/sentry-api-token".into();
    template["Parameters"]["SentryWebhookUrl"]["Default"] =
        "https://sentry.io/api/0/organizations/acme/flags/hooks/provider/generic/".into();
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let kill = function(&template, "sentry-to-vwo");
    let config = sentry_to_vwo::config::Config::from_vars(&lookup(&kill.env)).unwrap();
    let app = sentry_to_vwo::App::new(config, Arc::new(StaticParameters::default()), &aws).unwrap();
    let reads: BTreeSet<String> = app.secrets.parameter_names().iter().cloned().collect();
    assert!(
        reads.contains("/sentry-vwo-bridge/sentry-api-token"),
        "{reads:?}"
    );
    assert_eq!(reads, granted_parameters(&template, &kill));

    let f = function(&template, "toggle-worker");
    let config = sentry_to_vwo::config::WorkerConfig::from_vars(&lookup(&f.env)).unwrap();
    let worker = sentry_to_vwo::toggle::worker::Worker::new(
        config,
        Arc::new(StaticParameters::default()),
        &aws,
    )
    .unwrap();
    let alerts = worker
        .alerts
        .as_ref()
        .expect("the worker decides deferred alerts");
    let mut reads: BTreeSet<String> = worker.secrets.parameter_names().iter().cloned().collect();
    reads.extend(alerts.secrets.parameter_names().iter().cloned());
    assert!(
        reads.contains("/sentry-vwo-bridge/sentry-api-token"),
        "{reads:?}"
    );
    assert!(
        !reads.iter().any(|r| r.contains("client-secret")),
        "the worker never reads the client secret: {reads:?}"
    );
    assert_eq!(reads, granted_parameters(&template, &f));
}
