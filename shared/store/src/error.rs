//! Mapping SDK errors: conditional failures are outcomes, everything else is "unavailable".

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use app::ports::StoreError;

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
