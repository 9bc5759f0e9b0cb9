//! Why a `bridge` command did not succeed, as a sentence for people, and its exit code.
//!
//! One policy for every command:
//! - **0**: it did what was asked (for `check` and `dlq`: and found nothing wrong);
//! - **1**: it ran, and something outside it failed or was found wrong: a function answered an
//!   error, Parameter Store or a queue could not be read, `check` found a problem, `dlq` holds kills;
//! - **2**: it could not start: bad arguments, an unreadable file, an unknown secret name, a
//!   missing tool. Nothing was sent anywhere.

use std::process::ExitCode;

/// A command's failure; [`Failure::exit_code`] is the one place exit codes are decided.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command cannot run as given (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command ran and something it talks to failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Failed(_) => ExitCode::FAILURE,
        }
    }
}

impl From<bridge_platform::Error> for Failure {
    /// The shared crate's errors without their log prefixes: what the user gave is a usage
    /// problem, what a service did is a failure.
    fn from(error: bridge_platform::Error) -> Failure {
        use bridge_platform::Error as E;
        match error {
            E::Config(message) | E::BadRequest(message) => Failure::Usage(message),
            E::Secrets(message) | E::State(message) | E::Busy(message) => Failure::Failed(message),
            E::Upstream {
                service, message, ..
            } => Failure::Failed(format!("{service}: {message}")),
            other => Failure::Failed(other.to_string()),
        }
    }
}

/// The innermost cause of an error chain: what actually went wrong, without the wrappers
/// ("error sending request", "dispatch failure") that say only where.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// "nothing answered at <url> (<root cause>)<hint>": a request to `url` that got no answer.
pub fn unanswered(url: &str, error: &reqwest::Error, hint: &str) -> String {
    format!("nothing answered at {url} ({}){hint}", root_cause(error))
}

/// [`unanswered`] as the shared crate's upstream error from `service` (no status).
pub fn unanswered_by(
    service: &'static str,
    url: &str,
    error: &reqwest::Error,
    hint: &str,
) -> bridge_platform::Error {
    bridge_platform::Error::Upstream {
        service,
        status: None,
        message: unanswered(url, error, hint),
    }
}

/// An AWS SDK error as a sentence: the service's own code and message when it answered, else
/// why it could not be reached and what to check.
pub fn aws<E, R>(what: &str, error: &aws_sdk_ssm::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_ssm::error::SdkError;
    match error {
        SdkError::ServiceError(answer) => {
            let e = answer.err();
            format!(
                "{what}: {} ({})",
                e.message().unwrap_or("no message"),
                e.code().unwrap_or("error")
            )
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "{what}: AWS could not be reached ({}); check AWS_REGION, AWS_PROFILE or \
             AWS_ENDPOINT_URL and the network",
            root_cause(error)
        ),
        _ => format!("{what}: {}", root_cause(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_2_and_failures_are_1() {
        assert_eq!(Failure::Usage("x".into()).exit_code(), ExitCode::from(2));
        assert_eq!(Failure::Failed("x".into()).exit_code(), ExitCode::FAILURE);
    }

    #[test]
    fn shared_errors_lose_their_prefixes() {
        let f = Failure::from(bridge_platform::Error::Config("cannot read x".into()));
        assert!(matches!(&f, Failure::Usage(m) if m == "cannot read x"));
        let f = Failure::from(bridge_platform::Error::Secrets(
            "GetParameter p: denied".into(),
        ));
        assert_eq!(f.to_string(), "GetParameter p: denied");
        let f = Failure::from(bridge_platform::Error::Upstream {
            service: "VWO",
            status: Some(500),
            message: "HTTP 500".into(),
        });
        assert_eq!(f.to_string(), "VWO: HTTP 500");
    }

    #[test]
    fn the_root_cause_is_the_innermost_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(root_cause(&e), "connection refused");
    }
}
