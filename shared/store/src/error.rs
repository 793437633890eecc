//! Mapping SDK errors: conditional failures are outcomes, everything else is "unavailable".

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::{
    delete_item::DeleteItemOutput, put_item::PutItemOutput, update_item::UpdateItemOutput,
};
use aws_sdk_dynamodb::types::ConsumedCapacity;

use app::ports::StoreError;

use crate::meter::Kind;

pub(crate) fn sdk_error<E, R>(operation: &str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = format!("{operation}: {}", DisplayErrorContext(&e));
    tracing::warn!(error = %text, "DynamoDB call failed");
    StoreError(text)
}

/// Why a transaction was cancelled, one code per action in order ("None" for actions that were
/// fine), or None when the failure was not a cancellation.
pub(crate) fn cancellation_codes<R>(
    e: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// Whether action `index` of a cancelled transaction failed its condition.
pub(crate) fn condition_failed(codes: &[String], index: usize) -> bool {
    codes
        .get(index)
        .is_some_and(|c| c == "ConditionalCheckFailed")
}

/// Outputs of single-item writes, which all report their consumed capacity.
pub(crate) trait Consumed {
    fn consumed(&self) -> Option<&ConsumedCapacity>;
}

macro_rules! consumed {
    ($($output:ty),*) => {$(
        impl Consumed for $output {
            fn consumed(&self) -> Option<&ConsumedCapacity> {
                self.consumed_capacity()
            }
        }
    )*};
}

consumed!(PutItemOutput, UpdateItemOutput, DeleteItemOutput);

impl crate::Store {
    /// Meters a conditional single-item write and tells whether its condition held: Ok(false)
    /// when it did not, so that each caller says what a failed condition means for it.
    pub(crate) fn conditional<O, E, R>(
        &self,
        operation: &str,
        result: Result<O, SdkError<E, R>>,
    ) -> Result<bool, StoreError>
    where
        O: Consumed,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match result {
            Ok(out) => {
                self.meter.record(Kind::Write, out.consumed());
                Ok(true)
            }
            Err(e) => {
                // DynamoDB bills a refused write too, but reports no capacity with the error.
                self.meter.record(Kind::Write, None);
                let refused = e
                    .as_service_error()
                    .and_then(|se| se.code())
                    .is_some_and(|code| code == "ConditionalCheckFailedException");
                if refused {
                    Ok(false)
                } else {
                    Err(sdk_error(operation, e))
                }
            }
        }
    }
}
