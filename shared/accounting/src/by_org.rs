//! The accounting port, dispatched by org: each call goes to the system the org connected
//! (`AccountingConfigs`: Xero or ConnectWise), or to the built-in ledger where it connected
//! none (or has not finished connecting). Adapters are built from the sealed connection on
//! first use and kept for a minute, so a payment reads its org's connection at most once a
//! minute per function instance; `forget` drops one at once after the admin changes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::{CustomerId, Invoice, InvoiceNumber, OrgSlug};

use app::ports::{
    Accounting, AccountingConfig, AccountingConfigs, AccountingError, Clock, ConnectionCheck,
    InvoiceRead, PaymentPosting, PaymentReversal, Posted,
};

use crate::connectwise::{self, ConnectWiseAccounting};
use crate::xero::{self, XeroAccounting};
use crate::{Endpoints, http};

const CACHE_FOR: Duration = Duration::from_secs(60);

/// The systems an org can connect, besides the ledger.
pub const SYSTEMS: [&str; 2] = [xero::NAME, connectwise::NAME];

pub struct OrgAccounting {
    ledger: Arc<dyn Accounting>,
    configs: Arc<dyn AccountingConfigs>,
    endpoints: Endpoints,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

/// An org's adapter, whether it is a remote system, and when its connection was read.
type Cached = (Instant, Arc<dyn Accounting>, bool);

impl OrgAccounting {
    pub fn new(
        ledger: Arc<dyn Accounting>,
        configs: Arc<dyn AccountingConfigs>,
        endpoints: Endpoints,
        clock: Arc<dyn Clock>,
    ) -> OrgAccounting {
        OrgAccounting {
            ledger,
            configs,
            endpoints,
            clock,
            http: http::http_client(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The adapter that serves the org now, and whether it is a remote system.
    async fn for_org(&self, org: &OrgSlug) -> Result<(Arc<dyn Accounting>, bool), AccountingError> {
        let now = Instant::now();
        if let Some((at, adapter, remote)) =
            self.cache.lock().expect("not poisoned").get(org.as_str())
            && now.duration_since(*at) < CACHE_FOR
        {
            return Ok((adapter.clone(), *remote));
        }
        let config = self
            .configs
            .accounting_config(org)
            .await
            .map_err(|e| AccountingError(format!("the accounting connection of {org}: {e}")))?;
        let (adapter, remote) = match config {
            Some(config) if SYSTEMS.contains(&config.system.as_str()) => {
                (self.adapter(org, &config)?, true)
            }
            // None, or a connection not finished (Xero before its consent): the ledger.
            _ => (self.ledger.clone(), false),
        };
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(org.as_str().to_owned(), (now, adapter.clone(), remote));
        Ok((adapter, remote))
    }

    /// An adapter for a connection.
    pub fn adapter(
        &self,
        org: &OrgSlug,
        config: &AccountingConfig,
    ) -> Result<Arc<dyn Accounting>, AccountingError> {
        match config.system.as_str() {
            xero::NAME => Ok(Arc::new(XeroAccounting::new(
                self.http.clone(),
                &self.endpoints,
                org.clone(),
                config,
                self.configs.clone(),
                self.clock.clone(),
            )?)),
            connectwise::NAME => Ok(Arc::new(ConnectWiseAccounting::new(
                self.http.clone(),
                org.clone(),
                config,
            )?)),
            other => Err(AccountingError(format!(
                "unknown accounting system {other:?} connected"
            ))),
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

#[async_trait]
impl Accounting for OrgAccounting {
    async fn read_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<InvoiceRead>, AccountingError> {
        self.for_org(org).await?.0.read_invoice(org, number).await
    }

    async fn open_invoices(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, AccountingError> {
        self.for_org(org)
            .await?
            .0
            .open_invoices(org, customer)
            .await
    }

    async fn post_payment(&self, posting: &PaymentPosting) -> Result<Posted, AccountingError> {
        self.for_org(&posting.org)
            .await?
            .0
            .post_payment(posting)
            .await
    }

    async fn reverse_payment(&self, reversal: &PaymentReversal) -> Result<Posted, AccountingError> {
        self.for_org(&reversal.org)
            .await?
            .0
            .reverse_payment(reversal)
            .await
    }

    async fn invoice_pdf(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<Vec<u8>>, AccountingError> {
        self.for_org(org).await?.0.invoice_pdf(org, number).await
    }

    async fn test_connection(&self, org: &OrgSlug) -> Result<ConnectionCheck, AccountingError> {
        self.for_org(org).await?.0.test_connection(org).await
    }

    async fn writes_back(&self, org: &OrgSlug) -> Result<bool, AccountingError> {
        Ok(self.for_org(org).await?.1)
    }

    fn forget(&self, org: &OrgSlug) {
        self.cache
            .lock()
            .expect("not poisoned")
            .remove(org.as_str());
    }
}
