//! Local stand-ins for AWS, for tests and the local stack. Never deployed.

pub mod dynamodb_local;
pub mod moto;

pub use dynamodb_local::{DynamoDbLocal, Storage, repo_root, shared_for_tests, tools_dir};
pub use moto::{MotoServer, aws_client_config};

mod tables;

pub use store::local_client;
pub use tables::test_store;
