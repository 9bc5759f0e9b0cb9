//! The drop-downs of the alert rule's form: Sentry's `GET` of a list's choices, signed over the
//! empty body and verified before the query is read.

use bridge_platform::request;
use bridge_platform::{Error, Result};
use lambda_http::{Request, RequestExt};

use crate::app::App;
use crate::options::{self, Choice, List};
use crate::rule_action;

/// The choices of `list` for this request's query (the environment picked so far).
pub async fn choices(app: &App, req: &Request, list: List) -> Result<Vec<Choice>> {
    if req.method() != lambda_http::http::Method::GET {
        return Err(Error::MethodNotAllowed(req.method().to_string()));
    }
    let signature = request::header_text(req, rule_action::SIGNATURE_HEADER)?;
    app.verify_signature(b"", signature).await?;
    let query = req.query_string_parameters();
    let asked = options::asked(|name| query.first(name))?;
    let catalog = app.catalog.as_ref().ok_or_else(|| {
        Error::Config("the drop-downs need STATE_TABLE (their lists are cached there)".into())
    })?;
    let source = options::Source {
        catalog,
        vwo: &app.background_vwo,
        token: app.token(),
        account: &app.config.common.vwo.default_account,
        killable: app.guard_rails.killable.as_ref(),
    };
    options::choices(source, list, &asked).await
}
