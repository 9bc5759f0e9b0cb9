//! The kill switch's routes: which of its three endpoints a request is for, decided once, and
//! the handler of each endpoint that is not the alert pipeline ([`crate::alert`]).

pub mod drop_down;
pub mod rule_save;

use lambda_http::Request;

use crate::options::List;
use crate::rule_action;

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
        } else if path.ends_with(rule_action::PATH_SUFFIX) {
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
}
