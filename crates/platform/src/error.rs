//! The one error type of the bridge, and the one place where errors become HTTP statuses.

use lambda_http::http::StatusCode;

/// Everything that can go wrong while handling a webhook or starting a function.
///
/// Messages never contain a secret, token or signature: they are written to logs and
/// returned to callers as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The function's configuration (environment variables) is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The request used a method other than the one the endpoint accepts.
    #[error("method {0} not allowed: use POST")]
    MethodNotAllowed(String),
    /// The request's content type is not JSON.
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    /// The request body is larger than the configured cap.
    #[error("request body too large: {size} bytes, limit {limit}")]
    PayloadTooLarge {
        /// Bytes received.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The request is malformed (bad header, bad JSON, bad parameter).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Authentication of the caller failed (signature, timestamp or shared secret).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Parameter Store could not be read (and no cached value was available).
    #[error("secrets unavailable: {0}")]
    Secrets(String),
    /// An upstream service (VWO or Sentry) failed after retries.
    #[error("{service} failed: {message}")]
    Upstream {
        /// `VWO` or `Sentry`.
        service: &'static str,
        /// Last HTTP status received, if any.
        status: Option<u16>,
        /// What happened, without secrets.
        message: String,
    },
    /// An upstream service asked us to wait (429, or 503 for maintenance). VWO's guidance is
    /// to wait at least 60 s, longer than any webhook delivery should take. VWO's wait is the
    /// token's: it is recorded in the shared rate gate, and a caller that finds the token still
    /// waiting gets this error too, with the time left.
    #[error("{service} asked to wait{}", retry_after.map(|d| format!(" {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// `VWO` or `Sentry`.
        service: &'static str,
        /// The HTTP status (429 or 503) the service answered; `None` when it did not say.
        status: Option<u16>,
        /// How long to wait from now: `Retry-After` (at least VWO's 60 s), or what is left of a
        /// wait the token is under.
        retry_after: Option<std::time::Duration>,
    },
    /// No request slot was free in time: VWO allows one request per second per token (Sentry's
    /// issue read five per second per organisation), shared by
    /// every container through the rate gate (and kills come first). The service was not called.
    #[error("no {service} request slot free for {} s ({}{})", retry_after.as_secs().max(1), pace(service), if *kill_waiting { "; a kill is waiting for it" } else { "" })]
    SlotBusy {
        /// `VWO`.
        service: &'static str,
        /// When a slot may be free.
        retry_after: std::time::Duration,
        /// Whether a kill was waiting for the slot (a background caller yields to it).
        kill_waiting: bool,
    },
    /// The same signed delivery was already accepted (a replay within the signature window).
    #[error("this signed delivery was already accepted; a replay is refused")]
    Replayed,
    /// The state store (DynamoDB) failed.
    #[error("state store failed: {0}")]
    State(String),
    /// Another delivery is working on the same resource; the caller should retry later.
    #[error("busy: {0}")]
    Busy(String),
}

/// The pace a rate gate keeps for `service`.
fn pace(service: &str) -> &'static str {
    match service {
        "Sentry" => "five issue reads per second per organisation",
        _ => "one request per second per token",
    }
}

impl Error {
    /// Whether the far side refused a credential: an incoming request's signature or token
    /// ([`Error::Unauthorized`]), or VWO's or Sentry's 401/403 to ours.
    pub fn rejects_credential(&self) -> bool {
        matches!(
            self,
            Error::Unauthorized(_)
                | Error::Upstream {
                    status: Some(401 | 403),
                    ..
                }
        )
    }

    /// The HTTP status a caller receives for this error.
    ///
    /// 4xx only for requests that can never succeed (Sentry and VWO never retry those);
    /// 5xx for failures that a retry may cure, so that Sentry and VWO deliver again.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Replayed => StatusCode::CONFLICT,
            Error::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Error::Config(_)
            | Error::Secrets(_)
            | Error::State(_)
            | Error::Busy(_)
            | Error::RateLimited { .. }
            | Error::SlotBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short, stable name of the error kind, used as the `outcome` in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MethodNotAllowed(_)
            | Error::UnsupportedMediaType(_)
            | Error::PayloadTooLarge { .. }
            | Error::BadRequest(_)
            | Error::Unauthorized(_)
            | Error::Replayed => "rejected",
            Error::Busy(_) | Error::RateLimited { .. } | Error::SlotBusy { .. } => "busy",
            Error::Config(_) | Error::Secrets(_) | Error::Upstream { .. } | Error::State(_) => {
                "failed"
            }
        }
    }
}

impl Error {
    /// What a caller is told: the whole message for its own mistakes and for upstream answers,
    /// a short generic reason for our internal failures (an AWS SDK error names accounts, roles,
    /// ARNs and raw answers; those go to the log only).
    pub fn public_message(&self) -> String {
        match self {
            Error::Secrets(_) => "secrets unavailable; details are in the function's log".into(),
            Error::State(_) => {
                "state store unavailable; the request was not acted on (details in the log)".into()
            }
            Error::Config(_) => "the function is misconfigured; details are in its log".into(),
            other => other.to_string(),
        }
    }
}

/// Shorthand for results of the bridge.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx_and_retryable_failures_are_5xx() {
        assert_eq!(Error::Unauthorized("x").status(), 401);
        assert_eq!(Error::BadRequest("x".into()).status(), 400);
        assert_eq!(Error::MethodNotAllowed("GET".into()).status(), 405);
        assert_eq!(
            Error::PayloadTooLarge { size: 2, limit: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let upstream = Error::Upstream {
            service: "VWO",
            status: Some(503),
            message: "x".into(),
        };
        assert_eq!(upstream.status(), 502);
        assert_eq!(Error::Secrets("x".into()).status(), 503);
        assert_eq!(Error::Busy("x".into()).status(), 503);
        assert_eq!(Error::State("x".into()).status(), 503);
        let limited = Error::RateLimited {
            service: "VWO",
            status: Some(429),
            retry_after: Some(std::time::Duration::from_secs(60)),
        };
        assert_eq!(limited.status(), 503);
        assert_eq!(limited.to_string(), "VWO asked to wait 60 s");
        let busy = Error::SlotBusy {
            service: "VWO",
            retry_after: std::time::Duration::from_millis(300),
            kill_waiting: true,
        };
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.kind(), "busy");
        assert_eq!(
            busy.to_string(),
            "no VWO request slot free for 1 s (one request per second per token; a kill is waiting for it)"
        );
    }

    #[test]
    fn internal_failures_tell_callers_nothing_of_the_internals() {
        let dump = "GetParameters failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/x is not authorized";
        for error in [
            Error::Secrets(dump.into()),
            Error::State(dump.into()),
            Error::Config(dump.into()),
        ] {
            let public = error.public_message();
            assert!(
                !public.contains("arn:") && !public.contains("123456789012"),
                "{public}"
            );
        }
        assert_eq!(
            Error::Unauthorized("invalid x-vwo-auth").public_message(),
            "unauthorized: invalid x-vwo-auth"
        );
    }
}
