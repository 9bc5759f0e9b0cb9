//! `bridge check`: can the deployed functions read their secrets and reach VWO with the token,
//! and what may the deployed kill switch switch (its guard rails, read from its configuration)?

use bridge_platform::Result;
use bridge_vwo::api::{api_url, DEFAULT_BASE_URL};

/// One finding, with the fix for a problem.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    /// Whether this is fine.
    pub ok: bool,
    /// What was checked and what was found.
    pub what: String,
    /// What to do about a problem.
    pub fix: Option<String>,
}

/// The parameters to check, by default under `/sentry-vwo-bridge`.
pub fn default_parameters(prefix: &str) -> Vec<(String, &'static str)> {
    let p = prefix.trim_end_matches('/');
    vec![
        (
            format!("{p}/sentry-client-secret"),
            "the Sentry internal integration's Client Secret",
        ),
        (
            format!("{p}/vwo-api-token"),
            "a VWO API token (VWO → Integrations → API tokens)",
        ),
        (
            format!("{p}/vwo-webhook-secret"),
            "the x-vwo-auth secret VWO shows for the environment's webhook",
        ),
        (
            format!("{p}/sentry-signing-secret"),
            "the secret registered for Sentry's Generic flag provider",
        ),
    ]
}

/// Checks every parameter, then the VWO token against a read-only endpoint.
pub async fn run(
    parameters: &[(String, &'static str)],
    token_param: &str,
    vwo_base: Option<&str>,
    account: &str,
) -> Result<Vec<Finding>> {
    let client = crate::secrets_io::ssm().await;
    let names: Vec<String> = parameters.iter().map(|(n, _)| n.clone()).collect();
    let mut findings = Vec::new();
    let output = match client
        .get_parameters()
        .set_names(Some(names))
        .with_decryption(true)
        .send()
        .await
    {
        Ok(output) => output,
        Err(e) => {
            findings.push(Finding {
                ok: false,
                what: crate::failure::aws("Parameter Store is not readable", &e),
                fix: Some("check AWS credentials and region (AWS_PROFILE, AWS_REGION) and ssm:GetParameters permission".into()),
            });
            return Ok(findings);
        }
    };
    let mut token = None;
    for (name, describes) in parameters {
        match output.parameters().iter().find(|p| p.name() == Some(name.as_str())) {
            None => findings.push(Finding {
                ok: false,
                what: format!("{name}: missing"),
                fix: Some(format!("aws ssm put-parameter --type SecureString --name {name} --value '<{describes}>'")),
            }),
            Some(p) if p.r#type() != Some(&aws_sdk_ssm::types::ParameterType::SecureString) => findings.push(Finding {
                ok: false,
                what: format!("{name}: stored as {}, not SecureString", p.r#type().map_or("an unknown type", |t| t.as_str())),
                fix: Some(format!("aws ssm put-parameter --overwrite --type SecureString --name {name} --value '<{describes}>'")),
            }),
            Some(p) => {
                if name == token_param {
                    token = p.value().map(str::to_owned);
                }
                findings.push(Finding { ok: true, what: format!("{name}: present (SecureString)"), fix: None });
            }
        }
    }
    let Some(token) = token else {
        return Ok(findings);
    };
    let base = url::Url::parse(vwo_base.unwrap_or(DEFAULT_BASE_URL))
        .map_err(|e| bridge_platform::Error::Config(e.to_string()))?;
    let mut url = api_url(&base, &["accounts", account, "features"])?;
    url.query_pairs_mut().append_pair("limit", "1");
    let answer = bridge_platform::tls::client()?
        .get(url)
        .header("token", token)
        .header("accept", "application/json")
        .send()
        .await;
    findings.push(match answer {
        Ok(r) if r.status().is_success() => Finding { ok: true, what: format!("VWO accepts the token (workspace {account})"), fix: None },
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Finding {
            ok: false,
            what: format!("VWO rejected the token: HTTP {}", r.status().as_u16()),
            fix: Some(format!("create a new token in VWO and put it: aws ssm put-parameter --overwrite --type SecureString --name {token_param} --value '<token>'")),
        },
        Ok(r) => Finding {
            ok: false,
            what: format!("VWO answered HTTP {}", r.status().as_u16()),
            fix: Some(format!("check the workspace id ({account}) and VWO's status page")),
        },
        Err(e) => Finding { ok: false, what: format!("VWO could not be reached: {}", crate::failure::root_cause(&e)), fix: Some("check the network and VWO_API_BASE_URL".into()) },
    });
    Ok(findings)
}

/// The deployed kill switch's guard rails, read from its configuration
/// (`lambda:GetFunctionConfiguration` on `function`, a name or ARN: the stack's
/// `KillSwitchFunctionName`) and parsed as the function parses them at start-up.
pub async fn guard_rails(function: &str) -> Vec<Finding> {
    let aws = bridge_platform::aws::aws_config().await;
    let client = aws_sdk_lambda::Client::new(&aws);
    let variables = match client
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
    {
        Ok(output) => output
            .environment
            .and_then(|e| e.variables)
            .unwrap_or_default(),
        Err(e) => {
            return vec![Finding {
                ok: false,
                what: crate::failure::aws("the kill switch's configuration is not readable", &e),
                fix: Some(format!("give the function's name or ARN (the stack's KillSwitchFunctionName output) and allow lambda:GetFunctionConfiguration on {function}")),
            }]
        }
    };
    guard_rail_findings(&|name: &str| variables.get(name).cloned())
}

/// [`guard_rails`] over the function's environment variables.
pub fn guard_rail_findings(vars: &dyn Fn(&str) -> Option<String>) -> Vec<Finding> {
    let config = match sentry_to_vwo::config::Config::from_vars(&vars) {
        Ok(config) => config,
        Err(e) => {
            return vec![Finding {
                ok: false,
                what: format!("the kill switch's configuration does not start: {e}"),
                fix: Some("correct the stack's parameter and deploy again".into()),
            }]
        }
    };
    let mut findings = vec![match &config.killable_flags {
        Some(list) => Finding {
            ok: true,
            what: format!("KILLABLE_FLAGS: only {} may be switched", list.text()),
            fix: None,
        },
        None => Finding {
            ok: false,
            what: "KILLABLE_FLAGS is empty: an alert rule may switch any flag in any environment"
                .into(),
            fix: Some(
                "set the stack's KillableFlags parameter, e.g. production:checkout-*,staging:*"
                    .into(),
            ),
        },
    }];
    findings.push(Finding {
        ok: true,
        what: match config.enable_allowed_in.text() {
            "" => "ENABLE_ALLOWED_IN is empty: no alert turns a flag on (isEnabled=1, restores and resumed rules are refused)".into(),
            list => format!("ENABLE_ALLOWED_IN: flags may be turned on in {list}"),
        },
        fix: None,
    });
    findings.push(Finding {
        ok: true,
        what: format!(
            "MAX_RESTORES_PER_DAY: at most {} automatic restores per flag in 24 hours",
            config.max_restores_per_day
        ),
        fix: None,
    });
    findings.push(suspect_finding(&config));
    if config.dry_run {
        findings.push(Finding {
            ok: false,
            what: "DRY_RUN is on: alerts are verified and answered, nothing is switched".into(),
            fix: Some("set the stack's DryRun parameter to false when the rules are right".into()),
        });
    }
    findings
}

/// What `@suspect` rules rest on, or why they switch nothing (the kill switch's start-up
/// warning).
fn suspect_finding(config: &sentry_to_vwo::config::Config) -> Finding {
    if let Some(warning) = sentry_to_vwo::app::suspect_warning(config) {
        return Finding {
            ok: false,
            what: warning,
            fix: Some(
                "deploy with SentryApiTokenParam (an internal integration's token, scope \
                 event:read), or subscribe the integration to issue webhooks and set \
                 SuspectEvidence=event"
                    .into(),
            ),
        };
    }
    let what = match &config.evidence.api {
        Some(api) => format!(
            "@suspect rules read the issue's start and events with the token of {} ({} organisation {})",
            api.token_param, api.base, api.org
        ),
        None => "@suspect rules rest on issue webhooks and the alert's event alone \
                 (SUSPECT_EVIDENCE=event)"
            .into(),
    };
    Finding {
        ok: true,
        what,
        fix: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn findings(extra: &[(&str, &str)]) -> Vec<Finding> {
        let mut vars: HashMap<String, String> = HashMap::from([
            (
                "SENTRY_CLIENT_SECRET_PARAM".into(),
                "/sentry-vwo-bridge/sentry-client-secret".into(),
            ),
            (
                "VWO_API_TOKEN_PARAM".into(),
                "/sentry-vwo-bridge/vwo-api-token".into(),
            ),
        ]);
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        guard_rail_findings(&|name: &str| vars.get(name).cloned())
    }

    #[test]
    fn the_guard_rails_are_printed_as_the_function_reads_them() {
        let all = findings(&[]);
        assert!(!all[0].ok, "{all:?}");
        assert!(all[0].what.contains("any flag"), "{all:?}");
        assert!(all[1].what.contains("no alert turns a flag on"), "{all:?}");
        let set = findings(&[
            ("KILLABLE_FLAGS", "production:checkout-*"),
            ("ENABLE_ALLOWED_IN", "staging"),
            ("DRY_RUN", "true"),
        ]);
        assert!(
            set[0].ok && set[0].what.contains("only production:checkout-*"),
            "{set:?}"
        );
        assert!(set[1].what.contains("turned on in staging"), "{set:?}");
        assert!(
            set.iter().any(|f| !f.ok && f.what.contains("DRY_RUN")),
            "{set:?}"
        );
        let bad = findings(&[("KILLABLE_FLAGS", "checkout")]);
        assert_eq!(bad.len(), 1);
        assert!(
            !bad[0].ok && bad[0].what.contains("KILLABLE_FLAGS"),
            "{bad:?}"
        );
    }

    #[test]
    fn what_suspect_rules_rest_on_is_said() {
        let said = |extra: &[(&str, &str)]| {
            let all = findings(extra);
            let f = all.iter().find(|f| f.what.contains("@suspect")).unwrap();
            (f.ok, f.what.clone())
        };
        let (ok, what) = said(&[]);
        assert!(!ok && what.contains("need STATE_TABLE"), "{what}");
        let (ok, what) = said(&[("STATE_TABLE", "t")]);
        assert!(
            !ok && what.contains("until the kill switch has a Sentry token"),
            "{what}"
        );
        let (ok, what) = said(&[("STATE_TABLE", "t"), ("SUSPECT_EVIDENCE", "event")]);
        assert!(
            ok && what.contains("issue webhooks and the alert's event alone"),
            "{what}"
        );
        let token = [
            ("STATE_TABLE", "t"),
            ("SENTRY_API_TOKEN_PARAM", "/b/sentry-api-token"),
            (
                "SENTRY_WEBHOOK_URL",
                "https://de.sentry.io/api/0/organizations/acme/flags/hooks/provider/generic/",
            ),
        ];
        let (ok, what) = said(&token);
        assert!(ok, "{what}");
        assert_eq!(what, "@suspect rules read the issue's start and events with the token of /b/sentry-api-token (https://de.sentry.io/ organisation acme)");
    }
}
