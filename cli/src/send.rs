//! `bridge sign` and `bridge send`: sign a payload as Sentry does, and deliver it as Sentry or VWO would.

use std::time::{SystemTime, UNIX_EPOCH};

use bridge_shared::signature::sign_hex;
use bridge_shared::{Error, Result};

/// Who the delivery pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A Sentry integration webhook for this resource (`metric_alert`, ...): signed body.
    Sentry,
    /// A VWO webhook: the secret goes in `x-vwo-auth`.
    Vwo,
}

/// What the receiver answered.
#[derive(Debug)]
pub struct Delivery {
    /// HTTP status.
    pub status: u16,
    /// `Sentry-Hook-Error`, if any.
    pub hook_error: Option<String>,
    /// Response body.
    pub body: String,
}

/// Posts `payload` to `url` as `sender` would, authenticated with `secret`.
pub async fn send(
    url: &str,
    payload: &[u8],
    sender: Sender,
    resource: &str,
    secret: &str,
) -> Result<Delivery> {
    let client = reqwest::Client::new();
    let mut request = client.post(url).header("content-type", "application/json");
    request = match sender {
        Sender::Sentry => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            request
                .header("sentry-hook-resource", resource)
                .header("sentry-hook-timestamp", now.to_string())
                .header(
                    "sentry-hook-signature",
                    sign_hex(secret.as_bytes(), payload),
                )
                .header("request-id", format!("{:032x}", now))
        }
        Sender::Vwo => request.header("x-vwo-auth", secret),
    };
    let response = request
        .body(payload.to_vec())
        .send()
        .await
        .map_err(|e| Error::Upstream {
            service: "receiver",
            status: None,
            message: e.to_string(),
        })?;
    let status = response.status().as_u16();
    let hook_error = response
        .headers()
        .get("sentry-hook-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    Ok(Delivery {
        status,
        hook_error,
        body,
    })
}
