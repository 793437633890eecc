//! SDK errors as `NotifyError`s: the operation and what the service said, nothing of the request.

use app::ports::NotifyError;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// "SendEmail: MessageRejected: Email address not verified ..." for a service error; for a
/// timeout or a connection failure, the SDK's own account of it (which has no request body).
pub(crate) fn sdk_error<E, R>(operation: &str, e: SdkError<E, R>) -> NotifyError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = match e.as_service_error() {
        Some(service) => format!(
            "{operation}: {}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("no message")
        ),
        None => format!("{operation}: {}", DisplayErrorContext(&e)),
    };
    NotifyError(text)
}
