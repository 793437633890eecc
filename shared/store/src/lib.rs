//! Paybridge's DynamoDB adapter: one table (see `table`), the repositories that implement the
//! app's ports, and idempotency records. Every call reports its consumed capacity to a `Meter`.

mod accounting_configs;
mod books;
mod directory;
mod error;
mod gateway_configs;
mod idempotency;
mod invitations;
mod item;
mod ledger;
mod meter;
mod methods;
mod outbox;
mod payments;
mod proxy_credentials;
pub mod sandbox;
pub mod sandbox_events;
pub mod schedules;
pub mod sealing;
mod sessions;
pub mod table;
mod two_factor;
mod velocity;
mod webhook_secrets;
mod webhooks;

pub use meter::{Meter, Usage};
pub use outbox::Outbox;
pub use sealing::{BadSealingKey, SealingKey};

use aws_sdk_dynamodb::Client;

/// The table and the client to reach it. Cheap to clone; build once per cold start.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
    meter: Meter,
    /// Seals the secrets it keeps (webhook secrets, gateway credentials); None: it keeps none and says why.
    sealing: Option<SealingKey>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Store {
            client,
            table: table.into(),
            meter: Meter::default(),
            sealing: None,
        }
    }

    /// The same store, sealing the secrets it keeps with this key-encryption key.
    pub fn with_sealing_key(mut self, key: SealingKey) -> Self {
        self.sealing = Some(key);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Calls and capacity consumed through this store so far.
    pub fn usage(&self) -> Usage {
        self.meter.usage()
    }

    /// Creates the table if it is missing (local stack, tests, CLI `init`).
    pub async fn ensure_table(&self) -> Result<(), app::ports::StoreError> {
        table::ensure_table(&self.client, &self.table).await
    }
}

/// A client for a DynamoDB endpoint of our own (DynamoDB Local), with placeholder credentials
/// where the environment has none: DynamoDB Local runs with `-sharedDb`, so any credentials see
/// the same tables.
pub async fn local_client(endpoint: &str) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .endpoint_url(endpoint);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "paybridge-local",
        ));
    }
    Client::new(&loader.load().await)
}

impl Store {
    /// The same table and client with a meter of its own, so that one party's calls (the
    /// sandbox gateway's, say) can be counted apart from ours.
    pub fn separately_metered(&self) -> Store {
        Store {
            client: self.client.clone(),
            table: self.table.clone(),
            meter: Meter::default(),
            sealing: self.sealing.clone(),
        }
    }
}
