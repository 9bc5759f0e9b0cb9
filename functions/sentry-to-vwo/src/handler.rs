//! The kill switch's request handler: verify, decide, toggle, answer, log.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bridge_shared::http::{self, error_response, ignored_response, json_response};
use bridge_shared::secrets::{ParameterSource, ParameterSpec, SecretCache, SsmParameters};
use bridge_shared::sentry_hook::{self, Envelope};
use bridge_shared::vwo::{TokenSource, VwoClient};
use bridge_shared::{telemetry, Error, Result};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::config::Config;
use crate::decision::{self, Decision, FlagChoice};
use crate::rule_action;

/// Function name used in metrics.
pub const FUNCTION: &str = "sentry-to-vwo";

/// Forced re-reads of the client secret after a signature mismatch happen at most this often, so
/// that unauthenticated requests cannot drive Parameter Store calls.
const SIGNATURE_REFRESH_MIN_AGE: Duration = Duration::from_secs(5);

/// Everything a warm function keeps between invocations.
#[derive(Debug)]
pub struct App {
    /// Configuration from the environment.
    pub config: Config,
    /// The client secret and the VWO token.
    pub secrets: SecretCache,
    /// VWO API client with its connection pool.
    pub vwo: VwoClient,
}

impl App {
    /// An app reading its secrets from `source`.
    pub fn new(config: Config, source: Arc<dyn ParameterSource>) -> Result<Self> {
        let secrets = SecretCache::new(
            source,
            vec![
                ParameterSpec::required(config.client_secret_param.clone()),
                ParameterSpec::required(config.vwo_token_param.clone()),
            ],
            config.secret_ttl,
        );
        let vwo = VwoClient::new(config.vwo.clone())?;
        Ok(App {
            config,
            secrets,
            vwo,
        })
    }

    /// The production app: configuration from the environment, secrets from Parameter Store.
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let aws = bridge_shared::aws_config().await;
        App::new(config, Arc::new(SsmParameters::new(&aws)))
    }

    /// Cold-start work: read both secrets in one call and open the VWO connection, together.
    ///
    /// An SSM failure here is logged, not fatal: each request retries and answers 503 until
    /// Parameter Store answers.
    pub async fn warm_up(&self) {
        let (secrets, ()) = tokio::join!(self.secrets.refresh(), self.vwo.warm_up());
        if let Err(e) = secrets {
            tracing::error!(error = %e, "could not read secrets at cold start; will retry per request");
        }
    }
}

/// What one invocation did, logged as one line.
#[derive(Debug, Default)]
struct Report {
    resource: Option<String>,
    action: Option<String>,
    rule: Option<String>,
    feature: Option<String>,
    environment: Option<String>,
    vwo_status: Option<u16>,
    attempts: Option<u32>,
}

/// Handles one Function URL request. Never fails: every outcome is an HTTP answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut report = Report::default();
    let result = process(app, &req, &mut report).await;
    let (outcome, response, detail) = match result {
        Ok(Handled::Toggled { restore, response }) => (
            if restore { "restored" } else { "toggled" },
            response,
            String::new(),
        ),
        Ok(Handled::Ignored(reason)) => ("ignored", ignored_response(&reason), reason),
        Ok(Handled::Checked(message)) => (
            "checked",
            json_response(StatusCode::OK, &json!({ "message": message })),
            String::new(),
        ),
        Err(error) => (error.kind(), error_response(&error), error.to_string()),
    };
    tracing::info!(
        outcome,
        status = response.status().as_u16(),
        resource = report.resource.as_deref(),
        action = report.action.as_deref(),
        rule = report.rule.as_deref(),
        feature = report.feature.as_deref(),
        environment = report.environment.as_deref(),
        vwo_status = report.vwo_status,
        attempts = report.attempts,
        detail = detail.as_str(),
        "sentry webhook handled"
    );
    telemetry::emit_outcome_metric(FUNCTION, outcome);
    response
}

enum Handled {
    Toggled {
        restore: bool,
        response: Response<Body>,
    },
    Ignored(String),
    /// An alert rule's settings were checked (no flag switched).
    Checked(String),
}

async fn process(app: &App, req: &Request, report: &mut Report) -> Result<Handled> {
    let config = &app.config;
    http::require_post(req)?;
    http::require_json(req)?;
    let body = http::body_bytes(req, config.max_body_bytes)?;
    if req.uri().path().ends_with(rule_action::PATH_SUFFIX) {
        let signature = http::header_text(req, rule_action::SIGNATURE_HEADER)?;
        verify_signature(app, body, signature).await?;
        return rule_action::check_fields(body, &config.vwo.default_account).map(Handled::Checked);
    }
    report.resource = http::header_text(req, sentry_hook::RESOURCE_HEADER)?.map(str::to_owned);
    let signature = http::header_text(req, sentry_hook::SIGNATURE_HEADER)?;
    verify_signature(app, body, signature).await?;
    sentry_hook::verify_timestamp(
        http::header_text(req, sentry_hook::TIMESTAMP_HEADER)?,
        config.max_webhook_age,
        SystemTime::now(),
    )?;

    let envelope = Envelope::parse(body)?;
    let resource = report
        .resource
        .clone()
        .ok_or_else(|| Error::BadRequest("missing Sentry-Hook-Resource".into()))?;
    report.action = Some(envelope.action.chars().take(64).collect());
    report.rule = decision::alert_facts(&resource, &envelope).rule;

    let query = req.query_string_parameters();
    let choice = FlagChoice::from_pairs(
        ["feature", "environment", "isEnabled", "account"]
            .into_iter()
            .filter_map(|k| Some((k, query.first(k)?))),
    );
    let (target, enabled, restore) = match decision::decide(config, &resource, &envelope, choice)? {
        Decision::Ignore(reason) => return Ok(Handled::Ignored(reason)),
        Decision::Toggle {
            target,
            enabled,
            restore,
        } => (target, enabled, restore),
    };
    report.feature = Some(target.feature.clone());
    report.environment = Some(target.environment.clone());

    let token = TokenSource {
        secrets: &app.secrets,
        parameter: &config.vwo_token_param,
    };
    let reply = app.vwo.toggle(token, &target, enabled).await;
    if let Err(Error::Upstream { status, .. }) = &reply {
        report.vwo_status = *status;
    }
    let reply = reply?;
    report.vwo_status = Some(reply.status);
    report.attempts = Some(reply.attempts);
    let body = json!({
        "toggled": {
            "account": target.account,
            "environment": target.environment,
            "feature": target.feature,
            "isEnabled": enabled,
            "restore": restore,
            "vwoStatus": reply.status,
            "attempts": reply.attempts,
        }
    });
    Ok(Handled::Toggled {
        restore,
        response: json_response(StatusCode::OK, &body),
    })
}

/// Verifies the body's signature with the client secret; after a mismatch, the secret is
/// re-read once (it may have been rotated in Sentry) and checked again.
async fn verify_signature(app: &App, body: &[u8], signature: Option<&str>) -> Result<()> {
    let name = app.config.client_secret_param.as_str();
    app.secrets
        .check_with_refresh(&[name], SIGNATURE_REFRESH_MIN_AGE, |values| {
            let secret = values[0]
                .as_ref()
                .ok_or_else(|| Error::Secrets(format!("parameter {name} is not available")))?;
            sentry_hook::verify_signature(secret.expose().as_bytes(), body, signature)
        })
        .await
}
