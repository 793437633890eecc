//! Lambda `admin`: the org's own API.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::admin::router).await
}
