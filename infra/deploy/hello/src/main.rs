//! Hello world on the Lambda runtime API, built with the workspace's release profile: the
//! baseline that `coldstart` measures our functions against.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, lambda_runtime::Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
