//! RFC 9457 problem details with a stable `code`. 5xx bodies are generic; the cause is logged.

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem. Kept small (it is the error of most handlers): the `type` URI is
/// derived from the code when it is written out.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    /// Stable, machine-readable: clients branch on this, never on the text.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members of this kind of problem (e.g. `decline_code`, `payment_id`).
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// The wire shape of a problem, as the OpenAPI document describes it.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
struct ProblemJson<'a> {
    /// A URI naming the kind of problem: `/problems/<code>`.
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProblemJson {
            kind: format!("/problems/{}", self.code),
            title: self.title,
            status: self.status,
            detail: &self.detail,
            code: self.code,
            extensions: &self.extensions,
        }
        .serialize(s)
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ProblemJson<'static> as utoipa::PartialSchema>::schema()
    }
}

impl ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        "Problem".into()
    }
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status: status.as_u16(),
            code,
            title,
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request is not valid",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    pub fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            "send a valid API key as `Authorization: Bearer <key>`",
        )
    }

    /// A failure that is ours: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side",
            "the error was logged; try again later",
        )
    }

    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "dependency unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "try again in a moment",
        )
    }
}

impl From<app::ports::StoreError> for Problem {
    fn from(e: app::ports::StoreError) -> Self {
        Problem::unavailable(&e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `Json<T>` whose rejections are problems: malformed JSON, a wrong field, a missing
/// content type or a body over the limit each get their own code.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "The request body is too large",
                    format!("send at most {} bytes", crate::BODY_LIMIT),
                ),
                StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send JSON",
                    "set `Content-Type: application/json`",
                ),
                _ => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The body is not the JSON expected",
                    rejection.body_text(),
                ),
            }),
        }
    }
}

/// A body that may be empty (all its fields optional): the type's default then, else the JSON.
/// `expected` names the fields in the refusal (`{label?}`).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    expected: &str,
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The body is not the JSON expected",
            format!("expected {expected}: {e}"),
        )
    })
}
