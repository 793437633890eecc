//! The local stack: DynamoDB Local (unless AWS_ENDPOINT_URL_DYNAMODB points elsewhere), the one
//! table, demo data, and every function's router on 127.0.0.1:3000. Never deployed.

mod seed;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use devtools::{DynamoDbLocal, Storage, repo_root};
use store::Store;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    runtime::init_tracing(runtime::LogFormat::Pretty);
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "paybridge".into());
    let data_dir = std::env::var("PAYBRIDGE_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".data"));

    // Keep the DynamoDB Local handle alive for as long as we serve; dropping it stops it.
    let (endpoint, _dynamodb) = match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        Ok(endpoint) => (endpoint, None),
        Err(_) => {
            let dir = data_dir.join("dynamodb");
            println!("Starting DynamoDB Local (data in {}) ...", dir.display());
            let ddb =
                tokio::task::spawn_blocking(move || DynamoDbLocal::start(Storage::Dir(dir), 0))
                    .await??;
            (ddb.endpoint().to_owned(), Some(ddb))
        }
    };
    let store = Store::new(devtools::local_client(&endpoint).await, &table);
    let sandbox = Arc::new(gateways::SandboxGateway::new(
        store.clone(),
        Arc::new(app::system::SystemClock),
        Arc::new(app::system::RandomIds),
    ));
    let outbox = Arc::new(store::Outbox::new(&store));
    store.ensure_table().await?;
    let mut services = runtime::services_over(store, Arc::new(app::system::SystemClock));
    // Links in emails (invitations) point at this stack.
    services.public_url = format!("http://127.0.0.1:{port}");
    let services = Arc::new(services);
    let today = services.clock.now().date();
    let seeded = seed::seed(&services, today).await?;

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{addr}");
    println!();
    println!("Paybridge is running at {base}");
    println!("  health         {base}/health");
    println!("  API document   {base}/api/openapi.json");
    println!(
        "  DynamoDB Local {endpoint} (table {table}, data in {})",
        data_dir.display()
    );
    println!("  orgs           demo (USD), acme (AUD)");
    println!(
        "  admin login    {} / {} (admin of both orgs)",
        seeded.admin_email, seeded.admin_password
    );
    println!("  Payer Admin    {base}/admin/demo/payers (sign in as the admin)");
    for (name, key) in &seeded.api_keys {
        println!("  {name:<14} {key}");
    }
    println!(
        "  try            curl -H 'Authorization: Bearer {}' {base}/api/orgs/demo/invoices/{}",
        seeded.api_keys[0].1, seeded.demo_invoice
    );
    println!(
        "  Pay Now        {base}/pay/demo/{} (test card 4242 4242 4242 4242, any future expiry, CVC 123)",
        seeded.demo_invoice
    );
    println!(
        "  pay (API)      POST {base}/api/pay/demo/{} with a token from POST {base}/sandbox/tokens",
        seeded.demo_invoice
    );
    println!("  outbox         {base}/dev/outbox (emails), {base}/dev/events.json (events)");
    println!("  sandbox        {base}/sandbox/card (test tokens), {base}/sandbox/charges");
    println!("Stop with Ctrl-C; data is kept for the next start.");

    let local_only = web::sandbox::routes(sandbox).merge(web::dev::routes(outbox));
    let router = web::all_functions(services, local_only);
    let router = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
