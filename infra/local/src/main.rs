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
    let store = Store::new(devtools::local_client(&endpoint).await, &table)
        .with_sealing_key(local_sealing_key(&data_dir)?);
    let sandbox = Arc::new(gateways::SandboxGateway::new(
        store.clone(),
        Arc::new(app::system::SystemClock),
        Arc::new(app::system::RandomIds),
    ));
    let outbox = Arc::new(store::Outbox::new(&store));
    let sandbox_events = Arc::new(gateways::sandbox_events::SandboxEvents::new(
        store.clone(),
        Arc::new(app::system::SystemClock),
        Arc::new(app::system::RandomIds),
        Arc::new(store.clone()),
    ));
    store.ensure_table().await?;
    // Orgs configured for Stripe or Authorize.Net talk to local doubles, never the internet
    // (unless STRIPE_API_BASE / AUTHORIZE_NET_API say otherwise). Kept alive while we serve.
    let doubles = LocalGateways::start().await;
    let mut services = runtime::services_with_gateways_at(
        store,
        Arc::new(app::system::SystemClock),
        doubles.endpoints.clone(),
    );
    // Links in emails (invitations) point at this stack.
    services.public_url = format!("http://127.0.0.1:{port}");
    let services = Arc::new(services);
    let today = services.clock.now().date();
    let seeded = seed::seed(&services, today).await?;
    ensure_webhook_secrets(&services).await?;

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
    println!(
        "  auto-pay tick  every {}s (TICK_SECONDS; 0 stops it); one tick at any time: POST {base}/dev/tick?now=2026-12-01T06:00:00Z",
        tick_seconds()
    );
    println!(
        "  webhooks       POST {base}/sandbox/events {{\"charge_id\": \"ch_...\", \"type\": \"charge.settled\"}} signs and delivers one to {base}/webhooks/<org>/sandbox"
    );
    println!(
        "  bank debits    settle by themselves after {}s (SANDBOX_SETTLE_SECONDS; 0 never); account 000222222227 is then returned",
        settle_seconds()
    );
    println!(
        "  ConnectWise    POST {base}/api/orgs/demo/anet-credentials (demo's key) issues a login and key for the Authorize.Net-compatible {base}/anet/demo/xml/v1/request.api (and /anet/demo/gateway/transact.dll)"
    );
    println!(
        "  Stripe         {} (STRIPE_API_BASE)",
        doubles.endpoints.stripe
    );
    if let Some(anet) = &doubles.endpoints.authorize_net {
        println!(
            "  Authorize.Net  {anet} (AUTHORIZE_NET_API){}",
            if doubles.anet.is_some() {
                format!(
                    ": the double's merchant is api_login_id {ANET_LOGIN}, transaction_key {ANET_KEY}"
                )
            } else {
                String::new()
            }
        );
    }
    println!("Stop with Ctrl-C; data is kept for the next start.");

    tokio::spawn(tick_every(services.clone(), tick_seconds()));
    tokio::spawn(settle_every(
        sandbox_events.clone(),
        web::webhook::router(services.clone()),
        settle_seconds(),
    ));
    let local_only = web::sandbox::routes(sandbox)
        .merge(web::dev::routes(outbox))
        .merge(web::sandbox_events::routes(
            sandbox_events.clone(),
            web::webhook::router(services.clone()),
        ))
        .merge(web::dev::tick_routes(services.clone()));
    let router = web::all_functions(services, local_only);
    let router = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The Authorize.Net double's merchant, for an org's gateway settings on this stack (public: a
/// stand-in's, not a real account's).
const ANET_LOGIN: &str = "paybridgeLocal";
const ANET_KEY: &str = "LocalDouble12345";

/// The gateways' APIs as the local stack sees them, and the doubles it started for them.
struct LocalGateways {
    endpoints: gateways::Endpoints,
    _stripe: Option<devtools::localstripe::LocalStripe>,
    anet: Option<devtools::AnetDouble>,
}

impl LocalGateways {
    async fn start() -> LocalGateways {
        let mut endpoints = gateways::Endpoints::default();
        let mut stripe = None;
        match std::env::var("STRIPE_API_BASE") {
            Ok(base) => endpoints.stripe = base,
            Err(_) => {
                println!("Starting localstripe (for orgs configured for Stripe) ...");
                let started =
                    tokio::task::spawn_blocking(devtools::localstripe::LocalStripe::start)
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                match started {
                    Ok(started) => {
                        endpoints.stripe = started.endpoint().to_owned();
                        stripe = Some(started);
                    }
                    // The sandbox does not need it: say so, and keep Stripe calls off the
                    // internet all the same (nothing listens on port 9).
                    Err(why) => {
                        println!(
                            "  localstripe did not start ({why}); Stripe orgs cannot pay on this stack"
                        );
                        endpoints.stripe = "http://127.0.0.1:9".to_owned();
                    }
                }
            }
        }
        let anet = match std::env::var("AUTHORIZE_NET_API") {
            Ok(api) => {
                endpoints.authorize_net = Some(api);
                None
            }
            Err(_) => {
                let double = devtools::AnetDouble::start();
                double.add_merchant(ANET_LOGIN, ANET_KEY);
                endpoints.authorize_net = Some(double.endpoint());
                Some(double)
            }
        };
        LocalGateways {
            endpoints,
            _stripe: stripe,
            anet,
        }
    }
}

/// Seconds between the local stack's ticks (EventBridge runs them every 5 minutes in AWS).
fn tick_seconds() -> u64 {
    std::env::var("TICK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// The local stand-in for the EventBridge schedule.
async fn tick_every(services: std::sync::Arc<app::Services>, seconds: u64) {
    if seconds == 0 {
        return;
    }
    let mut every = tokio::time::interval(std::time::Duration::from_secs(seconds));
    loop {
        every.tick().await;
        if let Err(e) = runtime::run_one_tick(&services, services.clock.now(), None).await {
            tracing::error!(error = %e, "tick failed; the next one carries on");
        }
    }
}

/// The key that seals webhook secrets: SEALING_KEY, else the one kept in the data folder (made
/// on the first start, readable by its owner only), so that a restart can still open them.
fn local_sealing_key(
    data_dir: &std::path::Path,
) -> Result<store::SealingKey, Box<dyn std::error::Error>> {
    if let Ok(text) = std::env::var("SEALING_KEY") {
        return Ok(store::SealingKey::from_base64(&text)?);
    }
    let path = data_dir.join("sealing.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(store::SealingKey::from_base64(&text)?);
    }
    let (key, text) = store::SealingKey::generate();
    std::fs::create_dir_all(data_dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&path)?, text.expose().as_bytes())?;
    Ok(key)
}

/// The demo orgs' webhook secrets for the sandbox, made once, so that the sandbox can sign its
/// events from the first start (rotate them with `POST /api/orgs/{org}/webhook-secrets/rotate`).
async fn ensure_webhook_secrets(
    services: &app::Services,
) -> Result<(), Box<dyn std::error::Error>> {
    for slug in ["demo", "acme"] {
        let org = domain::OrgSlug::parse(slug)?;
        let gateway = services.gateway.name();
        if services
            .webhook_secrets
            .secret_info(&org, gateway)
            .await?
            .is_none()
        {
            let command = app::webhooks::RotateCommand {
                org,
                gateway: None,
                secret: None,
                grace: None,
            };
            app::webhooks::rotate_secret(services, command).await?;
        }
    }
    Ok(())
}

/// After how long the sandbox settles a pending bank debit by itself (a bank takes days).
fn settle_seconds() -> u64 {
    std::env::var("SANDBOX_SETTLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// The sandbox's own webhooks: settlements and returns of its bank debits, as they fall due.
async fn settle_every(
    events: Arc<gateways::sandbox_events::SandboxEvents>,
    webhook: axum::Router,
    seconds: u64,
) {
    if seconds == 0 {
        return;
    }
    let after = time::Duration::seconds(seconds as i64);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        let now = time::OffsetDateTime::now_utc();
        if let Err(e) = web::sandbox_events::send_due(&events, &webhook, now, after).await {
            tracing::warn!(error = %e, "the sandbox's settlements failed; it tries again");
        }
    }
}
