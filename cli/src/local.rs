//! `bridge local`: both functions on 127.0.0.1, serving the very same handlers as on Lambda, with
//! secrets from a git-ignored dev file and VWO, Sentry and DynamoDB replaced by local stand-ins.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_dynamodb::config::{Credentials, Region};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use bridge_platform::secrets::StaticParameters;
use bridge_platform::{Error, Result};
use lambda_http::RequestExt;
use serde_json::{json, Value};
use testkit::sentry::FakeSentry;
use testkit::vwo::FakeVwo;

/// Parameter names used locally (the template's defaults).
pub const PARAMS: [(&str, &str); 5] = [
    (
        "sentry_client_secret",
        "/sentry-vwo-bridge/sentry-client-secret",
    ),
    ("vwo_api_token", "/sentry-vwo-bridge/vwo-api-token"),
    (
        "vwo_webhook_secret",
        "/sentry-vwo-bridge/vwo-webhook-secret",
    ),
    (
        "sentry_signing_secret",
        "/sentry-vwo-bridge/sentry-signing-secret",
    ),
    // The internal integration's token for Sentry's API (the @suspect rule's evidence).
    ("sentry_api_token", "/sentry-vwo-bridge/sentry-api-token"),
];

/// The local secrets: read from `path`, or created there with random values on first use.
pub fn dev_secrets(path: &Path) -> Result<HashMap<String, String>> {
    let mut secrets: HashMap<String, String> = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
        Err(_) => HashMap::new(),
    };
    // A file of an earlier version lacks the secrets added since: they are added to it.
    let missing: Vec<&str> = PARAMS
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| !secrets.contains_key(*key))
        .collect();
    if missing.is_empty() {
        return Ok(secrets);
    }
    for key in missing {
        secrets.insert(key.to_owned(), crate::secrets_io::random_hex()?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secrets)
}

struct Local {
    /// The Sentry integration's client secret: the stand-in signs its issue webhooks with it.
    client_secret: String,
    kill_switch: sentry_to_vwo::App,
    change_tracking: vwo_to_sentry::App,
    /// The toggle worker (its loop runs beside the server): its deferred alerts' decisions.
    worker: Arc<sentry_to_vwo::toggle::worker::Worker>,
    vwo: FakeVwo,
    sentry: FakeSentry,
}

