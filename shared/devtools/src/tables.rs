//! SDK clients for DynamoDB Local, and a fresh table per test.

use aws_sdk_dynamodb::{Client, config::Credentials};
use store::Store;

/// A DynamoDB client for a local endpoint, with dummy credentials (DynamoDB Local runs with
/// `-sharedDb`, so any credentials see the same tables).
pub async fn local_client(endpoint: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "paybridge-local",
        ))
        .endpoint_url(endpoint)
        .load()
        .await;
    Client::new(&config)
}

/// A store over a new, empty table of its own on this process's DynamoDB Local, so that tests
/// never see each other's data. Build one per test (clients must not outlive their runtime).
pub async fn test_store() -> Store {
    let client = local_client(crate::dynamodb_local::shared_for_tests()).await;
    let store = Store::new(client, format!("test-{}", ulid::Ulid::new()));
    store
        .ensure_table()
        .await
        .expect("create the test table on DynamoDB Local");
    store
}
