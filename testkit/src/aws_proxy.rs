//! A proxy in front of moto that counts AWS calls by action and can be switched to fail:
//! down (503, as during an outage) or throttled (400 `ThrottlingException`, as under load).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Default)]
struct Inner {
    target: String,
    down: bool,
    hang: bool,
    throttle_next: u32,
    calls: HashMap<String, u32>,
    log: Vec<Call>,
    fail_after_write: Option<AfterWrite>,
}

/// One call through the proxy: its action and when it arrived and was answered.
#[derive(Clone, Debug)]
pub struct Call {
    /// `x-amz-target`, e.g. `DynamoDB_20120810.UpdateItem`.
    pub action: String,
    /// When the request reached the proxy.
    pub started: std::time::Instant,
    /// When the proxy answered.
    pub finished: std::time::Instant,
}

/// How many round trips in sequence `calls` took: the longest chain of calls each of which
/// started after the previous one was answered (calls that overlap count as one step).
pub fn sequential_round_trips(calls: &[Call]) -> usize {
    let mut sorted: Vec<&Call> = calls.iter().collect();
    sorted.sort_by_key(|c| c.started);
    // Longest chain ending at each call (n is small).
    let mut longest = vec![1usize; sorted.len()];
    for i in 0..sorted.len() {
        for j in 0..i {
            if sorted[j].finished <= sorted[i].started {
                longest[i] = longest[i].max(longest[j] + 1);
            }
        }
    }
    longest.into_iter().max().unwrap_or(0)
}

/// A call to forward, then answer with a 500 as if the answer had been lost; before answering,
/// run another call against the target (another delivery acting meanwhile).
#[derive(Clone)]
struct AfterWrite {
    body_contains: String,
    then_target: String,
    then_body: serde_json::Value,
}

/// Handle on a running proxy.
#[derive(Clone)]
pub struct AwsProxy {
    /// `http://127.0.0.1:PORT`, to use as `AWS_ENDPOINT_URL_*`.
    pub endpoint: String,
    inner: Arc<Mutex<Inner>>,
}

impl AwsProxy {
    /// Starts a proxy forwarding to `target` (moto's endpoint).
    pub async fn start(target: &str) -> AwsProxy {
        let inner = Arc::new(Mutex::new(Inner {
            target: target.to_owned(),
            ..Inner::default()
        }));
        let addr = crate::serve_all(inner.clone(), forward).await;
        AwsProxy {
            endpoint: format!("http://{addr}"),
            inner,
        }
    }

    /// Makes every call fail with 503 (`true`) or pass again (`false`).
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// Makes every call hang without an answer (`true`), as a stuck endpoint does.
    pub fn set_hang(&self, hang: bool) {
        self.inner.lock().unwrap().hang = hang;
    }

    /// Makes the next `n` calls fail with `ThrottlingException`.
    pub fn throttle_next(&self, n: u32) {
        self.inner.lock().unwrap().throttle_next = n;
    }

    /// Lets the next call whose body contains `body_contains` reach the target, then answers
    /// it with 500 `InternalServerError` (the SDK retries) after running `then_body` as the
    /// action `then_target` against the target: a write that took effect but whose answer was
    /// lost, while another writer acted.
    pub fn fail_after_write(
        &self,
        body_contains: &str,
        then_target: &str,
        then_body: serde_json::Value,
    ) {
        self.inner.lock().unwrap().fail_after_write = Some(AfterWrite {
            body_contains: body_contains.to_owned(),
            then_target: then_target.to_owned(),
            then_body,
        });
    }

    /// Every call answered so far, in the order they were answered.
    pub fn log(&self) -> Vec<Call> {
        self.inner.lock().unwrap().log.clone()
    }

    /// Calls received for an action, e.g. `AmazonSSM.GetParameters` (failed ones included).
    pub fn calls(&self, action: &str) -> u32 {
        self.inner
            .lock()
            .unwrap()
            .calls
            .get(action)
            .copied()
            .unwrap_or(0)
    }
}

async fn forward(
    State(inner): State<Arc<Mutex<Inner>>>,
    request: axum::extract::Request,
) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let action = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = answer(inner.clone(), &action, method, uri, headers, body).await;
    inner.lock().unwrap().log.push(Call {
        action,
        started,
        finished: std::time::Instant::now(),
    });
    response
}

async fn answer(
    inner: Arc<Mutex<Inner>>,
    action: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hang = inner.lock().unwrap().hang;
    if hang {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    let (target, failure, after_write) = {
        let mut guard = inner.lock().unwrap();
        *guard.calls.entry(action.to_owned()).or_default() += 1;
        let text = String::from_utf8_lossy(&body);
        let after_write = guard
            .fail_after_write
            .take_if(|a| text.contains(&a.body_contains));
        let failure = if guard.down {
            Some((
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"__type":"ServiceUnavailable","message":"proxy is down"}"#,
            ))
        } else if guard.throttle_next > 0 {
            guard.throttle_next -= 1;
            Some((
                StatusCode::BAD_REQUEST,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ))
        } else {
            None
        };
        (guard.target.clone(), failure, after_write)
    };
    if let Some((status, body)) = failure {
        return (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            body,
        )
            .into_response();
    }
    let mut request = crate::http_client()
        .request(method, format!("{target}{uri}"))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let sent = request.send().await;
    if let Some(after) = after_write {
        let _ = crate::http_client()
            .post(&target)
            .header("x-amz-target", after.then_target)
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(after.then_body.to_string())
            .send()
            .await;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/x-amz-json-1.0")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost"}"#,
        )
            .into_response();
    }
    match sent {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut out = HeaderMap::new();
            for (name, value) in response.headers() {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out.insert(name.clone(), value.clone());
                }
            }
            let bytes = response.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
