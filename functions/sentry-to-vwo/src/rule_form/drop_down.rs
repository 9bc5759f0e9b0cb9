//! The drop-downs of the alert rule's form: Sentry's `GET` of a list's choices, signed over the
//! empty body and verified before routing ([`crate::routes::Route::check`]), so before the
//! query is read.

use bridge_platform::frame::Frame;
use bridge_platform::{Error, Result};

use crate::app::App;
use crate::rule_form::options::{self, Choice, List};

/// The choices of `list` for this verified request's query (the environment picked so far).
pub async fn choices(app: &App, frame: &Frame<'_>, list: List) -> Result<Vec<Choice>> {
    let query = &frame.query;
    let asked = options::asked(|name| query.first(name))?;
    let catalog = app.catalog().ok_or_else(|| {
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
