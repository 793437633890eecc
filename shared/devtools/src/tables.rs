//! SDK clients for DynamoDB Local, and a fresh table per test.

use store::{Store, local_client};

/// A store over a new, empty table of its own on this process's DynamoDB Local, so that tests
/// never see each other's data, sealing its secrets with a key of its own. Build one per test
/// (clients must not outlive their runtime).
pub async fn test_store() -> Store {
    let client = local_client(crate::dynamodb_local::shared_for_tests()).await;
    let (sealing, _) = store::SealingKey::generate();
    let store = Store::new(client, format!("test-{}", ulid::Ulid::new())).with_sealing_key(sealing);
    store
        .ensure_table()
        .await
        .expect("create the test table on DynamoDB Local");
    store
}
