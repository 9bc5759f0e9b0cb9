//! Local stand-ins for everything the bridge talks to, for tests and the local run:
//! the Lambda Runtime API, VWO's API, Sentry's change-tracking endpoint, and moto's server
//! for SSM and DynamoDB. All of them listen on 127.0.0.1 only.

pub mod answers;
pub mod aws_proxy;
pub mod leaks;
pub mod moto;
pub mod nodetools;
pub mod process;
pub mod pytools;
pub mod runtime_api;
pub mod sentry;
pub mod sentry_api;
pub mod sentry_events;
pub mod settings_files;
pub mod vwo;

use std::net::SocketAddr;

use serde_json::{json, Value};

/// An HTTP client for the stand-ins, on the bridge's TLS configuration (reqwest brings no
/// crypto provider of its own: see `bridge_platform::tls`).
pub fn http_client() -> reqwest::Client {
    bridge_platform::tls::client().expect("an HTTP client")
}

/// Serves `app` on a free loopback port in the background; returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Serves every request with `handler` over shared `state` on a free loopback port (what each
/// stand-in does).
pub async fn serve_all<H, T, S>(state: S, handler: H) -> SocketAddr
where
    H: axum::handler::Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    serve(axum::Router::new().fallback(handler).with_state(state)).await
}

/// Environment variables from `vars`, as a function's `Config::from_vars` reads them.
pub fn vars_from(
    vars: &std::collections::HashMap<String, String>,
) -> impl Fn(&str) -> Option<String> + '_ {
    |name| vars.get(name).cloned()
}

/// Parameter Store through the AWS configuration `aws`, as a function reads its secrets.
pub fn ssm(
    aws: &aws_config::SdkConfig,
) -> std::sync::Arc<dyn bridge_platform::secrets::ParameterSource> {
    std::sync::Arc::new(bridge_platform::secrets::SsmParameters::new(aws))
}

/// A Lambda Function URL event (payload format 2.0), as AWS delivers it to the function.
///
/// `query` is the raw query string; the body is base64-encoded when `base64` is true, as AWS
/// does for binary content types.
pub fn function_url_event(
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> Value {
    use base64::Engine;
    let mut header_map = serde_json::Map::new();
    for (k, v) in headers {
        header_map.insert(k.to_ascii_lowercase(), Value::String((*v).to_owned()));
    }
    let params: serde_json::Map<String, Value> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let body_text = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": query,
        "headers": header_map,
        "queryStringParameters": if params.is_empty() { Value::Null } else { Value::Object(params) },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnop",
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "00000000-0000-0000-0000-000000000000",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64
        },
        "body": body_text,
        "isBase64Encoded": base64
    })
}

/// Lowercase hex HMAC-SHA256, computed independently of the bridge's own code.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A Function URL event carrying a Sentry webhook as Sentry sends it: signed with `secret`,
/// stamped now, for `resource`, to the function URL with query string `query`.
pub fn sentry_hook_event(secret: &str, resource: &str, body: &[u8], query: &str) -> Value {
    let signature = hmac_hex(secret, body);
    let timestamp = now_secs().to_string();
    function_url_event(
        "POST",
        query,
        &[
            ("content-type", "application/json"),
            ("request-id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            ("sentry-hook-resource", resource),
            ("sentry-hook-timestamp", &timestamp),
            ("sentry-hook-signature", &signature),
        ],
        body,
        false,
    )
}

/// A Function URL event carrying Sentry's alert-rule-action save (`POST .../alert-rule-action`,
/// `{"fields": [...], "installationId"}` signed with `secret` in `Sentry-App-Signature`).
pub fn rule_action_event(secret: &str, fields: Value) -> Value {
    let body = json!({"fields": fields, "installationId": "7a485448"}).to_string();
    let mut event = function_url_event(
        "POST",
        "",
        &[
            ("content-type", "application/json"),
            ("sentry-app-signature", &hmac_hex(secret, body.as_bytes())),
        ],
        body.as_bytes(),
        false,
    );
    event["rawPath"] = json!("/alert-rule-action");
    event["requestContext"]["http"]["path"] = json!("/alert-rule-action");
    event
}

/// A Function URL event carrying Sentry's request for a select field's options, as
/// `select_requester.py` sends it (getsentry/sentry
/// `src/sentry/sentry_apps/external_requests/select_requester.py`): `GET <uri>` with
/// `installationId` (and `query`, `dependentData` when given) in the query string, headers
/// `Content-Type`, `Request-ID` and `Sentry-App-Signature`, the HMAC of the **empty body** with
/// `secret` (no header when `None`).
pub fn options_event(secret: Option<&str>, uri: &str, params: &[(&str, &str)]) -> Value {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("installationId", "7a485448-7a48-4854-8a48-7a4854487a48");
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let signature = secret.map(|s| hmac_hex(s, b""));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("request-id", "0f3e6c7a9b2d4e5f8a1b2c3d4e5f6a7b"),
    ];
    if let Some(signature) = &signature {
        headers.push(("sentry-app-signature", signature));
    }
    let mut event = function_url_event("GET", &query.finish(), &headers, b"", false);
    event["rawPath"] = json!(uri);
    event["requestContext"]["http"]["path"] = json!(uri);
    event
}

/// A Function URL event carrying a VWO webhook for `?environment=production`, authenticated with
/// `auth` in `x-vwo-auth`.
pub fn vwo_hook_event(auth: &str, action: &str, timestamp: i64) -> Value {
    let body = json!({"timestamp": timestamp, "event": "settings_changed", "action": action, "triggered_by": "vwo"});
    function_url_event(
        "POST",
        "environment=production",
        &[("content-type", "application/json"), ("x-vwo-auth", auth)],
        body.to_string().as_bytes(),
        false,
    )
}

/// A sample payload from the workspace's `events/` folder, e.g. `sentry/metric_alert.critical.json`.
pub fn sample(path: &str) -> Vec<u8> {
    let full = process::workspace_root().join("events").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Runs futures concurrently on the calling task and collects their outputs in order (for
/// "N deliveries at once" tests, without a futures crate).
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("all ready")).collect()
}

/// The variable names a configuration reader asks for: `read` runs over `vars`, recording each
/// name it asks for. With [`names`], a test asserts that a function's list of variables (checked
/// against template.yaml) is exactly what its configuration reads.
pub fn names_read(
    vars: impl Fn(&str) -> Option<String>,
    read: impl FnOnce(&dyn bridge_platform::config::Vars),
) -> std::collections::BTreeSet<String> {
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let recording = |name: &str| {
        asked.borrow_mut().insert(name.to_owned());
        vars(name)
    };
    read(&recording);
    asked.into_inner()
}

/// The names in `lists`, as one set.
pub fn names(lists: &[&[&str]]) -> std::collections::BTreeSet<String> {
    lists
        .iter()
        .flat_map(|list| list.iter().map(|name| name.to_string()))
        .collect()
}
