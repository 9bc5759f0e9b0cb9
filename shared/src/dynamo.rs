//! DynamoDB conditional writes, read one way by every state store: a write whose condition did
//! not hold is `Ok(false)`, any other failure an [`Error::State`] naming the operation.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::{Error, Result};

/// Turns a conditional-check failure into `Ok(false)`, other errors into [`Error::State`]
/// (`"<what>: <code>: <message>"`).
pub fn condition<T, E, R>(
    what: &str,
    result: std::result::Result<T, SdkError<E, R>>,
) -> Result<bool>
where
    E: std::error::Error + ConditionalCheck + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed() => Ok(false),
        Err(e) => Err(Error::State(format!("{what}: {}", describe(&e)))),
    }
}

/// A short description of an SDK error: the service's code and message, or the transport failure.
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or_default()
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

/// Errors that can say "the condition did not hold".
pub trait ConditionalCheck {
    /// Whether this is a `ConditionalCheckFailedException`.
    fn is_conditional_check_failed(&self) -> bool;
}

macro_rules! conditional_check {
    ($($t:ty),*) => {$(
        impl ConditionalCheck for $t {
            fn is_conditional_check_failed(&self) -> bool {
                self.is_conditional_check_failed_exception()
            }
        }
    )*};
}

conditional_check!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

impl ConditionalCheck
    for aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError
{
    /// A transaction cancelled because one of its conditions did not hold.
    fn is_conditional_check_failed(&self) -> bool {
        match self {
            Self::TransactionCanceledException(e) => e
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed")),
            _ => false,
        }
    }
}
