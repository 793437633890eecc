//! Lambda `portal`: payer self-service; for now sign in, sign out and who am I.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::portal::router).await
}
