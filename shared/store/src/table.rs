//! The ONE table definition: keys, indexes and the TTL attribute. The local stack, the tests and
//! the deployment template all derive from this, so they cannot drift apart.

use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    },
};
use serde_json::{Value, json};

use crate::error::sdk_error;
use app::ports::StoreError;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// GSI1: the overloaded "other way round" index (a user's orgs, a customer's invoices, an org's
/// API keys, a payment by its gateway reference).
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// GSI2: the sparse "due" index of schedules (time bucket and shard / due time), so the tick
/// queries only what is due and never scans. Items carry its keys only while they are due.
pub const GSI_DUE: &str = "due";
pub const DUE_PK: &str = "duepk";
pub const DUE_SK: &str = "duesk";
/// Epoch seconds after which DynamoDB may delete the item. Deletion is lazy (up to days), so
/// every read of something that expires checks the expiry itself.
pub const TTL: &str = "ttl";

/// (index name, partition key attribute, sort key attribute)
pub const INDEXES: [(&str, &str, &str); 2] = [(GSI1, GSI1_PK, GSI1_SK), (GSI_DUE, DUE_PK, DUE_SK)];

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key schema element has its fields")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition has its fields")
}

/// Creates the table (on-demand, both indexes, TTL on) unless it exists, and waits until it is active.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let exists = client.describe_table().table_name(table).send().await;
    if exists.is_err() {
        let mut create = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash))
            .key_schema(key(SK, KeyType::Range));
        for attr in [PK, SK, GSI1_PK, GSI1_SK, DUE_PK, DUE_SK] {
            create = create.attribute_definitions(string_attribute(attr));
        }
        for (name, pk, sk) in INDEXES {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(name)
                    .key_schema(key(pk, KeyType::Hash))
                    .key_schema(key(sk, KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index has its fields"),
            );
        }
        if let Err(e) = create.send().await {
            // Another process may have created it meanwhile; anything else is a real failure.
            let in_use = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception());
            if !in_use {
                return Err(sdk_error("CreateTable", e));
            }
        }
    }
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let ttl = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .expect("TTL specification has its fields"),
        )
        .send()
        .await;
    if let Err(e) = ttl {
        // "TimeToLive is already enabled" comes back as a validation error.
        let text = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e));
        if !text.contains("already enabled") {
            return Err(sdk_error("UpdateTimeToLive", e));
        }
    }
    Ok(())
}

/// The same definition as a CloudFormation `AWS::DynamoDB::Table` `Properties` fragment (keys,
/// indexes, TTL, billing), which the deployment template must match.
pub fn cloudformation_properties() -> Value {
    let attrs: Vec<Value> = [PK, SK, GSI1_PK, GSI1_SK, DUE_PK, DUE_SK]
        .iter()
        .map(|a| json!({"AttributeName": a, "AttributeType": "S"}))
        .collect();
    let indexes: Vec<Value> = INDEXES
        .iter()
        .map(|(name, pk, sk)| {
            json!({
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": pk, "KeyType": "HASH"},
                    {"AttributeName": sk, "KeyType": "RANGE"}
                ],
                "Projection": {"ProjectionType": "ALL"}
            })
        })
        .collect();
    json!({
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": attrs,
        "KeySchema": [
            {"AttributeName": PK, "KeyType": "HASH"},
            {"AttributeName": SK, "KeyType": "RANGE"}
        ],
        "GlobalSecondaryIndexes": indexes,
        "TimeToLiveSpecification": {"AttributeName": TTL, "Enabled": true}
    })
}
