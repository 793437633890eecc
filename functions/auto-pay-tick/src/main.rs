//! Lambda `auto-pay-tick`: each EventBridge scheduled event charges what is due, exactly once.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::run_tick().await
}
