//! The gateway port, dispatched by org: each call goes to the gateway the org configured
//! (`GatewayConfigs`), or to the default (the sandbox) where it configured none. Adapters are
//! built from the sealed credentials on first use and kept for a short while, so that a
//! payment reads its org's configuration at most once a minute per function instance; the
//! admin API's `forget` drops an org's adapter at once after a change in the same instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{Email, OrgSlug, Secret};
use time::OffsetDateTime;

use app::payments::MethodSummary;
use app::ports::{
    BrowserTokenizer, ChargeOutcome, ChargeRequest, ChargeSource, ConnectionCheck, Gateway,
    GatewayConfig, GatewayConfigs, GatewayError, GatewayEvent, GatewayMethod, RefundOutcome,
    RefundRequest, WebhookDelivery, WebhookRejection,
};

use crate::authorize_net::{self, AuthorizeNetGateway};
use crate::stripe::{self, StripeGateway};

/// How long an org's adapter is kept before its configuration is read again.
const CACHE_FOR: Duration = Duration::from_secs(60);

/// The gateways Paybridge can configure per org.
pub const GATEWAYS: [&str; 3] = ["sandbox", stripe::NAME, authorize_net::NAME];

pub struct OrgGateways {
    default: Arc<dyn Gateway>,
    configs: Arc<dyn GatewayConfigs>,
    endpoints: Endpoints,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Where the real gateways' APIs are: production by default; a local double's address in the
/// local stack and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Stripe's API base (`STRIPE_API_BASE`).
    pub stripe: String,
    /// Authorize.Net's API URL for every org (`AUTHORIZE_NET_API`); None: each org's
    /// credentials say sandbox or production.
    pub authorize_net: Option<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            stripe: stripe::STRIPE_API.to_owned(),
            authorize_net: None,
        }
    }
}

/// An org's adapter and when its configuration was read.
type Cached = (Instant, Arc<dyn Gateway>);

