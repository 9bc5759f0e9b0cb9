//! The kill switch's routes: which of its three endpoints a request is for, decided once, and
//! the one check of a request's shape and signature that knows what each route expects
//! ([`Route::check`]), made before the route's handler reads anything. The alert pipeline is
//! [`crate::alert`]; the alert rule's form (drop-downs and the save check) is
//! [`crate::rule_form`].

use std::time::SystemTime;

use bridge_platform::frame::Frame;
use bridge_platform::{request, Error, Result};
use bridge_sentry::webhook;
use lambda_http::http::Method;
use lambda_http::Request;

use crate::app::App;
use crate::rule_form::options::List;
use crate::rule_form::save::settings;

/// The endpoint a request is for, read from its path alone (before anything is verified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A Sentry alert webhook (any other path): the alert pipeline.
    Alert,
    /// A drop-down's choices for the alert rule's form (`GET …/options/<list>`).
    DropDown(List),
    /// Sentry's check of an alert rule's settings when the rule is saved (`…/rule-action`).
    RuleSave,
}

impl Route {
    /// The route of `req`.
    pub fn of(req: &Request) -> Route {
        let path = req.uri().path();
        if let Some(list) = List::from_path(path) {
            Route::DropDown(list)
        } else if path.ends_with(settings::PATH_SUFFIX) {
            Route::RuleSave
        } else {
            Route::Alert
        }
    }

    /// Whether Sentry shows the user this route's error `message` (a refused rule's settings or
    /// drop-down).
    pub fn shows_message(self) -> bool {
        !matches!(self, Route::Alert)
    }

    /// Checks `req` as this route expects it, in this order, each failure its own 4xx: the
    /// method; for a `POST`, a JSON content type and the body's size; the signature header
    /// (`Sentry-Hook-Signature` for an alert, `Sentry-App-Signature` for the rule's form) over the
    /// body (a drop-down's `GET` signs the empty body); for an alert, then the delivery's age.
    pub async fn check<'r>(
        self,
        app: &App,
        req: &'r Request,
        arrived: tokio::time::Instant,
    ) -> Result<Inbound<'r>> {
        let body = match self {
            Route::DropDown(_) if req.method() == Method::GET => &[][..],
            Route::DropDown(_) => return Err(Error::MethodNotAllowed(req.method().to_string())),
            Route::Alert | Route::RuleSave => {
                request::require_post(req)?;
                request::require_json(req)?;
                request::body_bytes(req, app.config.max_body_bytes)?
            }
        };
        let (resource, signature) = match self {
            Route::Alert => (
                request::header_text(req, webhook::RESOURCE_HEADER)?,
                request::header_text(req, webhook::HOOK_SIGNATURE_HEADER)?,
            ),
            _ => (
                None,
                request::header_text(req, webhook::APP_SIGNATURE_HEADER)?,
            ),
        };
        app.verify_signature(body, signature).await?;
        let inbound = Inbound {
            frame: Frame::new(req, body).arrived_at(arrived),
            signature,
            // Logged only once the sender is known to be Sentry, and bounded.
            resource: resource.map(|r| r.chars().take(64).collect()),
        };
        if self == Route::Alert {
            let timestamp = request::header_text(req, webhook::TIMESTAMP_HEADER)?;
            let age = app.config.max_webhook_age;
            webhook::verify_timestamp(timestamp, age, SystemTime::now())?;
        }
        Ok(inbound)
    }
}

/// A request whose shape and signature [`Route::check`] found as its route expects.
#[derive(Debug)]
pub struct Inbound<'r> {
    /// The body (empty for a drop-down's `GET`: within the size cap and signed by Sentry), the
    /// query, Lambda's request id and the invocation's deadline.
    pub frame: Frame<'r>,
    /// The signature header's value (an alert's replay record key is its hash; never logged).
    pub signature: Option<&'r str>,
    /// `Sentry-Hook-Resource` (`event_alert`, `metric_alert`, …), bounded; alerts only.
    pub resource: Option<String>,
}
