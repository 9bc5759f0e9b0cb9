//! The worker's pass over a deferred alert: the queue message back into a request's frame and
//! a verified alert, its stages from decide on run again ([`crate::alert::resume`]), and what
//! became of it.

use std::collections::HashMap;

use bridge_platform::frame::Frame;
use bridge_platform::Result;
use bridge_sentry::webhook::Envelope;
use lambda_http::aws_lambda_events::query_map::QueryMap;

use super::message::DeferredAlert;
use super::Pass;
use crate::alert::verify::Alert;
use crate::answer::{Handled, Report};
use crate::app::App;

/// Decides `deferred` (the queue message `id`) now: what became of it, and the report for the
/// log line. A body that no longer reads is an error.
pub async fn resume(
    app: &App,
    deferred: &DeferredAlert,
    id: &str,
) -> Result<(Result<Handled>, Report)> {
    let body = deferred.body(app.config.max_body_bytes)?;
    let alert = Alert {
        resource: deferred.resource.clone(),
        envelope: Envelope::parse(&body)?,
        replay: deferred.replay.clone(),
        pass: Pass::Resumed {
            arrived_ms: deferred.arrived_ms,
            attempt: deferred.attempt,
        },
    };
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in &deferred.query {
        query.entry(key.clone()).or_default().push(value.clone());
    }
    let frame = Frame {
        body: &body,
        query: QueryMap::from(query),
        request_id: id.to_owned(),
        deadline: None,
        arrived: tokio::time::Instant::now(),
    };
    Ok(crate::alert::resume(app, &frame, &alert).await)
}
