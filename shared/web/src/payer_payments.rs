//! `GET /api/me/orgs/{org}/payments`: the signed-in payer's payments (their customers'),
//! newest first, searched by invoice number, amount, date range and status, with paging.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use domain::OrgSlug;
use serde::Deserialize;
use time::Date;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use app::payer_payments::{PaymentSearch, SearchError};

use crate::session::SignedIn;
use crate::views::{PaymentPage, PaymentView};
use crate::{AppState, Problem};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// An invoice number, exactly.
    pub invoice: Option<String>,
    /// The invoice amount paid, exactly ("120.50").
    pub amount: Option<String>,
    /// Made on or after this day (`YYYY-MM-DD`, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<Date>,
    /// Made on or before this day.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<Date>,
    /// pending, succeeded, failed, settled, returned, refunded, disputed, ...
    pub status: Option<String>,
    /// At most 100; 20 by default.
    pub limit: Option<u16>,
    /// `next_cursor` of the page before.
    pub cursor: Option<String>,
}

/// The payer's payments, newest first. A page may be shorter than `limit` when filters leave
/// few matches; go on while `next_cursor` is present.
#[utoipa::path(
    get,
    path = "/api/me/orgs/{org}/payments",
    tag = "portal",
    params(("org" = String, Path, description = "the org's slug"), SearchQuery),
    responses(
        (status = 200, description = "a page of payments", body = PaymentPage),
        (status = 400, description = "a filter was refused", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not a member of the org", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn search(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<PaymentPage>, Problem> {
    let org = OrgSlug::parse(&org).map_err(|_| Problem::not_found("no such organisation"))?;
    let search = PaymentSearch {
        invoice: q.invoice,
        amount: q.amount,
        from: q.from,
        to: q.to,
        status: q.status,
        limit: q.limit,
        cursor: q.cursor,
    };
    let page = app::payer_payments::search(&state, &org, &signed_in.user.id, &search)
        .await
        .map_err(|e| match e {
            SearchError::NotFound => Problem::not_found("no such organisation"),
            SearchError::Invalid(why) => Problem::invalid(why),
            SearchError::Store(e) => e.into(),
        })?;
    Ok(Json(PaymentPage {
        items: page.items.into_iter().map(PaymentView::from).collect(),
        next_cursor: page.next,
    }))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}
