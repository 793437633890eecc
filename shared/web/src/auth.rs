//! Who is calling: for now an org API key (`Authorization: Bearer pbk_...`); sessions come with
//! the login work. The tenant comes from the credential and must match the URL's org.

use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::{header, request::Parts},
};
use domain::OrgSlug;

use crate::{AppState, Problem};

/// An authenticated caller acting for the org named in the URL.
pub struct OrgAdmin {
    pub org: OrgSlug,
}

impl FromRequestParts<AppState> for OrgAdmin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found("no such org"))?;
        let org = params
            .iter()
            .find(|(name, _)| *name == "org")
            .and_then(|(_, value)| OrgSlug::parse(value).ok())
            .ok_or_else(|| Problem::not_found("no such org"))?;
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(Problem::unauthorized)?;
        let key = app::orgs::authenticate_api_key(state.api_keys.as_ref(), presented.trim())
            .await?
            .ok_or_else(Problem::unauthorized)?;
        // Another org's key learns nothing about this org, not even that it exists.
        if key.org != org {
            return Err(Problem::not_found("no such org"));
        }
        Ok(OrgAdmin { org })
    }
}
