//! Paybridge's DynamoDB adapter: one table (see `table`), the repositories that implement the
//! app's ports, and idempotency records. Every call reports its consumed capacity to a `Meter`.

mod directory;
mod error;
mod idempotency;
mod item;
mod ledger;
mod meter;
mod payments;
pub mod table;

pub use meter::{Meter, Usage};

use aws_sdk_dynamodb::Client;

/// The table and the client to reach it. Cheap to clone; build once per cold start.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
    meter: Meter,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Store {
            client,
            table: table.into(),
            meter: Meter::default(),
        }
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
