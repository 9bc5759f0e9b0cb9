//! Hostile and malformed requests: each gets its status, a JSON error that says what is wrong
//! (also in `Sentry-Hook-Error`, for Sentry's request log), and reaches nobody (no VWO call).
//! Each case is a good signed alert spoiled one way.

use testkit::{function_url_event, hmac_hex, now_secs, sample};

use crate::handler::{send, setup, Ctx, FLAG_QUERY};

/// One request and what it must get.
struct Bad {
    name: &'static str,
    method: &'static str,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
    message: &'static str,
}

impl Bad {
    /// A good alert `body`, signed with `ctx`'s secret now, for the flag in [`FLAG_QUERY`].
    fn alert(ctx: &Ctx, name: &'static str, body: Vec<u8>) -> Bad {
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("sentry-hook-resource", "metric_alert".to_owned()),
            ("sentry-hook-timestamp", now_secs().to_string()),
            ("sentry-hook-signature", hmac_hex(&ctx.secret, &body)),
        ];
        Bad {
            name,
            method: "POST",
            query: FLAG_QUERY.into(),
            headers: headers.map(|(k, v)| (k.to_owned(), v)).to_vec(),
            body,
            status: 0,
            message: "",
        }
    }

    /// The request with header `name` set to `value`.
    fn with(mut self, name: &str, value: impl Into<String>) -> Bad {
        self = self.without(name);
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The request without header `name`.
    fn without(mut self, name: &str) -> Bad {
        self.headers.retain(|(k, _)| k != name);
        self
    }

    /// What it must get: `status`, and an answer saying `message`.
    fn gets(mut self, status: u16, message: &'static str) -> Bad {
        (self.status, self.message) = (status, message);
        self
    }
}

/// Sends each case to a kill switch that accepts bodies up to 4 KiB; asserts what it got.
async fn assert_refused(name: &str, cases: impl Fn(&Ctx) -> Vec<Bad>) {
    let ctx = setup(name, &[("MAX_BODY_BYTES", "4096")]).await;
    for case in cases(&ctx) {
        let h: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let event = function_url_event(case.method, &case.query, &h, &case.body, false);
        let (status, response, raw) = send(&ctx, event).await;
        assert_eq!(status, case.status, "{}: {response}", case.name);
        let text = response["error"]
            .as_str()
            .or(response["ignored"].as_str())
            .unwrap_or_default();
        assert!(text.contains(case.message), "{}: {response}", case.name);
        let hook_error = raw.headers()["sentry-hook-error"].to_str().unwrap();
        let said = hook_error.contains(case.message);
        assert!(said, "{}: {hook_error}", case.name);
        assert!(
            ctx.vwo.requests().is_empty(),
            "{}: VWO was called",
            case.name
        );
    }
}

fn critical() -> Vec<u8> {
    sample("sentry/metric_alert.critical.json")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_signature_or_timestamp_is_401() {
    assert_refused("bad-signature", |ctx| {
        let good = hmac_hex(&ctx.secret, &critical());
        let alert = |name| Bad::alert(ctx, name, critical());
        let sig = "sentry-hook-signature";
        let at = "sentry-hook-timestamp";
        let invalid = "invalid Sentry-Hook-Signature";
        vec![
            alert("no signature")
                .without(sig)
                .gets(401, "missing Sentry-Hook-Signature"),
            alert("empty signature").with(sig, "").gets(401, invalid),
            alert("uppercase hex")
                .with(sig, good.to_uppercase())
                .gets(401, invalid),
            alert("wrong length")
                .with(sig, &good[..63])
                .gets(401, invalid),
            alert("other secret")
                .with(sig, hmac_hex("other-secret", &critical()))
                .gets(401, invalid),
            alert("signature of another body")
                .with(sig, hmac_hex(&ctx.secret, b"{}"))
                .gets(401, invalid),
            alert("no timestamp")
                .without(at)
                .gets(401, "missing Sentry-Hook-Timestamp"),
            alert("non-numeric timestamp")
                .with(at, "yesterday")
                .gets(401, "not a Unix time"),
            alert("stale timestamp")
                .with(at, (now_secs() - 301).to_string())
                .gets(401, "too old"),
            alert("far-future timestamp")
                .with(at, (now_secs() + 3600).to_string())
                .gets(401, "in the future"),
        ]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_method_content_type_size_body_or_header_gets_its_status() {
    assert_refused("bad-shape", |ctx| {
        let alert = |name| Bad::alert(ctx, name, critical());
        let body = |name, body: &[u8]| Bad::alert(ctx, name, body.to_vec());
        let deep = format!(
            r#"{{"action":"critical","data":{}{}}}"#,
            "[".repeat(1500),
            "]".repeat(1500)
        );
        let json = "content-type";
        let resource = "sentry-hook-resource";
        let unsupported = "unsupported content type";
        let not_webhook = "not a Sentry webhook";
        vec![
            Bad {
                method: "GET",
                ..alert("GET")
            }
            .gets(405, "method GET not allowed"),
            Bad {
                method: "PUT",
                ..alert("PUT")
            }
            .gets(405, "method PUT not allowed"),
            alert("text/plain")
                .with(json, "text/plain")
                .gets(415, unsupported),
            alert("form content type")
                .with(json, "application/x-www-form-urlencoded")
                .gets(415, unsupported),
            body("body over the cap", &[b' '; 5000]).gets(413, "too large"),
            body("truncated JSON", &critical()[..critical().len() / 2]).gets(400, not_webhook),
            body(
                "duplicate keys",
                br#"{"action":"critical","action":"resolved","data":{}}"#,
            )
            .gets(400, "duplicate field"),
            body("JSON array", br#"["critical"]"#).gets(400, "not a JSON object"),
            body("nesting 1500 deep", deep.as_bytes()).gets(400, "recursion limit"),
            alert("header too long")
                .with(resource, "x".repeat(2000))
                .gets(400, "too long"),
            alert("no resource header")
                .without(resource)
                .gets(400, "missing Sentry-Hook-Resource"),
            alert("unknown resource")
                .with(resource, "seer")
                .gets(200, "seer.critical does not toggle (TOGGLE_ON)"),
        ]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_400_and_a_rule_without_a_flag_is_ignored() {
    assert_refused("bad-parameters", |ctx| {
        // Rule settings in the sample would override the query string: these use a plain body.
        let plain = |name, query: String| Bad {
            query,
            ..Bad::alert(ctx, name, br#"{"action":"critical","data":{}}"#.to_vec())
        };
        let no_settings =
            br#"{"action":"critical","data":{"metric_alert":{"alert_rule":{"name":"p95"}}}}"#;
        vec![
            plain(
                "path-traversal feature",
                "feature=../x&environment=production".into(),
            )
            .gets(400, "contains a slash"),
            plain(
                "dot-dot environment",
                "feature=checkout-new-flow&environment=..".into(),
            )
            .gets(400, "is not an identifier"),
            plain("isEnabled=2", format!("{FLAG_QUERY}&isEnabled=2"))
                .gets(400, "isEnabled must be 0 or 1"),
            Bad {
                query: String::new(),
                ..Bad::alert(ctx, "no flag configured", no_settings.to_vec())
            }
            .gets(200, "no flag configured"),
        ]
    })
    .await;
}
