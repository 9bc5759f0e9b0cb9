//! Every answer the kill switch gives, built in one place: what a route handled (or the error it
//! met) becomes the HTTP response, the outcome logged and counted, and its detail.

use bridge_platform::request::{self, error_response, ignored_response, json_response};
use bridge_platform::Result;
use bridge_vwo::api::Reply;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::json;

use crate::alert::decide::decision::Decision;
use crate::alert::guard::dry_run;
use crate::alert::guard::test_notification::TestMarker;
use crate::routes::Route;
use crate::rule_form::options::Choice;
use crate::toggle::job::ToggleJob;

/// What one invocation did, logged as one line beside its outcome.
#[derive(Debug, Default)]
pub struct Report {
    /// `Sentry-Hook-Resource` (bounded), once the signature is verified.
    pub resource: Option<String>,
    /// The webhook's `action` (bounded).
    pub action: Option<String>,
    /// The alert rule's name.
    pub rule: Option<String>,
    /// The flag decided on.
    pub feature: Option<String>,
    /// The environment decided on.
    pub environment: Option<String>,
    /// VWO's status for the toggle.
    pub vwo_status: Option<u16>,
    /// Attempts VWO's toggle took.
    pub attempts: Option<u32>,
    /// For `@suspect`: how many suspects the alert's event named (1 when one was switched).
    pub suspects: Option<usize>,
}

/// What a route did with a request.
#[derive(Debug)]
pub enum Handled {
    /// VWO confirmed the flag's new state.
    Toggled {
        /// The job that was applied.
        job: ToggleJob,
        /// VWO's answer.
        reply: Reply,
    },
    /// Persisted on the toggle queue; the worker completes it.
    Queued {
        /// The job on the queue.
        job: ToggleJob,
        /// Seconds before the worker's first try.
        retry_in_secs: u64,
        /// Why the fast path did not complete it.
        reason: String,
    },
    /// The decision waits for its evidence on the queue (an `@suspect` alert): answered 202 at
    /// once, decided by the worker.
    Deferred {
        /// What it waits for.
        reason: String,
        /// Seconds before the worker's first try.
        retry_in_secs: u64,
    },
    /// Nothing to do, for this reason.
    Ignored(String),
    /// Taken note of, with nothing to switch (an issue's start, an issue's status): answered
    /// 2xx without `Sentry-Hook-Error`, as nothing went wrong.
    Noted(String),
    /// Refused by the guard rails (`KILLABLE_FLAGS`, `ENABLE_ALLOWED_IN`, the restore budget):
    /// never switched.
    Guarded(String),
    /// A dry run: VWO has the flag; nothing switched, the answer says what would be.
    DryRun {
        /// What would be done.
        message: String,
        /// The rehearsal's answer.
        response: Response<Body>,
    },
    /// A test notification: nothing switched, the answer says what a real alert would do.
    Tested {
        /// Which marker made it a test.
        marker: TestMarker,
        /// What a real alert of this rule would do.
        decision: Decision,
    },
    /// An alert rule's settings were checked (no flag switched): the message Sentry shows.
    Checked(String),
    /// A drop-down's choices.
    Options(Vec<Choice>),
    /// Several decisions of one alert (`SUSPECTS=all`), each handled or failed.
    Several(Vec<Result<Handled>>),
}

/// The outcome of several decisions of one alert: the first error when every one failed.
pub fn several(results: Vec<Result<Handled>>) -> Result<Handled> {
    if results.iter().all(Result::is_err) {
        if let Some(Err(first)) = results.into_iter().next() {
            return Err(first);
        }
        return Ok(Handled::Several(Vec::new()));
    }
    Ok(Handled::Several(results))
}

/// One invocation's answer: the outcome logged and counted, the response, and its detail.
#[derive(Debug)]
pub struct Answer {
    /// `toggled`, `restored`, `queued`, `deferred`, `ignored`, `guarded`, `tested`, `dry_run`, `checked`,
    /// `options`, or the error's kind.
    pub outcome: &'static str,
    /// What Sentry receives.
    pub response: Response<Body>,
    /// A line for the log (a reason, a count).
    pub detail: String,
}

impl Answer {
    /// Logs the answer and `report` as one line, `what` its message.
    pub fn log(&self, report: &Report, what: &str) {
        tracing::info!(
            outcome = self.outcome,
            status = self.response.status().as_u16(),
            resource = report.resource.as_deref(),
            action = report.action.as_deref(),
            rule = report.rule.as_deref(),
            feature = report.feature.as_deref(),
            environment = report.environment.as_deref(),
            vwo_status = report.vwo_status,
            attempts = report.attempts,
            suspects = report.suspects,
            detail = self.detail.as_str(),
            "{what}"
        );
    }
}

/// The answer to `result` on `route`, noting VWO's status in `report`.
pub fn respond(route: Route, result: Result<Handled>, report: &mut Report) -> Answer {
    match result {
        Ok(handled) => handled_answer(handled, report),
        Err(error) if route.shows_message() => {
            // Sentry shows the user `message` when a rule's settings or a drop-down's options
            // are refused.
            let body = json!({ "message": error.to_string(), "error": error.to_string() });
            let response =
                request::with_hook_error(json_response(error.status(), &body), &error.to_string());
            answer(error.kind(), response, error.to_string())
        }
        Err(error) => answer(error.kind(), error_response(&error), error.to_string()),
    }
}

