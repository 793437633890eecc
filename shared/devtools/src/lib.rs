//! Local stand-ins for AWS and the payment gateways, for tests and the local stack. Never deployed.

pub mod anet_double;
pub mod anet_sdk;
pub mod chromium;
pub mod connectwise_double;
pub mod dynamodb_local;
pub mod localstripe;
pub mod moto;
pub mod xero_double;

pub use anet_double::AnetDouble;
pub use dynamodb_local::{DynamoDbLocal, Storage, shared_for_tests};
pub use moto::{MotoServer, aws_client_config};
pub use process::{repo_root, tools_dir};

mod process;
mod served;
mod tables;

pub use store::local_client;
pub use tables::test_store;
