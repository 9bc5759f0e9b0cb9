//! The alert rule's form in Sentry: the drop-downs that offer VWO's environments, flags and rules
//! ([`drop_down`] over [`options`], from the lists in [`catalog`]), and the check of the rule's
//! settings when it is saved ([`save`]).
//!
//! Both are Sentry's signed requests (`Sentry-App-Signature`), checked before routing
//! ([`crate::routes`]); neither switches a flag.

pub mod catalog;
pub mod drop_down;
pub mod options;
pub mod save;
