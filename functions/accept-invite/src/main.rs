//! Lambda `accept-invite`: the invitation link, the accept page and the accept API.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::accept::router).await
}
