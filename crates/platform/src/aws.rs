//! The AWS SDK's configuration for every client of the bridge: its timeouts ([`aws_config`]) and
//! its HTTP client ([`sdk_http_client`]). The SDK's requests go through `reqwest` on the bridge's one TLS
//! configuration ([`crate::tls`]) instead of the SDK's own hyper/rustls client, which would
//! link a second crypto library and load the system's root certificates again at cold start.
//!
//! Requests of the services the bridge calls (SSM, DynamoDB, SQS: small JSON documents) are
//! in memory and are sent as they are; a streaming request body is refused rather than
//! buffered. Timeouts follow the SDK's connector settings: the connect timeout and the read
//! timeout (per request) become the `reqwest` client's; the SDK keeps enforcing its own
//! attempt and operation timeouts around each call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

use crate::tls;

/// The SDK client to hand to `aws_config` (`.http_client(...)`).
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// An SDK `HttpClient` making one `reqwest` client per distinct connector settings (in
/// practice one per process: every AWS client of the bridge uses [`aws_timeouts`]).
#[derive(Debug, Default)]
pub struct ReqwestHttpClient {
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(k, _)| *k == key) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(ReqwestConnector::new(key));
        connectors.push((key, connector.clone()));
        connector
    }
}

/// One `reqwest` client with the given connect and read timeouts; a client that cannot be
/// built turns every call into a connector error that says why.
#[derive(Debug, Clone)]
struct ReqwestConnector {
    client: Arc<std::result::Result<reqwest::Client, String>>,
}

impl ReqwestConnector {
    fn new((connect, read): Timeouts) -> Self {
        let client = tls::client_builder().and_then(|mut builder| {
            if let Some(connect) = connect {
                builder = builder.connect_timeout(connect);
            }
            if let Some(read) = read {
                builder = builder.read_timeout(read);
            }
            tls::build(builder)
        });
        ReqwestConnector {
            client: Arc::new(client.map_err(|e| e.to_string())),
        }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = match client.as_ref() {
                Ok(client) => client,
                Err(e) => return Err(ConnectorError::other(e.clone().into(), None)),
            };
            let request = into_reqwest(request)?;
            let response = client.execute(request).await.map_err(connector_error)?;
            from_reqwest(response).await
        })
    }
}

/// The SDK's request as a `reqwest` request; only in-memory bodies are supported.
fn into_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let bytes = body
        .bytes()
        .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?
        .to_vec();
    reqwest::Request::try_from(http::Request::from_parts(parts, bytes))
        .map_err(|e| ConnectorError::user(e.into()))
}

/// The `reqwest` response, body read in full, as the SDK's response.
async fn from_reqwest(response: reqwest::Response) -> Result<HttpResponse, ConnectorError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(connector_error)?;
    let mut http_response = http::Response::new(SdkBody::from(body));
    *http_response.status_mut() = status;
    *http_response.headers_mut() = headers;
    HttpResponse::try_from(http_response).map_err(|e| ConnectorError::other(e.into(), None))
}

/// Classifies a `reqwest` failure the way the SDK's retry strategy expects: timeouts and
/// connection failures are transient, the rest is not retried.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

/// Longest wait for one attempt of an AWS call (SSM, DynamoDB, SQS): they answer in
/// milliseconds; a hang must not eat the function's time.
pub const AWS_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Longest wait for one AWS call, the SDK's retries included: short enough that a cold start
/// whose secrets do not come still becomes ready well inside Lambda's 10 s init limit.
pub const AWS_OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// The shared AWS configuration from the standard chain (environment, profile, IMDS/Lambda),
/// with [`AWS_ATTEMPT_TIMEOUT`] and [`AWS_OPERATION_TIMEOUT`] (the SDK's defaults bound only the
/// connect).
///
/// `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SQS` point clients
/// at local stand-ins.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config_loader().load().await
}

/// The loader behind [`aws_config`], for callers that add settings of their own (an explicit
/// region or credentials): the bridge's timeouts and HTTP client ([`sdk_http_client`]) already set.
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(aws_timeouts())
        .http_client(sdk_http_client())
}

/// The timeouts every AWS client of the bridge uses.
pub fn aws_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(AWS_OPERATION_TIMEOUT)
        .build()
}
