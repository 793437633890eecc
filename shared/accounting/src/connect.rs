//! Xero's consent flow behind the app's `AccountingConnect` port.

use async_trait::async_trait;
use domain::Secret;
use time::OffsetDateTime;

use app::ports::{AccountingConnect, AccountingError, Consent};

use crate::{Endpoints, xero};

pub struct XeroConnect {
    http: reqwest::Client,
    endpoints: Endpoints,
}

impl XeroConnect {
    pub fn new(endpoints: Endpoints) -> XeroConnect {
        XeroConnect {
            http: crate::http::http_client(),
            endpoints,
        }
    }
}

#[async_trait]
impl AccountingConnect for XeroConnect {
    fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String {
        xero::authorize_url(&self.endpoints, client_id, redirect_uri, state)
    }

    async fn exchange(
        &self,
        client_id: &str,
        client_secret: &Secret<String>,
        code: &str,
        redirect_uri: &str,
        now: OffsetDateTime,
    ) -> Result<Consent, AccountingError> {
        let tokens = xero::exchange_code(
            &self.http,
            &self.endpoints,
            client_id,
            client_secret,
            code,
            redirect_uri,
            now,
        )
        .await?;
        let tenants = xero::tenants(&self.http, &self.endpoints, &tokens.access_token).await?;
        Ok(Consent {
            access_token: Secret::new(tokens.access_token),
            refresh_token: Secret::new(tokens.refresh_token),
            access_expires_at: tokens.access_expires_at,
            tenants: tenants.into_iter().map(|t| (t.tenant_id, t.name)).collect(),
        })
    }
}