/// Starts the stand-ins and both functions; serves on `127.0.0.1:port` until interrupted.
/// `ready` receives the bound address once requests can be served.
pub async fn serve(
    port: u16,
    secrets_path: &Path,
    env_file: Option<&Path>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let secrets = dev_secrets(secrets_path)?;
    let value = |key: &str| secrets.get(key).cloned().unwrap_or_default();
    let vwo = FakeVwo::start(&value("vwo_api_token")).await;
    vwo.add_flag("checkout-new-flow", true);
    vwo.add_flag("search-v2", false);
    let sentry = FakeSentry::start(&value("sentry_signing_secret")).await;
    sentry.set_api_token(&value("sentry_api_token"));
    let moto = testkit::moto::Moto::try_start().map_err(Error::Config)?;
    moto.create_table("bridge-local-state").await;
    let queue_url = moto.create_queue("bridge-local-toggles").await;
    let dlq_url = moto.create_queue("bridge-local-toggles-dlq").await;
    let aws = bridge_platform::aws::aws_config_loader()
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .load()
        .await;
    let params = Arc::new(StaticParameters(
        PARAMS
            .iter()
            .map(|(key, name)| (name.to_string(), value(key)))
            .collect(),
    ));
    let vars = local_vars(&vwo, &sentry, &queue_url, &dlq_url);
    if let Some(path) = env_file {
        for (key, name) in PARAMS {
            moto.put_secure_string(name, &value(key)).await;
        }
        write_env_file(path, &vars, &moto)?;
    }
    let lookup = |n: &str| vars.get(n).cloned();
    let kill_switch = sentry_to_vwo::App::new(
        sentry_to_vwo::config::Config::from_vars(&lookup)?,
        params.clone(),
        &aws,
    )?;
    let worker = sentry_to_vwo::toggle::worker::Worker::new(
        sentry_to_vwo::config::WorkerConfig::from_vars(&lookup)?,
        params.clone(),
        &aws,
    )?;
    let change_tracking = vwo_to_sentry::App::new(
        vwo_to_sentry::config::Config::from_vars(&lookup)?,
        params,
        &aws,
    )?;
    tokio::join!(
        kill_switch.warm_up(),
        change_tracking.warm_up(),
        worker.warm_up()
    );
    let worker = Arc::new(worker);
    let draining = worker.clone();
    // What Lambda's SQS event source mapping does for the toggle worker.
    tokio::spawn(async move {
        let worker = draining;
        loop {
            if let Err(e) = worker.drain_once(std::time::Duration::from_secs(1)).await {
                eprintln!("local toggle worker: could not read the queue: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    });
    let local = Arc::new(Local {
        client_secret: value("sentry_client_secret"),
        kill_switch,
        change_tracking,
        worker,
        vwo,
        sentry,
    });
    listen(port, local, ready).await?;
    drop(moto);
    Ok(())
}

/// The configuration both functions and the worker read locally (the environment variables a
/// deployment sets), pointing at this run's stand-ins.
fn local_vars(
    vwo: &FakeVwo,
    sentry: &FakeSentry,
    queue_url: &str,
    dlq_url: &str,
) -> HashMap<&'static str, String> {
    HashMap::from([
        ("SENTRY_CLIENT_SECRET_PARAM", PARAMS[0].1.to_owned()),
        ("VWO_API_TOKEN_PARAM", PARAMS[1].1.to_owned()),
        ("VWO_WEBHOOK_SECRET_PARAM", PARAMS[2].1.to_owned()),
        ("SENTRY_SIGNING_SECRET_PARAM", PARAMS[3].1.to_owned()),
        ("VWO_API_BASE_URL", vwo.base_url()),
        ("VWO_SETTINGS_BASE_URL", vwo.settings_base_url()),
        ("SENTRY_WEBHOOK_URL", sentry.hook_url()),
        // Sentry's API at the stand-in, with the local token: @suspect reads the issue's events.
        ("SENTRY_API_TOKEN_PARAM", PARAMS[4].1.to_owned()),
        ("SENTRY_API_URL", sentry.api_url()),
        ("SENTRY_ORG", testkit::sentry_api::ORG.to_owned()),
        ("STATE_TABLE", "bridge-local-state".to_owned()),
        ("TOGGLE_QUEUE_URL", queue_url.to_owned()),
        ("TOGGLE_DLQ_URL", dlq_url.to_owned()),
        ("RESTORE_ON_RESOLVE", "true".to_owned()),
        // Restores turn flags back on: locally, in every environment.
        ("ENABLE_ALLOWED_IN", "*".to_owned()),
        // Locally, retry a failed toggle after 2 s rather than 10 s.
        ("RETRY_FIRST_BACKOFF_MS", "2000".to_owned()),
        // moto answers in tens of milliseconds where DynamoDB takes a few: give the local fast
        // path the time its four state calls take here.
        ("FAST_PATH_MS", "1500".to_owned()),
    ])
}

/// Serves `local` on 127.0.0.1:`port` until Ctrl-C; `ready` is told the address first.
async fn listen(
    port: u16,
    local: Arc<Local>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let app = axum::Router::new()
        .fallback(dispatch)
        .with_state(local.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            Error::Config(format!(
                "cannot listen on 127.0.0.1:{port} ({e}): pass --port with a free port \
                 (`cargo lambda watch` uses 9000 too), or 0 for any"
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(e.to_string()))?;
    // The integration is subscribed to "issue": each new issue's issue.created reaches the kill
    // switch, which keeps when the issue began.
    let kill_switch_url = format!("http://{addr}/sentry-to-vwo");
    local
        .sentry
        .send_issue_webhooks(&kill_switch_url, &local.client_secret);
    ready(addr);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok(())
}

/// Writes what a function started by `cargo lambda watch --env-file PATH` needs to use this local
/// run: its configuration, and moto (where the secrets were just put, as in Parameter Store) as
/// the AWS endpoint. One `KEY=VALUE` per line, as cargo-lambda reads it (source: `cargo lambda
/// watch --help`, cargo-lambda 1.9: "--env-file: Variables are separated by new lines in
/// KEY=VALUE"). The file holds
/// no comment line, since no source says cargo-lambda skips them.
fn write_env_file(
    path: &Path,
    vars: &HashMap<&str, String>,
    moto: &testkit::moto::Moto,
) -> Result<()> {
    let mut lines: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines.extend(moto.aws_env().into_iter().map(|(k, v)| format!("{k}={v}")));
    lines.sort();
    // No comment line: whether cargo-lambda skips `#` lines is not documented.
    let text = format!("{}\n", lines.join("\n"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Config(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))
}

/// What a person does in VWO's UI: switches a flag on or off in an environment, which VWO's
/// timeline records (`{"flag", "environment", "enabled", "name", "email"}`).
/// An issue Sentry's API (the stand-in's) knows, as `bridge try` sets one up: `{"id", "firstSeen"
/// (Unix seconds), "flags" (on in each of its events), "events" (how many), "environment"}`.
fn add_sentry_issue(sentry: &FakeSentry, body: &[u8]) -> axum::response::Response {
    let asked: Value = serde_json::from_slice(body).unwrap_or_default();
    let (Some(id), Some(first_seen)) = (asked["id"].as_str(), asked["firstSeen"].as_i64()) else {
        let needed = "id (digits) and firstSeen (Unix seconds) are required\n";
        return (axum::http::StatusCode::BAD_REQUEST, needed).into_response();
    };
    let flags: Vec<&str> = asked["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let environment = asked["environment"].as_str().unwrap_or("production");
    let count = asked["events"].as_u64().unwrap_or(1) as usize;
    let event = testkit::sentry_api::ApiEvent::on(environment, &flags);
    sentry.add_issue(testkit::sentry_api::ApiIssue {
        id: id.to_owned(),
        first_seen,
        events: vec![event; count],
    });
    axum::Json(json!({"added": id})).into_response()
}

fn switch_in_vwo(vwo: &FakeVwo, body: &[u8]) -> axum::response::Response {
    let Ok(asked) = serde_json::from_slice::<Value>(body) else {
        return (axum::http::StatusCode::BAD_REQUEST, "JSON body expected\n").into_response();
    };
    let (Some(flag), Some(environment), Some(enabled)) = (
        asked["flag"].as_str(),
        asked["environment"].as_str(),
        asked["enabled"].as_bool(),
    ) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "flag, environment and enabled are required\n",
        )
            .into_response();
    };
    let Some(was) = vwo.is_enabled(flag, environment) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "no such flag or environment\n",
        )
            .into_response();
    };
    if was == enabled {
        return axum::Json(
            json!({"unchanged": {"flag": flag, "environment": environment, "enabled": enabled}}),
        )
        .into_response();
    }
    vwo.set_enabled(flag, environment, enabled);
    let when = bridge_platform::clock::unix_secs();
    let state = if enabled { "enabled" } else { "disabled" };
    vwo.add_feed(json!({
        "id": when,
        "type": "feature",
        "what": format!("Feature flag <b>{flag}</b> {state} in {environment}"),
        "when": when.to_string(),
        "who": {"name": asked["name"], "email": asked["email"]},
    }));
    axum::Json(json!({"switched": {"flag": flag, "environment": environment, "enabled": enabled}}))
        .into_response()
}

/// Turns a local HTTP request into the Function URL request Lambda would give the handler.
fn to_lambda(parts: axum::http::request::Parts, body: Bytes) -> lambda_http::Request {
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = if body.is_empty() {
        lambda_http::Body::Empty
    } else {
        lambda_http::Body::from(body.to_vec())
    };
    lambda_http::Request::from_parts(parts, body).with_query_string_parameters(query)
}

fn from_lambda(response: lambda_http::Response<lambda_http::Body>) -> axum::response::Response {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// One line per request for the person watching `bridge local` (the JSON log line with every
/// field is printed too, with `RUST_LOG=info`).
fn say_handled(
    function: &str,
    path: &str,
    response: lambda_http::Response<lambda_http::Body>,
) -> lambda_http::Response<lambda_http::Body> {
    let body: Value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let what = body
        .as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}: {s}"),
            other => format!("{k} {other}"),
        })
        .unwrap_or_default();
    let what: String = what.chars().take(160).collect();
    println!(
        "{function:<15} {path} → {} {what}",
        response.status().as_u16()
    );
    response
}

async fn dispatch(
    State(local): State<Arc<Local>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    // Twice the functions' cap, so oversized bodies reach the handler and get its 413.
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    // Sentry asks for a drop-down's options at the webhook URL's host with the schema's `uri`.
    if path.starts_with("/sentry-to-vwo") || path.starts_with("/options/") {
        let response = sentry_to_vwo::handle(&local.kill_switch, to_lambda(parts, body)).await;
        from_lambda(say_handled("kill switch", &path, response))
    } else if path.starts_with("/vwo-to-sentry") {
        let response = vwo_to_sentry::handle(&local.change_tracking, to_lambda(parts, body)).await;
        from_lambda(say_handled("change tracking", &path, response))
    } else if path == "/_local/vwo" {
        let requests: Vec<Value> = local
            .vwo
            .requests()
            .into_iter()
            .map(|r| json!({"method": r.method, "path": r.raw_path, "query": r.query, "token": r.token.map(|_| "***"), "body": r.body}))
            .collect();
        axum::Json(json!({"requests": requests})).into_response()
    } else if path == "/_local/sentry" {
        axum::Json(json!({
            "changes": local.sentry.accepted_changes(),
            "rejections": local.sentry.rejections(),
            "issues": local.sentry.issues(),
        }))
        .into_response()
    } else if path == "/_local/decisions" {
        // The alerts the worker decided after their answer (`deferred`), as its log says them.
        let decisions: Vec<Value> = local
            .worker
            .recent_decisions()
            .into_iter()
            .map(|(outcome, detail)| json!({"outcome": outcome, "detail": detail}))
            .collect();
        axum::Json(json!({"decisions": decisions})).into_response()
    } else if path == "/_local/endpoints" {
        // What an application's SDKs need to use this local run (`bridge try`'s application step).
        axum::Json(json!({
            "vwoGatewayUrl": local.vwo.settings_base_url(),
            "vwoSdkKey": local.vwo.sdk_key("production"),
            "vwoAccountId": testkit::vwo::ACCOUNT_ID.to_string(),
            "sentryDsn": local.sentry.dsn(),
        }))
        .into_response()
    } else if path == "/_local/vwo/switch" && parts.method == axum::http::Method::POST {
        switch_in_vwo(&local.vwo, &body)
    } else if path == "/_local/sentry/issues" && parts.method == axum::http::Method::POST {
        add_sentry_issue(&local.sentry, &body)
    } else {
        (
            axum::http::StatusCode::NOT_FOUND,
            "try /sentry-to-vwo or /vwo-to-sentry\n",
        )
            .into_response()
    }
}
