//! The Lambda side of the functions: serving Function URL events without panicking, and
//! reporting an init failure the way Lambda expects.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use lambda_http::http::{Method, Uri};
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::{service_fn, LambdaEvent};

use crate::error::Error;
use crate::request::error_response;
use crate::secrets::{ParameterSource, SsmParameters};

/// A function's state as Lambda builds it, once per container: its configuration read by
/// `config` (from the process environment), the state built by `build` with secrets from
/// Parameter Store and the AWS configuration ([`crate::aws::aws_config`]), then `warm_up` (secrets
/// read, connections opened; its failures are logged, not fatal). For [`run`]'s `init`.
pub async fn ready<C, A>(
    config: impl FnOnce() -> crate::Result<C>,
    build: impl FnOnce(C, Arc<dyn ParameterSource>, &aws_config::SdkConfig) -> crate::Result<A>,
    warm_up: impl AsyncFnOnce(&A),
) -> crate::Result<A> {
    let config = config()?;
    let aws = crate::aws::aws_config().await;
    let app = build(config, Arc::new(SsmParameters::new(&aws)), &aws)?;
    warm_up(&app).await;
    Ok(app)
}

/// The whole life of a function process, for each `main.rs`: logging, `init` once (the app
/// built and warmed up; an error is reported to the Runtime API as the init error and ends the
/// process), then `serve` with the app until the runtime stops.
pub async fn run<A>(
    init: impl std::future::Future<Output = crate::Result<A>>,
    serve: impl AsyncFnOnce(&A) -> Result<(), lambda_runtime::Error>,
) -> ExitCode {
    crate::telemetry::init_logging();
    let app = match init.await {
        Ok(app) => app,
        Err(error) => {
            report_init_error(&error).await;
            return ExitCode::FAILURE;
        }
    };
    match serve(&app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// Reports `error` to the Lambda Runtime API's `/runtime/init/error`, so the console and
/// logs show one clear init error, and logs it. Without a Runtime API (a plain local run)
/// it only logs.
pub async fn report_init_error(error: &Error) {
    tracing::error!(error = %error, "cold start failed");
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({
        "errorType": "Runtime.ConfigError",
        "errorMessage": error.to_string(),
    });
    let client = match crate::tls::client() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "could not report the init error to the Runtime API");
            return;
        }
    };
    let sent = client
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .json(&body)
        .send()
        .await;
    if let Err(e) = sent {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
}

/// A Function URL function's whole life, for its `main.rs`: [`run`] with `init`, then every
/// event through [`serve_function_url`] to `handle`.
pub async fn serve<A, F>(
    init: impl std::future::Future<Output = crate::Result<A>>,
    handle: F,
) -> ExitCode
where
    F: AsyncFn(&A, Request) -> Response<Body>,
{
    run(init, async |app: &A| serve_function_url(app, &handle).await).await
}

/// Serves Function URL invocations with `handle` until the runtime stops.
///
/// The Function URL event is taken as the `aws_lambda_events` type and turned into a request
/// here, without panicking: `lambda_http`'s own conversion panics on a query string it cannot
/// put in a URI (a raw `"<>`, or one over 64 KiB), before any handler runs — anyone could page
/// the on-call that way. Such a request is answered 400 like every other bad request.
pub async fn serve_function_url<A, F>(app: &A, handle: F) -> Result<(), lambda_runtime::Error>
where
    F: AsyncFn(&A, Request) -> Response<Body>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            let (event, context) = event.into_parts();
            let response = match function_url_request(event, context) {
                Ok(request) => handle(app, request).await,
                Err(error) => {
                    tracing::info!(outcome = "rejected", status = 400, detail = %error, "request refused before the handler");
                    error_response(&error)
                }
            };
            Ok::<_, std::convert::Infallible>(function_url_response(response))
        },
    ))
    .await
}

/// The request a handler sees for a Function URL event: method, URI (path and raw query),
/// headers, body (base64 decoded), query parameters as AWS decoded them, and the Lambda context.
pub fn function_url_request(
    event: LambdaFunctionUrlRequest,
    context: lambda_runtime::Context,
) -> Result<Request, Error> {
    let method = event
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or("POST")
        .parse::<Method>()
        .map_err(|_| Error::BadRequest("the request method is not valid".into()))?;
    let path = event.raw_path.as_deref().unwrap_or("/");
    let mut target = path.to_owned();
    if let Some(query) = event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(query);
    }
    let uri = target
        .parse::<Uri>()
        .map_err(|_| Error::BadRequest("the query string is not a valid URI query".into()))?;
    let body = match event.body {
        None => Body::Empty,
        Some(text) if event.is_base64_encoded => Body::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| Error::BadRequest("the body is not valid base64".into()))?,
        ),
        Some(text) => Body::Text(text),
    };
    let mut request = lambda_http::http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = event.headers;
    Ok(request
        .with_query_string_parameters(event.query_string_parameters)
        .with_lambda_context(context))
}

/// The Function URL response for a handler's response (bodies are UTF-8 JSON; anything else is
/// sent base64-encoded).
pub fn function_url_response(response: Response<Body>) -> LambdaFunctionUrlResponse {
    let (parts, body) = response.into_parts();
    let (body, is_base64_encoded) = match body {
        Body::Empty => (None, false),
        Body::Text(text) => (Some(text), false),
        Body::Binary(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (Some(text), false),
            Err(e) => (
                Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
                true,
            ),
        },
        _ => (None, false),
    };
    let mut out = LambdaFunctionUrlResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = body;
    out.is_base64_encoded = is_base64_encoded;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(query: &str) -> LambdaFunctionUrlRequest {
        serde_json::from_value(serde_json::json!({
            "version": "2.0", "rawPath": "/", "rawQueryString": query,
            "headers": {"content-type": "application/json"},
            "queryStringParameters": {"feature": "a"},
            "requestContext": {
                "accountId": "anonymous", "apiId": "a", "domainName": "a.lambda-url.us-east-1.on.aws",
                "domainPrefix": "a", "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000u64,
                "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"}},
            "body": "eyJhIjoxfQ==", "isBase64Encoded": true
        }))
        .unwrap()
    }

    #[test]
    fn hostile_query_strings_are_bad_requests_not_panics() {
        for query in ["a=\"<>", &"a".repeat(70 * 1024), "x=%%"] {
            match function_url_request(event(query), lambda_runtime::Context::default()) {
                Err(e) => assert_eq!(e.status(), 400),
                Ok(req) => assert!(req.uri().query().is_some(), "{query:.40}"),
            }
        }
        let err =
            function_url_request(event("a=\"<>"), lambda_runtime::Context::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad request: the query string is not a valid URI query"
        );
    }

    #[test]
    fn a_normal_event_keeps_its_parts() {
        let req = function_url_request(
            event("feature=a&environment=b"),
            lambda_runtime::Context::default(),
        )
        .unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().query(), Some("feature=a&environment=b"));
        assert_eq!(req.query_string_parameters().first("feature"), Some("a"));
        assert!(matches!(req.body(), Body::Binary(b) if b == br#"{"a":1}"#));
        let response = function_url_response(
            lambda_http::http::Response::builder()
                .status(202)
                .body(Body::from("{}"))
                .unwrap(),
        );
        assert_eq!(response.status_code, 202);
        assert_eq!(response.body.as_deref(), Some("{}"));
    }
}
