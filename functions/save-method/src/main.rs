//! Lambda `save-method`: a payer's saved cards and bank accounts (gateway tokens, never numbers).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::methods::router).await
}
