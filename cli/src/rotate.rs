//! `bridge rotate`: put a new secret, keep the old one under `/previous`, say what to paste where.

use bridge_shared::{Error, Result};

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// Whether the old value was kept under `<name>/previous`.
    pub kept_previous: bool,
    /// The new value (printed only when asked).
    pub new_value: String,
}

/// Stores `new_value` under `name`, first copying the current value to `<name>/previous` if `keep_previous`.
pub async fn rotate(name: &str, new_value: &str, keep_previous: bool) -> Result<Rotation> {
    let client = crate::secrets_io::ssm().await;
    let current = crate::secrets_io::get_parameter(&client, name).await?;
    let put = |n: String, v: String| {
        let client = client.clone();
        async move {
            client
                .put_parameter()
                .name(&n)
                .value(v)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    Error::Secrets(format!(
                        "PutParameter {n}: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(&e)
                    ))
                })
        }
    };
    let kept_previous = match (keep_previous, current) {
        (true, Some(old)) if old != new_value => {
            put(format!("{name}/previous"), old).await?;
            true
        }
        _ => false,
    };
    put(name.to_owned(), new_value.to_owned()).await?;
    Ok(Rotation {
        kept_previous,
        new_value: new_value.to_owned(),
    })
}

/// Plain-words next steps for the rotated parameter.
pub fn next_steps(name: &str, kept_previous: bool) -> Vec<String> {
    let mut steps = Vec::new();
    let show = format!("aws ssm get-parameter --with-decryption --name {name} --query Parameter.Value --output text");
    if name.ends_with("vwo-webhook-secret") {
        steps.push(format!("Paste the new secret into each VWO environment's webhook settings (read it with: {show})."));
        if kept_previous {
            steps.push(format!("Both secrets are accepted now. When every environment uses the new one: aws ssm delete-parameter --name {name}/previous"));
        }
    } else if name.ends_with("vwo-api-token") {
        steps.push("The functions use the new token within SECRET_TTL_SECS (5 min), at once after VWO rejects the old one.".into());
        steps.push("Revoke the old token in VWO after that time.".into());
    } else if name.ends_with("sentry-client-secret") {
        steps.push("Rotate the Client Secret in Sentry's integration settings first, then put it here: the kill switch re-reads it on the first mismatch.".into());
    } else if name.ends_with("sentry-signing-secret") {
        steps.push(format!(
            "Set the same secret for the Generic provider in Sentry (read it with: {show})."
        ));
    } else {
        steps.push(format!("Read the new value with: {show}"));
    }
    steps
}
