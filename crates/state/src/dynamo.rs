//! DynamoDB conditional writes, read one way by every state store: a write whose condition did
//! not hold is `Ok(false)`, any other failure an [`Error::State`] naming the operation.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use bridge_platform::error::{Error, Result};

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

/// The item whose partition key ([`crate::keys::PARTITION_KEY`]) is `key` in `table`,
/// read strongly consistent; `None` when there is none. Errors name `what` was read.
pub async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    what: &str,
) -> Result<Option<Item>> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(crate::keys::key(key.to_owned())))
        .consistent_read(true)
        .send()
        .await
        .map(|output| output.item)
        .map_err(|e| Error::State(format!("GetItem ({what}): {}", DisplayErrorContext(&e))))
}

/// An `UpdateItem` of the item whose partition key is `key` in `table`: add the expressions.
pub fn update_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    client
        .update_item()
        .table_name(table)
        .set_key(Some(crate::keys::key(key.to_owned())))
}

/// Most keys DynamoDB's `BatchGetItem` takes in one call.
const MAX_BATCH_GET: usize = 100;

/// Most items DynamoDB's `BatchWriteItem` takes in one call.
const MAX_BATCH_WRITE: usize = 25;

/// How often a batch's unprocessed part is sent again before giving up.
const BATCH_ROUNDS: usize = 5;

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The items under `keys` (key maps) in `table`, read consistently, in batches of 100; what
/// DynamoDB leaves unprocessed is asked again (up to five rounds). `what` names the items in
/// errors.
pub async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    what: &str,
) -> Result<Vec<Item>> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let failed = |e: String| Error::State(format!("BatchGetItem ({what}): {e}"));
    let mut found = Vec::new();
    for chunk in keys.chunks(MAX_BATCH_GET) {
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(|e| failed(e.to_string()))?,
        );
        for _ in 0..BATCH_ROUNDS {
            let Some(keys) = pending.take() else { break };
            let answer = client
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
            found.extend(
                answer
                    .responses()
                    .and_then(|r| r.get(table))
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            pending = answer
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
    }
    Ok(found)
}

/// Writes `items` to `table` in batches of 25; what DynamoDB leaves unprocessed is sent again
/// (up to five rounds), and what is still left is an error. `what` names the items in errors.
pub async fn batch_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
    what: &str,
) -> Result<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let failed = |e: String| Error::State(format!("BatchWriteItem ({what}): {e}"));
    for chunk in items.chunks(MAX_BATCH_WRITE) {
        let mut pending = chunk
            .iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| failed(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        for _ in 0..BATCH_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let answer = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
            pending = answer
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(failed(format!("{} items left unprocessed", pending.len())));
        }
    }
    Ok(())
}
