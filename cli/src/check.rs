//! `bridge check`: can the deployed functions read their secrets and reach VWO with the token?

use bridge_shared::vwo::{api_url, DEFAULT_BASE_URL};
use bridge_shared::Result;

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
        .map_err(|e| bridge_shared::Error::Config(e.to_string()))?;
    let mut url = api_url(&base, &["accounts", account, "features"])?;
    url.query_pairs_mut().append_pair("limit", "1");
    let answer = bridge_shared::https::client()?
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
