//! Where the CLI reads secrets: a file, or Parameter Store. Values are never printed unless asked.

use std::path::Path;

use bridge_platform::{Error, Result};

/// An SSM client from the standard AWS chain (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_SSM`, ...).
pub async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&bridge_platform::aws::aws_config().await)
}

/// The first line of a file, trimmed.
pub fn from_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let value = text.lines().next().unwrap_or_default().trim().to_owned();
    if value.is_empty() {
        return Err(Error::Config(format!("{} is empty", path.display())));
    }
    Ok(value)
}

/// A parameter's decrypted value, `None` if it does not exist.
pub async fn get_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<Option<String>> {
    match client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::Secrets(crate::failure::aws(
            &format!("Parameter Store could not read {name}"),
            &e,
        ))),
    }
}

/// A secret from `--secret-file`, `--secret-param` or `--local-secret` (a name in the local
/// run's secrets file, e.g. `sentry_client_secret`).
pub async fn secret(
    file: Option<&Path>,
    param: Option<&str>,
    local: Option<(&str, &Path)>,
) -> Result<String> {
    match (file, param, local) {
        (Some(path), None, None) => from_file(path),
        (None, Some(name), None) => get_parameter(&ssm().await, name)
            .await?
            .ok_or_else(|| Error::Config(format!("the parameter {name} does not exist"))),
        (None, None, Some((name, secrets_file))) => local_secret(name, secrets_file),
        _ => Err(Error::Config(
            "give exactly one of --secret-file, --secret-param or --local-secret".into(),
        )),
    }
}

/// A value of the local run's secrets file, by name.
pub fn local_secret(name: &str, secrets_file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(secrets_file).map_err(|e| {
        Error::Config(format!(
            "cannot read {} ({e}); start `bridge local` once to create it",
            secrets_file.display()
        ))
    })?;
    let values: std::collections::HashMap<String, String> =
        serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{} is not the local secrets file: {e}",
                secrets_file.display()
            ))
        })?;
    values.get(name).cloned().ok_or_else(|| {
        let mut known: Vec<&str> = values.keys().map(String::as_str).collect();
        known.sort();
        Error::Config(format!(
            "{} has no {name:?}; it has {}",
            secrets_file.display(),
            known.join(", ")
        ))
    })
}

/// 32 random bytes as hex, from the operating system's generator (`getrandom`).
pub fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Config(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_32_random_bytes_in_hex() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
