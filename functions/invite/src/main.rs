//! Lambda `invite`: an org's admin invites payers by email; list, resend, revoke.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::invite::router).await
}
