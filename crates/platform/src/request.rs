//! Function URL request checks and JSON responses shared by both functions.

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Default cap on request bodies: 256 KiB, far above any Sentry or VWO webhook.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Longest header value accepted from a caller.
pub const MAX_HEADER_BYTES: usize = 1024;

/// Response header that Sentry records in the integration's request log.
pub const SENTRY_HOOK_ERROR: &str = "sentry-hook-error";

/// Accepts `POST` only.
pub fn require_post(req: &Request) -> Result<()> {
    if req.method() == Method::POST {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed(req.method().to_string()))
    }
}

/// Parses a verified webhook body into `T`; anything but one JSON object is a bad request
/// saying the body is not `what` (e.g. "a VWO webhook").
pub fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    let bad = |e: String| Error::BadRequest(format!("body is not {what}: {e}"));
    // Objects only: serde would also fill a struct from an array, field by field.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(bad("not a JSON object".into()));
    }
    // Parsing straight into the struct makes a repeated top-level field an error.
    serde_json::from_slice(body).map_err(|e| bad(e.to_string()))
}

/// Accepts requests whose `Content-Type` is absent or JSON (`application/json`, any parameters).
pub fn require_json(req: &Request) -> Result<()> {
    match header_text(req, "content-type")? {
        None => Ok(()),
        Some(value) => {
            let media = value.split(';').next().unwrap_or_default().trim();
            if media.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(Error::UnsupportedMediaType(
                    value.chars().take(64).collect(),
                ))
            }
        }
    }
}

/// The raw body bytes (base64 already decoded by the runtime), refused above `limit` bytes.
pub fn body_bytes(req: &Request, limit: usize) -> Result<&[u8]> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > limit {
        return Err(Error::PayloadTooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// A header as text, `None` when absent. Refuses values that repeat, are not visible ASCII,
/// or are longer than [`MAX_HEADER_BYTES`].
pub fn header_text<'r>(req: &'r Request, name: &str) -> Result<Option<&'r str>> {
    let mut values = req.headers().get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::BadRequest(format!(
            "header {name} appears more than once"
        )));
    }
    if value.len() > MAX_HEADER_BYTES {
        return Err(Error::BadRequest(format!("header {name} is too long")));
    }
    value
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| Error::BadRequest(format!("header {name} is not ASCII text")))
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Adds `Sentry-Hook-Error: reason` (shortened to a header-safe line) to a response.
pub fn with_hook_error(mut response: Response<Body>, reason: &str) -> Response<Body> {
    let line: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect();
    if let Ok(value) = HeaderValue::from_str(&line) {
        response.headers_mut().insert(SENTRY_HOOK_ERROR, value);
    }
    response
}

/// The response for an error: its status, `{"error": message}` and a `Sentry-Hook-Error` header,
/// with [`Error::public_message`] (internal details stay in the log).
pub fn error_response(error: &Error) -> Response<Body> {
    let message = error.public_message();
    with_hook_error(
        json_response(error.status(), &json!({ "error": message })),
        &message,
    )
}

/// The response for a webhook that was accepted but needs no action: 200 `{"ignored": reason}`.
pub fn ignored_response(reason: &str) -> Response<Body> {
    with_hook_error(
        json_response(StatusCode::OK, &json!({ "ignored": reason })),
        &format!("ignored: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, body: &str) -> Request {
        lambda_http::http::Request::builder()
            .method(method)
            .header("x-a", "value")
            .body(Body::from(body))
            .unwrap()
    }

    #[test]
    fn only_post_is_accepted() {
        assert!(require_post(&request("POST", "")).is_ok());
        assert_eq!(require_post(&request("GET", "")).unwrap_err().status(), 405);
    }

    #[test]
    fn only_json_content_types_are_accepted() {
        let with = |ct: &str| {
            lambda_http::http::Request::builder()
                .header("content-type", ct)
                .body(Body::Empty)
                .unwrap()
        };
        assert!(require_json(&request("POST", "")).is_ok());
        assert!(require_json(&with("application/json; charset=utf-8")).is_ok());
        assert!(require_json(&with("Application/JSON")).is_ok());
        assert_eq!(require_json(&with("text/plain")).unwrap_err().status(), 415);
        assert_eq!(
            require_json(&with("application/x-www-form-urlencoded"))
                .unwrap_err()
                .status(),
            415
        );
    }

    #[test]
    fn bodies_over_the_cap_are_refused() {
        let req = request("POST", "12345");
        assert_eq!(body_bytes(&req, 5).unwrap(), b"12345");
        assert_eq!(body_bytes(&req, 4).unwrap_err().status(), 413);
    }

    #[test]
    fn headers_are_read_with_limits() {
        let req = request("POST", "");
        assert_eq!(header_text(&req, "x-a").unwrap(), Some("value"));
        assert_eq!(header_text(&req, "x-b").unwrap(), None);
        let long = lambda_http::http::Request::builder()
            .header("x-a", "a".repeat(MAX_HEADER_BYTES + 1))
            .body(Body::Empty)
            .unwrap();
        assert_eq!(header_text(&long, "x-a").unwrap_err().status(), 400);
        let twice = lambda_http::http::Request::builder()
            .header("x-a", "1")
            .header("x-a", "2")
            .body(Body::Empty)
            .unwrap();
        assert_eq!(header_text(&twice, "x-a").unwrap_err().status(), 400);
    }

    #[test]
    fn error_responses_are_json_with_a_hook_error_header() {
        let response = error_response(&Error::Unauthorized("bad signature"));
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[SENTRY_HOOK_ERROR],
            "unauthorized: bad signature"
        );
        let Body::Text(text) = response.body() else {
            panic!("text body expected")
        };
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["error"], "unauthorized: bad signature");
    }
}
