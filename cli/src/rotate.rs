//! `bridge rotate`: put a new secret in Parameter Store and say what to paste where.
//!
//! Which secret it is decides what `rotate` may do: only the two secrets we choose ourselves can be
//! generated, and only the one a function reads a `/previous` copy of (the VWO webhook secret, so
//! that VWO environments can move to the new value one by one) keeps the old value.

use crate::failure::Failure;

/// The bridge's four secrets, told apart by the parameter name's last segment (any prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `x-vwo-auth` of VWO's webhooks: we choose it; change tracking also accepts `/previous`.
    VwoWebhookSecret,
    /// Signs change-tracking posts to Sentry: we choose it and paste it into Sentry.
    SentrySigningSecret,
    /// Issued by VWO.
    VwoApiToken,
    /// Issued by Sentry (the internal integration's Client Secret).
    SentryClientSecret,
}

impl Kind {
    /// The kind of parameter `name`, if it is one of the bridge's.
    pub fn of(name: &str) -> Option<Kind> {
        match name.rsplit('/').next().unwrap_or(name) {
            "vwo-webhook-secret" => Some(Kind::VwoWebhookSecret),
            "sentry-signing-secret" => Some(Kind::SentrySigningSecret),
            "vwo-api-token" => Some(Kind::VwoApiToken),
            "sentry-client-secret" => Some(Kind::SentryClientSecret),
            _ => None,
        }
    }

    /// Whether `--generate` may make the value (we choose it, rather than VWO or Sentry).
    pub fn we_choose(self) -> bool {
        matches!(self, Kind::VwoWebhookSecret | Kind::SentrySigningSecret)
    }

    /// Whether a function reads `<name>/previous` (so keeping the old value there means something).
    pub fn previous_is_read(self) -> bool {
        self == Kind::VwoWebhookSecret
    }

    /// Who issues a value we do not choose, and where to get it.
    fn issuer(self) -> &'static str {
        match self {
            Kind::VwoApiToken => "VWO issues the API token (VWO: Settings → Developers → API tokens)",
            Kind::SentryClientSecret => {
                "Sentry issues the Client Secret (Sentry: Settings → Custom Integrations → your integration)"
            }
            _ => "",
        }
    }
}

/// Checks that a rotation of `name` can be done as asked, before anything is read or written.
pub fn plan(name: &str, generate: bool) -> Result<Kind, Failure> {
    let Some(kind) = Kind::of(name) else {
        return Err(Failure::Usage(format!(
            "{name} is not one of the bridge's secrets: its name must end in vwo-webhook-secret, \
             sentry-signing-secret, vwo-api-token or sentry-client-secret"
        )));
    };
    if generate && !kind.we_choose() {
        return Err(Failure::Usage(format!(
            "{} and cannot be generated: save it to a file and use --value-file FILE",
            kind.issuer()
        )));
    }
    Ok(kind)
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// Whether the old value was kept under `<name>/previous`.
    pub kept_previous: bool,
    /// The new value (printed only when asked).
    pub new_value: String,
}

/// Stores `new_value` under `name`; first copies the current value to `<name>/previous` when a
/// function reads that copy and `keep_previous` is set.
pub async fn rotate(
    name: &str,
    kind: Kind,
    new_value: &str,
    keep_previous: bool,
) -> Result<Rotation, Failure> {
    let client = crate::secrets_io::ssm().await;
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
                .map_err(|e| Failure::Failed(crate::failure::aws(&format!("PutParameter {n}"), &e)))
        }
    };
    let mut kept_previous = false;
    if keep_previous && kind.previous_is_read() {
        if let Some(old) = crate::secrets_io::get_parameter(&client, name).await? {
            if old != new_value {
                put(format!("{name}/previous"), old).await?;
                kept_previous = true;
            }
        }
    }
    put(name.to_owned(), new_value.to_owned()).await?;
    Ok(Rotation {
        kept_previous,
        new_value: new_value.to_owned(),
    })
}

/// Plain-words next steps for the rotated parameter.
pub fn next_steps(name: &str, kind: Kind, kept_previous: bool) -> Vec<String> {
    let show = format!("aws ssm get-parameter --with-decryption --name {name} --query Parameter.Value --output text");
    let mut steps = Vec::new();
    match kind {
        Kind::VwoWebhookSecret => {
            steps.push(format!("Paste the new secret into each VWO environment's webhook settings (read it with: {show})."));
            if kept_previous {
                steps.push(format!("Both secrets are accepted now. When every environment uses the new one: aws ssm delete-parameter --name {name}/previous"));
            }
        }
        Kind::VwoApiToken => {
            steps.push("The functions use the new token within SECRET_TTL_SECS (5 min), at once after VWO rejects the old one.".into());
            steps.push("Revoke the old token in VWO after that time.".into());
        }
        Kind::SentryClientSecret => {
            steps.push("Rotate the Client Secret in Sentry's integration settings first, then put it here: the kill switch re-reads it on the first mismatch.".into());
        }
        Kind::SentrySigningSecret => {
            steps.push(format!(
                "Set the same secret for the Generic provider in Sentry (read it with: {show})."
            ));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secrets_we_choose_can_be_generated() {
        assert_eq!(
            plan("/p/vwo-webhook-secret", true).unwrap(),
            Kind::VwoWebhookSecret
        );
        assert_eq!(
            plan("/other/prefix/sentry-signing-secret", true).unwrap(),
            Kind::SentrySigningSecret
        );
        for issued in ["/p/vwo-api-token", "/p/sentry-client-secret"] {
            let refused = plan(issued, true).unwrap_err();
            assert!(matches!(refused, Failure::Usage(_)));
            assert!(refused.to_string().contains("--value-file"), "{refused}");
            assert!(plan(issued, false).is_ok());
        }
        assert!(matches!(
            plan("/p/something", false),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn only_the_webhook_secret_has_a_previous_copy_that_is_read() {
        for (name, read) in [
            ("/p/vwo-webhook-secret", true),
            ("/p/sentry-signing-secret", false),
            ("/p/vwo-api-token", false),
            ("/p/sentry-client-secret", false),
        ] {
            assert_eq!(Kind::of(name).unwrap().previous_is_read(), read, "{name}");
        }
    }
}
