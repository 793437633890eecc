//! Local stand-ins for AWS, for tests and the local stack. Never deployed.

pub mod dynamodb_local;

pub use dynamodb_local::{DynamoDbLocal, Storage};

mod tables;

pub use tables::{local_client, test_store};
