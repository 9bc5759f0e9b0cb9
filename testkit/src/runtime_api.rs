//! A stand-in for the Lambda Runtime API, so the real function binaries run as on Lambda.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function returned this JSON (for a Function URL: statusCode, headers, body).
    Response(Value),
    /// The function reported an error.
    Error(Value),
}

impl Outcome {
    /// The HTTP status and JSON body of a Function URL response; panics on an error outcome.
    pub fn http(self) -> (u16, Value) {
        match self {
            Outcome::Response(r) => {
                let body = serde_json::from_str(r["body"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null);
                (r["statusCode"].as_u64().unwrap_or(0) as u16, body)
            }
            Outcome::Error(e) => panic!("expected a response, got an error: {e}"),
        }
    }
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: Notify,
    results: Mutex<HashMap<String, Outcome>>,
    finished: Notify,
    init_error: Mutex<Option<Value>>,
    first_poll: Mutex<Option<Instant>>,
    next_id: Mutex<u64>,
}

/// A running Runtime API on 127.0.0.1. Point a function at it with `AWS_LAMBDA_RUNTIME_API`.
#[derive(Clone)]
pub struct RuntimeApi {
    /// Address to put in `AWS_LAMBDA_RUNTIME_API`.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Starts the stand-in on a free port.
    pub async fn start() -> RuntimeApi {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let addr = crate::serve(app).await;
        RuntimeApi { addr, shared }
    }

    /// Environment variables Lambda sets for a function, pointing at this stand-in.
    pub fn lambda_env(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Queues `event`, waits for the function's answer (at most `timeout`).
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Option<Outcome> {
        let id = {
            let mut n = self.shared.next_id.lock().unwrap();
            *n += 1;
            format!("req-{n}")
        };
        self.shared
            .queue
            .lock()
            .unwrap()
            .push_back((id.clone(), event));
        self.shared.queued.notify_one();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let finished = self.shared.finished.notified();
            if let Some(outcome) = self.shared.results.lock().unwrap().remove(&id) {
                return Some(outcome);
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return None;
            }
        }
    }

    /// The error the function reported during init, if it did so within `timeout`.
    pub async fn init_error(&self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let finished = self.shared.finished.notified();
            if let Some(e) = self.shared.init_error.lock().unwrap().clone() {
                return Some(e);
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return None;
            }
        }
    }

    /// When the function first asked for an event (end of its init), if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().unwrap()
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared
        .first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    loop {
        let queued = shared.queued.notified();
        let item = shared.queue.lock().unwrap().pop_front();
        if let Some((id, event)) = item {
            let deadline = SystemTime::now() + Duration::from_secs(60);
            let ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
            let mut headers = HeaderMap::new();
            let mut set = |k: &'static str, v: String| {
                headers.insert(k, HeaderValue::from_str(&v).unwrap());
            };
            set("lambda-runtime-aws-request-id", id);
            set("lambda-runtime-deadline-ms", ms.to_string());
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:local".into(),
            );
            set(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".into(),
            );
            set("content-type", "application/json".into());
            return (StatusCode::OK, headers, event.to_string());
        }
        queued.await;
    }
}

fn finish(shared: &Shared, id: String, outcome: Outcome) -> StatusCode {
    shared.results.lock().unwrap().insert(id, outcome);
    shared.finished.notify_waiters();
    StatusCode::ACCEPTED
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&s, id, Outcome::Response(value))
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&s, id, Outcome::Error(value))
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    *s.init_error.lock().unwrap() = Some(value);
    s.finished.notify_waiters();
    StatusCode::ACCEPTED
}