fn answer(outcome: &'static str, response: Response<Body>, detail: String) -> Answer {
    Answer {
        outcome,
        response,
        detail,
    }
}

fn handled_answer(handled: Handled, report: &mut Report) -> Answer {
    match handled {
        Handled::Toggled { job, reply } => {
            report.vwo_status = Some(reply.status);
            report.attempts = Some(reply.attempts);
            let outcome = if job.restore { "restored" } else { "toggled" };
            answer(outcome, toggled(&job, &reply), String::new())
        }
        Handled::Queued {
            job,
            retry_in_secs,
            reason,
        } => answer("queued", queued(&job, retry_in_secs, &reason), reason),
        Handled::Deferred {
            reason,
            retry_in_secs,
        } => {
            let body = json!({ "deferred": { "reason": reason, "retryInSecs": retry_in_secs } });
            answer(
                "deferred",
                json_response(StatusCode::ACCEPTED, &body),
                reason,
            )
        }
        Handled::Ignored(reason) => answer("ignored", ignored_response(&reason), reason),
        Handled::Noted(note) => answer(
            "noted",
            json_response(StatusCode::OK, &json!({ "noted": note })),
            note,
        ),
        Handled::Guarded(reason) => answer("guarded", ignored_response(&reason), reason),
        Handled::Tested { marker, decision } => {
            let (message, response) = tested(marker, &decision);
            answer("tested", response, message)
        }
        Handled::DryRun { message, response } => answer("dry_run", response, message),
        Handled::Checked(message) => answer(
            "checked",
            json_response(StatusCode::OK, &json!({ "message": message })),
            String::new(),
        ),
        Handled::Options(choices) => answer(
            "options",
            json_response(StatusCode::OK, &json!(choices)),
            format!("{} choices", choices.len()),
        ),
        Handled::Several(results) => several_answer(results, report),
    }
}

/// One answer for several decisions: `{"suspects": [each decision's answer]}`, with the first
/// success's outcome and status (a toggle before a queued one before the rest).
fn several_answer(results: Vec<Result<Handled>>, report: &mut Report) -> Answer {
    let answers: Vec<Answer> = results
        .into_iter()
        .map(|r| respond(Route::Alert, r, report))
        .collect();
    let rank = |a: &Answer| match a.outcome {
        "toggled" => 0,
        "queued" => 1,
        _ => 2,
    };
    let lead = answers.iter().min_by_key(|a| rank(a));
    let (outcome, status) = lead.map_or(("ignored", StatusCode::OK), |a| {
        (a.outcome, a.response.status())
    });
    let bodies: Vec<serde_json::Value> = answers
        .iter()
        .map(|a| match a.response.body() {
            lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap_or_default(),
            _ => serde_json::Value::Null,
        })
        .collect();
    let detail = answers
        .iter()
        .map(|a| format!("{}: {}", a.outcome, a.detail))
        .collect::<Vec<_>>()
        .join("; ");
    answer(
        outcome,
        json_response(status, &json!({ "suspects": bodies })),
        detail,
    )
}

fn toggled(job: &ToggleJob, reply: &Reply) -> Response<Body> {
    let mut body = json!({
        "toggled": {
            "account": job.target.account,
            "environment": job.target.environment,
            "feature": job.target.feature,
            "isEnabled": job.enabled,
            "restore": job.restore,
            "vwoStatus": reply.status,
            "attempts": reply.attempts,
        }
    });
    if let Some(rule) = &job.target.rule {
        body["toggled"]["rule"] = json!(rule);
    }
    if let Some(change) = &job.suspect {
        body["toggled"]["suspect"] = json!({ "flag": job.target.feature, "change": change });
    }
    json_response(StatusCode::OK, &body)
}

fn queued(job: &ToggleJob, retry_in_secs: u64, reason: &str) -> Response<Body> {
    let body = json!({
        "queued": {
            "account": job.target.account,
            "environment": job.target.environment,
            "feature": job.target.feature,
            "isEnabled": job.enabled,
            "restore": job.restore,
            "generation": job.generation,
            "retryInSecs": retry_in_secs,
            "reason": reason,
        }
    });
    json_response(StatusCode::ACCEPTED, &body)
}

/// The answer to a test notification: 200, what a real alert of this rule would do, in the body
/// and in `Sentry-Hook-Error` (kept in the integration's request log).
fn tested(marker: TestMarker, decision: &Decision) -> (String, Response<Body>) {
    let message = format!("test notification: would {}", decision.describe());
    let would = dry_run::would_toggle(decision);
    let body = json!({
        "tested": { "message": message, "marker": marker.describe(), "wouldToggle": would }
    });
    let response = request::with_hook_error(json_response(StatusCode::OK, &body), &message);
    (format!("{message} [{}]", marker.describe()), response)
}

/// Why a job was dropped: a later decision for its flag was accepted.
pub fn superseded(job: &ToggleJob, latest: u64) -> String {
    format!(
        "a later decision for {} in {} was accepted (generation {latest} > {})",
        job.target.feature, job.target.environment, job.generation
    )
}
