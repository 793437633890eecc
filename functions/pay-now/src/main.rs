//! Lambda `pay-now`: the Pay Now API for guests.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::pay_now::router).await
}