impl OrgGateways {
    pub fn new(
        default: Arc<dyn Gateway>,
        configs: Arc<dyn GatewayConfigs>,
        endpoints: Endpoints,
    ) -> OrgGateways {
        OrgGateways {
            default,
            configs,
            endpoints,
            http: stripe::http_client(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The adapter that serves the org now.
    pub async fn for_org(&self, org: &OrgSlug) -> Result<Arc<dyn Gateway>, GatewayError> {
        let now = Instant::now();
        if let Some((at, gateway)) = self.cache.lock().expect("not poisoned").get(org.as_str())
            && now.duration_since(*at) < CACHE_FOR
        {
            return Ok(gateway.clone());
        }
        let config = self.configs.gateway_config(org).await.map_err(|e| {
            GatewayError::Unavailable(format!("the gateway configuration of {org}: {e}"))
        })?;
        let gateway = match config {
            None => self.default.clone(),
            Some(config) => self.adapter(&config)?,
        };
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(org.as_str().to_owned(), (now, gateway.clone()));
        Ok(gateway)
    }

    /// An adapter for a configuration.
    pub fn adapter(&self, config: &GatewayConfig) -> Result<Arc<dyn Gateway>, GatewayError> {
        match config.info.gateway.as_str() {
            "sandbox" => Ok(self.default.clone()),
            stripe::NAME => {
                let key = credential(&config.credentials, "secret_key")?;
                let mut gateway =
                    StripeGateway::new(self.http.clone(), &self.endpoints.stripe, key);
                // Optional (public): without it the pages say online payments are not set up.
                if let Ok(publishable) = credential(&config.credentials, "publishable_key") {
                    gateway = gateway.with_publishable_key(publishable.expose().as_str());
                }
                Ok(Arc::new(gateway))
            }
            authorize_net::NAME => {
                // The credentials' environment picks Accept.js even where the API is a double's.
                let production = match &self.endpoints.authorize_net {
                    Some(_) => credential(&config.credentials, "environment")
                        .is_ok_and(|e| e.expose() == "production"),
                    None => {
                        credential(&config.credentials, "environment")?.expose() == "production"
                    }
                };
                let endpoint = match &self.endpoints.authorize_net {
                    Some(endpoint) => endpoint.as_str(),
                    None if production => authorize_net::PRODUCTION_API,
                    None => authorize_net::SANDBOX_API,
                };
                let mut gateway = AuthorizeNetGateway::new(
                    self.http.clone(),
                    endpoint,
                    credential(&config.credentials, "api_login_id")?,
                    credential(&config.credentials, "transaction_key")?,
                )
                .with_production(production);
                // Optional (public): without it the pages say online payments are not set up.
                if let Ok(client_key) = credential(&config.credentials, "client_key") {
                    gateway = gateway.with_client_key(client_key.expose().as_str());
                }
                Ok(Arc::new(gateway))
            }
            other => Err(GatewayError::Unavailable(format!(
                "unknown gateway {other:?} configured"
            ))),
        }
    }
}

/// One field of the credentials' JSON text.
fn credential(credentials: &Secret<String>, field: &str) -> Result<Secret<String>, GatewayError> {
    serde_json::from_str::<serde_json::Value>(credentials.expose())
        .ok()
        .and_then(|v| v.get(field).and_then(|f| f.as_str()).map(str::to_owned))
        .map(Secret::new)
        .ok_or_else(|| GatewayError::Unavailable(format!("the credentials have no {field}")))
}

#[async_trait]
impl Gateway for OrgGateways {
    fn name(&self) -> &'static str {
        self.default.name()
    }

    async fn name_for(&self, org: &OrgSlug) -> Result<&'static str, GatewayError> {
        Ok(self.for_org(org).await?.name())
    }

    async fn test_connection(&self, org: &OrgSlug) -> Result<ConnectionCheck, GatewayError> {
        self.for_org(org).await?.test_connection(org).await
    }

    async fn must_poll(&self, org: &OrgSlug) -> Result<bool, GatewayError> {
        self.for_org(org).await?.must_poll(org).await
    }

    async fn poll_charge(
        &self,
        org: &OrgSlug,
        charge: &str,
    ) -> Result<Option<GatewayEvent>, GatewayError> {
        self.for_org(org).await?.poll_charge(org, charge).await
    }

    async fn browser_tokenizer(&self, org: &OrgSlug) -> Result<BrowserTokenizer, GatewayError> {
        self.for_org(org).await?.browser_tokenizer(org).await
    }

    fn forget(&self, org: &OrgSlug) {
        self.cache
            .lock()
            .expect("not poisoned")
            .remove(org.as_str());
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        self.for_org(&request.org).await?.charge(request).await
    }

    async fn describe(
        &self,
        org: &OrgSlug,
        source: &ChargeSource,
    ) -> Result<Option<MethodSummary>, GatewayError> {
        self.for_org(org).await?.describe(org, source).await
    }

    async fn find_charge(
        &self,
        org: &OrgSlug,
        reference: &str,
    ) -> Result<Option<ChargeOutcome>, GatewayError> {
        self.for_org(org).await?.find_charge(org, reference).await
    }

    async fn create_customer(
        &self,
        org: &OrgSlug,
        reference: &str,
        email: &Email,
        name: &str,
    ) -> Result<String, GatewayError> {
        self.for_org(org)
            .await?
            .create_customer(org, reference, email, name)
            .await
    }

    async fn attach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        token: &Secret<String>,
    ) -> Result<Option<GatewayMethod>, GatewayError> {
        self.for_org(org)
            .await?
            .attach_method(org, customer, token)
            .await
    }

    async fn detach_method(
        &self,
        org: &OrgSlug,
        customer: &str,
        method: &str,
    ) -> Result<(), GatewayError> {
        self.for_org(org)
            .await?
            .detach_method(org, customer, method)
            .await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, GatewayError> {
        self.for_org(&request.org).await?.refund(request).await
    }

    /// Asks the gateway that sent the event, if it still serves the org; an event from a
    /// gateway the org has left is taken as it came (its credentials are gone).
    async fn confirm_event(
        &self,
        org: &OrgSlug,
        event: GatewayEvent,
        from: &str,
    ) -> Result<GatewayEvent, GatewayError> {
        let gateway = self.for_org(org).await?;
        if gateway.name() == from {
            gateway.confirm_event(org, event, from).await
        } else {
            Ok(event)
        }
    }

    /// Webhooks are read by the scheme of the gateway that the URL names (signatures need no
    /// credentials, only the org's secrets): an org that changed gateways still has the old
    /// one's late events read.
    fn read_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
        secrets: &[Secret<String>],
        now: OffsetDateTime,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        match delivery.gateway {
            stripe::NAME => stripe::read_webhook(delivery, secrets, now),
            authorize_net::NAME => authorize_net::read_webhook(delivery, secrets, now),
            name if name == self.default.name() => {
                self.default.read_webhook(delivery, secrets, now)
            }
            _ => Err(WebhookRejection::Unsupported),
        }
    }
}
