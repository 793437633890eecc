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
    ChargeOutcome, ChargeRequest, ChargeSource, ConnectionCheck, Gateway, GatewayConfig,
    GatewayConfigs, GatewayError, GatewayEvent, GatewayMethod, WebhookDelivery, WebhookRejection,
};

use crate::stripe::{self, StripeGateway};

/// How long an org's adapter is kept before its configuration is read again.
const CACHE_FOR: Duration = Duration::from_secs(60);

/// The gateways Paybridge can configure per org.
pub const GATEWAYS: [&str; 2] = ["sandbox", stripe::NAME];

pub struct OrgGateways {
    default: Arc<dyn Gateway>,
    configs: Arc<dyn GatewayConfigs>,
    stripe_api: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

/// An org's adapter and when its configuration was read.
type Cached = (Instant, Arc<dyn Gateway>);

impl OrgGateways {
    /// `stripe_api`: [`stripe::STRIPE_API`], or a local double's endpoint.
    pub fn new(
        default: Arc<dyn Gateway>,
        configs: Arc<dyn GatewayConfigs>,
        stripe_api: &str,
    ) -> OrgGateways {
        OrgGateways {
            default,
            configs,
            stripe_api: stripe_api.to_owned(),
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
                Ok(Arc::new(StripeGateway::new(
                    self.http.clone(),
                    &self.stripe_api,
                    key,
                )))
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

    /// Webhooks are routed by gateway name, and only the default's are read so far (Stripe's
    /// are not built yet).
    fn read_webhook(
        &self,
        delivery: &WebhookDelivery<'_>,
        secrets: &[Secret<String>],
        now: OffsetDateTime,
    ) -> Result<Option<GatewayEvent>, WebhookRejection> {
        self.default.read_webhook(delivery, secrets, now)
    }
}
