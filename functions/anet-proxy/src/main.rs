//! Lambda `anet-proxy`: an Authorize.Net-compatible endpoint per org (ConnectWise's customer
//! portal) that charges the invoice's real balance through the org's own gateway. Card numbers
//! pass through it: it is in PCI DSS scope, with its own role (see README, "The ConnectWise
//! portal proxy").

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_function(web::anet_proxy::router).await
}
