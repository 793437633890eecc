//! Lambda `webhook`: gateway notifications move payments forward, verified, once, in any order.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::webhook::router).await
}
