//! Bootstrap shared by every function binary: typed config from the environment, JSON tracing,
//! AWS clients, and `serve(router)` on Lambda or on a local port (chosen at run time).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required: {why}")]
    Missing {
        name: &'static str,
        why: &'static str,
    },
    #[error("{name}={value:?} is not valid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{first} and {second} are both set: {why}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        why: &'static str,
    },
    /// A value that parsed, and that its service refused at start (the sealing key's KMS
    /// ciphertext): `why` never holds the value.
    #[error("{name} cannot be used: {why}")]
    Unusable { name: &'static str, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (Lambda, CloudWatch Logs Insights).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Everything a function reads from its environment, checked once at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// TABLE_NAME: the one DynamoDB table.
    pub table_name: String,
    /// PORT (default 3000) and BIND (default 127.0.0.1) when not under Lambda.
    pub listen: SocketAddr,
    /// LOG_FORMAT: json (default under Lambda) or pretty (default elsewhere).
    pub log_format: LogFormat,
    /// Set by Lambda itself (AWS_LAMBDA_RUNTIME_API).
    pub on_lambda: bool,
    /// MAIL_FROM: the SES sender (`billing@example.com` or `Example <billing@example.com>`).
    /// Required under Lambda; elsewhere unset means mail goes to the local outbox.
    pub mail_from: Option<String>,
    /// SES_CONFIGURATION_SET: the SES configuration set to send through, if any.
    pub ses_configuration_set: Option<String>,
    /// EVENT_BUS_NAME: the EventBridge bus for domain events. Required under Lambda; elsewhere
    /// unset means events go to the local outbox.
    pub event_bus_name: Option<String>,
    /// PUBLIC_URL: where people reach Paybridge, for links in emails (no trailing slash).
    pub public_url: Option<String>,
    /// Where the key-encryption key that seals webhook secrets and gateway credentials at rest
    /// comes from: SEALING_KEY_CIPHERTEXT (a KMS data key, decrypted by [`sealing_key`] at
    /// start) or SEALING_KEY (the key itself). Exactly one under Lambda; elsewhere neither
    /// means no secrets can be kept.
    pub sealing_key: Option<SealingKeySource>,
    /// STRIPE_API_BASE and AUTHORIZE_NET_API: the gateways' APIs when not their production ones
    /// (the local stack points them at localstripe and the Authorize.Net double).
    pub gateway_endpoints: gateways::Endpoints,
    /// XERO_BASE: one origin for all of Xero's hosts (a local double); Xero's own by default.
    pub accounting_endpoints: accounting::Endpoints,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same, over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let on_lambda = get("AWS_LAMBDA_RUNTIME_API").is_some();
        let table_name = get("TABLE_NAME").ok_or(ConfigError::Missing {
            name: "TABLE_NAME",
            why: "the DynamoDB table to use",
        })?;
        let port = match get("PORT") {
            None => 3000,
            Some(p) => p.parse().map_err(|_| ConfigError::Invalid {
                name: "PORT",
                value: p,
                why: "a TCP port number",
            })?,
        };
        let bind = match get("BIND") {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(b) => b.parse().map_err(|_| ConfigError::Invalid {
                name: "BIND",
                value: b,
                why: "an IP address to listen on",
            })?,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None if on_lambda => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    value: other.to_owned(),
                    why: "json or pretty",
                });
            }
        };
        // Empty counts as unset: a template parameter left blank must not mean "send from ''".
        let optional = |name: &str| get(name).filter(|v| !v.is_empty());
        // A deployed function without them would drop every receipt and event into a table no
        // one reads: refuse to start instead.
        let required_on_lambda = |name: &'static str, why: &'static str| match optional(name) {
            None if on_lambda => Err(ConfigError::Missing { name, why }),
            value => Ok(value),
        };
        let mail_from = required_on_lambda("MAIL_FROM", "the SES sender of receipts (on Lambda)")?;
        let event_bus_name = required_on_lambda(
            "EVENT_BUS_NAME",
            "the EventBridge bus for events (on Lambda)",
        )?;
        let sealing_key = SealingKeySource::from_lookup(&optional, on_lambda)?;
        let public_url = get("PUBLIC_URL")
            .filter(|u| !u.trim().is_empty())
            .map(|u| u.trim().trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_URL",
                value: url.clone(),
                why: "a URL like https://pay.example.com",
            });
        }
        let url = |name: &'static str| match optional(name) {
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                Err(ConfigError::Invalid {
                    name,
                    value: u,
                    why: "an http(s) URL",
                })
            }
            other => Ok(other),
        };
        let mut gateway_endpoints = gateways::Endpoints::default();
        if let Some(stripe) = url("STRIPE_API_BASE")? {
            gateway_endpoints.stripe = stripe;
        }
        gateway_endpoints.authorize_net = url("AUTHORIZE_NET_API")?;
        let accounting_endpoints = match url("XERO_BASE")? {
            Some(origin) => accounting::Endpoints::xero_at(&origin),
            None => accounting::Endpoints::default(),
        };
        Ok(Config {
            gateway_endpoints,
            accounting_endpoints,
            public_url,
            table_name,
            listen: SocketAddr::new(bind, port),
            log_format,
            on_lambda,
            mail_from,
            ses_configuration_set: optional("SES_CONFIGURATION_SET"),
            event_bus_name,
            sealing_key,
        })
    }
}

/// The encryption context of the sealing key's KMS data key: `aws kms generate-data-key
/// --encryption-context app=paybridge` made it, [`sealing_key`] names it in `Decrypt`, and the
/// KMS key's policy lets the functions decrypt only with it.
pub const SEALING_KEY_CONTEXT: (&str, &str) = ("app", "paybridge");

/// Where the sealing key comes from (see [`Config::sealing_key`]).
#[derive(Clone)]
pub enum SealingKeySource {
    /// SEALING_KEY: the key itself (32 bytes in base64).
    Key(store::SealingKey),
    /// SEALING_KEY_CIPHERTEXT: the `CiphertextBlob` of a 256-bit KMS data key made under the KMS
    /// key SEALING_KMS_KEY_ID, for [`sealing_key`] to decrypt at start.
    Kms {
        ciphertext: Vec<u8>,
        kms_key_id: String,
    },
}

/// Neither the key nor its ciphertext: the key's id, the KMS key's name, a length.
impl std::fmt::Debug for SealingKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealingKeySource::Key(key) => write!(f, "Key({key:?})"),
            SealingKeySource::Kms {
                ciphertext,
                kms_key_id,
            } => f
                .debug_struct("Kms")
                .field("kms_key_id", kms_key_id)
                .field("ciphertext", &format_args!("<{} bytes>", ciphertext.len()))
                .finish(),
        }
    }
}

impl SealingKeySource {
    /// Which source the environment names (no network: [`sealing_key`] decrypts). Errors never
    /// echo a value.
    fn from_lookup(
        optional: &impl Fn(&str) -> Option<String>,
        on_lambda: bool,
    ) -> Result<Option<SealingKeySource>, ConfigError> {
        let kms_key_id = optional("SEALING_KMS_KEY_ID");
        match (optional("SEALING_KEY_CIPHERTEXT"), optional("SEALING_KEY")) {
            (Some(_), Some(_)) => Err(ConfigError::Conflict {
                first: "SEALING_KEY_CIPHERTEXT",
                second: "SEALING_KEY",
                why: "set one: the KMS ciphertext of the sealing key (preferred) or the key itself",
            }),
            (None, None) if on_lambda => Err(ConfigError::Missing {
                name: "SEALING_KEY_CIPHERTEXT",
                why: "the KMS ciphertext of the key that seals webhook secrets and gateway credentials, or SEALING_KEY, the key itself (on Lambda)",
            }),
            (None, None) => Ok(None),
            (None, Some(text)) => store::SealingKey::from_base64(&text)
                .map(|key| Some(SealingKeySource::Key(key)))
                .map_err(|_| ConfigError::Invalid {
                    name: "SEALING_KEY",
                    value: "***".into(),
                    why: "32 random bytes in base64, e.g. `openssl rand -base64 32`",
                }),
            (Some(text), None) => {
                use base64::Engine;
                let ciphertext = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .filter(|bytes| !bytes.is_empty())
                    .ok_or(ConfigError::Invalid {
                        name: "SEALING_KEY_CIPHERTEXT",
                        value: "***".into(),
                        why: "the base64 CiphertextBlob of `aws kms generate-data-key --key-spec AES_256 --encryption-context app=paybridge`",
                    })?;
                let kms_key_id = kms_key_id.ok_or(ConfigError::Missing {
                    name: "SEALING_KMS_KEY_ID",
                    why: "the KMS key (ARN, id or alias) that SEALING_KEY_CIPHERTEXT was made under",
                })?;
                Ok(Some(SealingKeySource::Kms {
                    ciphertext,
                    kms_key_id,
                }))
            }
        }
    }
}

/// The key that seals secrets at rest: SEALING_KEY as configured, or SEALING_KEY_CIPHERTEXT
/// decrypted by KMS (one `Decrypt` naming the KMS key and the encryption context app=paybridge,
/// made once, at start). The plaintext then lives only in the key; the copy this function
/// receives is wiped. An error names the variable and what KMS said, never the ciphertext or
/// the key.
pub async fn sealing_key(
    kms: &aws_sdk_kms::Client,
    config: &Config,
) -> Result<Option<store::SealingKey>, ConfigError> {
    let (ciphertext, kms_key_id) = match &config.sealing_key {
        None => return Ok(None),
        Some(SealingKeySource::Key(key)) => return Ok(Some(key.clone())),
        Some(SealingKeySource::Kms {
            ciphertext,
            kms_key_id,
        }) => (ciphertext, kms_key_id),
    };
    let unusable = |why: String| ConfigError::Unusable {
        name: "SEALING_KEY_CIPHERTEXT",
        why,
    };
    let started = std::time::Instant::now();
    let answer = kms
        .decrypt()
        .key_id(kms_key_id)
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(ciphertext.clone()))
        .encryption_context(SEALING_KEY_CONTEXT.0, SEALING_KEY_CONTEXT.1)
        .send()
        .await
        .map_err(|e| unusable(kms_refusal(&e, kms_key_id)))?;
    let mut plaintext = answer
        .plaintext
        .map(aws_sdk_kms::primitives::Blob::into_inner)
        .unwrap_or_default();
    let key = match <&[u8; 32]>::try_from(plaintext.as_slice()) {
        Ok(bytes) => Ok(store::SealingKey::from_bytes(bytes)),
        Err(_) => Err(unusable(format!(
            "KMS answered a data key of {} bytes, not 32: make it with --key-spec AES_256",
            plaintext.len()
        ))),
    };
    wipe(&mut plaintext);
    let key = key?;
    // The cold start's one KMS call, timed (the id names the key without revealing it).
    tracing::info!(
        kms_key = %kms_key_id,
        sealing_key = key.id(),
        decrypt_ms = started.elapsed().as_millis() as u64,
        "sealing key from KMS"
    );
    Ok(Some(key))
}

/// What KMS said, and what it usually means here: the error's code and message (KMS's messages
/// name keys and principals, never the ciphertext), or the SDK's own error.
fn kms_refusal(
    error: &aws_sdk_kms::error::SdkError<aws_sdk_kms::operation::decrypt::DecryptError>,
    kms_key_id: &str,
) -> String {
    use aws_sdk_kms::error::ProvideErrorMetadata;
    let hint = match error.code() {
        Some("InvalidCiphertextException") => {
            "; it was changed, or made with another encryption context than app=paybridge"
        }
        Some("IncorrectKeyException") => "; it was made under another KMS key",
        Some("AccessDeniedException") => {
            "; the function's role may not kms:Decrypt this key with app=paybridge, or it was made under another key"
        }
        Some("DisabledException" | "KMSInvalidStateException") => {
            "; the KMS key is disabled or pending deletion"
        }
        _ => "",
    };
    let said = match (error.code(), error.message()) {
        (Some(code), Some(message)) if !message.is_empty() => format!("{code} ({message})"),
        (Some(code), _) => code.to_owned(),
        _ => aws_sdk_kms::error::DisplayErrorContext(error).to_string(),
    };
    format!("KMS Decrypt under {kms_key_id} with app=paybridge failed: {said}{hint}")
}

/// Overwrites a copy of key material before it is freed (volatile writes, which the compiler
/// does not remove).
fn wipe(bytes: &mut [u8]) {
    for byte in bytes.iter_mut() {
        // SAFETY: `byte` is a valid, aligned and exclusive reference to a u8.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The AWS SDK's HTTP layers log whole request and response bodies at trace (an invitation
/// email to SES holds its link; a DynamoDB answer may hold a customer's email): they never log
/// below debug, whatever RUST_LOG asks for.
const WIRE_CAPS: [&str; 3] = [
    "aws_smithy_runtime=debug",
    "aws_smithy_http_client=debug",
    "hyper_util=debug",
];

/// The log filter: `directives` (RUST_LOG's syntax), with the SDK's wire logging capped. The
/// caps only ever lower a level: they apply when something asks for trace.
pub fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::new(directives);
    if !directives.to_ascii_lowercase().contains("trace") {
        return filter;
    }
    WIRE_CAPS.iter().fold(filter, |filter, cap| {
        filter.add_directive(cap.parse().expect("a valid directive"))
    })
}

/// Logs go to stdout, filtered by RUST_LOG (default info). JSON lines carry the request span's
/// fields (request_id, method, path) on every line logged inside a request.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::fmt;
    let filter = log_filter(&std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
    let result = match format {
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .without_time() // Lambda stamps every line itself
            .try_init(),
        LogFormat::Pretty => fmt().with_env_filter(filter).compact().try_init(),
    };
    // A second init (tests, the local stack) keeps the first subscriber.
    let _ = result;
}

/// The store over the configured table. aws-config reads credentials and region from the
/// environment and honours AWS_ENDPOINT_URL_DYNAMODB (DynamoDB Local).
pub async fn store(config: &Config) -> Result<Store, ConfigError> {
    let aws = aws_config::load_from_env().await;
    let sealing = sealing_key(&aws_sdk_kms::Client::new(&aws), config).await?;
    Ok(store_over(&aws, config, sealing))
}

fn store_over(
    aws: &aws_config::SdkConfig,
    config: &Config,
    sealing_key: Option<store::SealingKey>,
) -> Store {
    let store = Store::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name);
    match sealing_key {
        Some(key) => store.with_sealing_key(key),
        None => store,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("Lambda runtime failed: {0}")]
    Lambda(lambda_http::Error),
}

/// Serves the router: under Lambda through the runtime API (API Gateway HTTP API events),
/// elsewhere on `config.listen`. Same router, two hosts.
pub async fn serve(router: Router, config: &Config) -> Result<(), ServeError> {
    if config.on_lambda {
        // Name requests by API Gateway's request id, so our log lines match its access log, and
        // give handlers the client's address as API Gateway saw it (the guest velocity limits).
        let router = router.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                use lambda_http::RequestExt;
                let (id, source_ip) = match request.request_context_ref() {
                    Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => (
                        ctx.request_id.clone(),
                        ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
                    ),
                    _ => (None, None),
                };
                if let Some(id) = id {
                    request
                        .extensions_mut()
                        .insert(web::layers::lambda_context::RequestContextId(id));
                }
                if let Some(ip) = source_ip {
                    request.extensions_mut().insert(web::client::SourceIp(ip));
                }
                // API Gateway answers only HTTPS: cookies get Secure and `__Host-`.
                request.extensions_mut().insert(web::client::Https);
                request
            },
        ));
        lambda_http::run(router).await.map_err(ServeError::Lambda)
    } else {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServeError::Bind(config.listen, e))?;
        tracing::info!(address = %config.listen, "listening");
        let router = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    }
}

/// The app's ports over the configured store, for a function's router: mail through SES when
/// MAIL_FROM is set and events to EventBridge when EVENT_BUS_NAME is, else the local outbox.
/// The sealing key is resolved first ([`sealing_key`]: one KMS call when it is a ciphertext);
/// a key that cannot be had is a config error, and the function does not start.
pub async fn services(config: &Config) -> Result<std::sync::Arc<app::Services>, ConfigError> {
    let aws = aws_config::load_from_env().await;
    let sealing = sealing_key(&aws_sdk_kms::Client::new(&aws), config).await?;
    let mut services = services_at(
        store_over(&aws, config, sealing),
        std::sync::Arc::new(app::system::SystemClock),
        config.gateway_endpoints.clone(),
        config.accounting_endpoints.clone(),
    );
    if let Some(url) = &config.public_url {
        services.public_url = url.clone();
    }
    match &config.mail_from {
        Some(from) => {
            tracing::info!(from = %from, "mail through SES");
            services.mailer = std::sync::Arc::new(notify::SesMailer::new(
                aws_sdk_sesv2::Client::new(&aws),
                from,
                config.ses_configuration_set.clone(),
            ));
        }
        None => tracing::info!("mail to the local outbox (MAIL_FROM is not set)"),
    }
    match &config.event_bus_name {
        Some(bus) => {
            tracing::info!(bus = %bus, "events to EventBridge");
            services.events = std::sync::Arc::new(notify::EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(&aws),
                bus,
            ));
        }
        None => tracing::info!("events to the local outbox (EVENT_BUS_NAME is not set)"),
    }
    Ok(std::sync::Arc::new(services))
}

/// The services, or the reason the function cannot start, logged (the init error Lambda
/// reports says only that the process exited).
async fn services_or_log(config: &Config) -> Result<std::sync::Arc<app::Services>, ConfigError> {
    services(config)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))
}

/// The app's ports over a store: the ledger as accounting system, each org's configured gateway
/// (the sandbox for every org until it configures a real one; Stripe at its production API),
/// the local outbox for mail and events, all on `clock`.
pub fn services_over(store: Store, clock: std::sync::Arc<dyn app::ports::Clock>) -> app::Services {
    services_with_gateways_at(store, clock, gateways::Endpoints::default())
}

/// The same, with the gateways' APIs at `endpoints` (local doubles in the local stack and tests).
pub fn services_with_gateways_at(
    store: Store,
    clock: std::sync::Arc<dyn app::ports::Clock>,
    endpoints: gateways::Endpoints,
) -> app::Services {
    services_at(store, clock, endpoints, accounting::Endpoints::default())
}

/// The same, with Xero's hosts at `books` too. Each org's invoices come from the accounting
/// system it connected, or the ledger in the store.
pub fn services_at(
    store: Store,
    clock: std::sync::Arc<dyn app::ports::Clock>,
    endpoints: gateways::Endpoints,
    books: accounting::Endpoints,
) -> app::Services {
    let ids: std::sync::Arc<dyn app::ports::Ids> = std::sync::Arc::new(app::system::RandomIds);
    let sandbox = gateways::SandboxGateway::new(store.clone(), clock.clone(), ids.clone());
    let gateway = gateways::OrgGateways::new(
        std::sync::Arc::new(sandbox),
        std::sync::Arc::new(store.clone()),
        endpoints,
    );
    let by_org = accounting::OrgAccounting::new(
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(store.clone()),
        books.clone(),
        clock.clone(),
    );
    let outbox = std::sync::Arc::new(store::Outbox::new(&store));
    let mut services = app::Services::over(store, std::sync::Arc::new(gateway), outbox);
    services.accounting = std::sync::Arc::new(by_org);
    services.accounting_connect = std::sync::Arc::new(accounting::connect::XeroConnect::new(books));
    services.clock = clock;
    services.ids = ids;
    services
}

/// Starts a function: config, logs, ports, then serve the router that `build` makes.
/// A function's main.rs is this one call.
pub async fn run_function(
    build: impl FnOnce(std::sync::Arc<app::Services>) -> Router,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    init_tracing(config.log_format);
    let router = build(services_or_log(&config).await?);
    serve(router, &config).await?;
    Ok(())
}

/// How long before its Lambda deadline the tick stops claiming: time to finish the charge in
/// hand and write it.
const TICK_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// When a tick must stop claiming, from the invocation's deadline (ms since the epoch).
pub fn tick_deadline(deadline_ms: u64) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    std::time::Instant::now() + left.saturating_sub(TICK_MARGIN)
}

/// One tick at `now`, as every driver runs it: the day's first tick also tells the holders of
/// cards that expire soon. Answers the report.
pub async fn run_one_tick(
    services: &app::Services,
    now: time::OffsetDateTime,
    deadline: Option<std::time::Instant>,
) -> Result<app::schedules::TickReport, app::ports::StoreError> {
    let first_of_day = services
        .schedules
        .swept_through()
        .await?
        .is_none_or(|day| day < now.date());
    let mut report = app::schedules::tick(services, now, deadline).await?;
    if first_of_day {
        report.cards_told = app::methods::notify_expiring_cards(services, now).await? as u32;
    }
    // One JSON line per tick; the deployment turns `oldest_due_seconds` into a metric.
    tracing::info!(oldest_due_seconds = report.oldest_due_secs, ?report, "tick");
    // The webhooks' retry path rides on the tick: effects not yet delivered, held events.
    match app::webhooks::run_due_follow_ups(services, 100).await {
        Ok(follow_ups) => tracing::info!(?follow_ups, "webhook follow-ups"),
        Err(e) => tracing::warn!(error = %e, "webhook follow-ups not run; the next tick tries"),
    }
    Ok(report)
}

/// Starts `auto-pay-tick`: on Lambda each EventBridge scheduled event runs one tick (stopping
/// before the invocation's deadline) and answers its report.
pub async fn run_tick() -> Result<(), Box<dyn std::error::Error>> {
    use lambda_http::{LambdaEvent, service_fn};
    let config = Config::from_env()?;
    init_tracing(config.log_format);
    let services = services_or_log(&config).await?;
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let services = services.clone();
        async move {
            let deadline = tick_deadline(event.context.deadline);
            let report = run_one_tick(&services, services.clock.now(), Some(deadline)).await?;
            Ok::<_, lambda_http::Error>(serde_json::to_value(report)?)
        }
    });
    lambda_http::lambda_runtime::run(handler)
        .await
        .map_err(|e| -> Box<dyn std::error::Error> { e })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a subscriber with `directives` logs `target` at `level`.
    fn logs(directives: &str, target_debug: bool) -> bool {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(directives))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            if target_debug {
                tracing::enabled!(target: "aws_smithy_runtime::client", tracing::Level::DEBUG)
            } else {
                tracing::enabled!(target: "aws_smithy_runtime::client", tracing::Level::TRACE)
            }
        })
    }

    #[test]
    fn the_sdks_wire_logs_are_capped_at_debug_and_never_raised() {
        assert!(!logs("info", true), "info stays info for the SDK");
        assert!(logs("debug", true));
        assert!(logs("trace", true), "trace gives the SDK debug");
        assert!(!logs("trace", false), "but never its trace (whole bodies)");
        assert!(!logs("aws_smithy_runtime=trace", false));
    }
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_to_loopback_3000_and_pretty_logs() {
        let c = config(&[("TABLE_NAME", "paybridge")]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(!c.on_lambda);
    }

    #[test]
    fn lambda_defaults_to_json_logs() {
        let c = config(&[
            ("TABLE_NAME", "t"),
            ON_LAMBDA,
            ("MAIL_FROM", "billing@paybridge.test"),
            ("EVENT_BUS_NAME", "paybridge"),
            SEALING_KEY,
        ])
        .unwrap();
        assert!(c.on_lambda);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_are_named() {
        let e = config(&[]).unwrap_err().to_string();
        assert_eq!(e, "TABLE_NAME is required: the DynamoDB table to use");
        let e = config(&[("TABLE_NAME", "t"), ("PORT", "http")])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "PORT=\"http\" is not valid: a TCP port number");
        assert!(config(&[("TABLE_NAME", "t"), ("LOG_FORMAT", "xml")]).is_err());
    }

    const ON_LAMBDA: (&str, &str) = ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
    /// 32 bytes of 0x01, in base64: a key for these tests only.
    const SEALING_KEY: (&str, &str) = (
        "SEALING_KEY",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
    );

    #[test]
    fn lambda_requires_a_sealing_key_and_never_echoes_it() {
        let lambda = [
            ("TABLE_NAME", "t"),
            ON_LAMBDA,
            ("MAIL_FROM", "a@b.test"),
            ("EVENT_BUS_NAME", "b"),
        ];
        let e = config(&lambda).unwrap_err().to_string();
        assert_eq!(
            e,
            "SEALING_KEY_CIPHERTEXT is required: the KMS ciphertext of the key that seals webhook secrets and gateway credentials, or SEALING_KEY, the key itself (on Lambda)"
        );
        let mut short = lambda.to_vec();
        short.push(("SEALING_KEY", "c2VjcmV0LWJ1dC1zaG9ydA=="));
        let e = config(&short).unwrap_err().to_string();
        assert!(e.starts_with("SEALING_KEY=\"***\" is not valid"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let mut good = lambda.to_vec();
        good.push(SEALING_KEY);
        assert!(matches!(
            config(&good).unwrap().sealing_key,
            Some(SealingKeySource::Key(_))
        ));
        // Off Lambda it may be left out: no webhook secrets can be kept then.
        assert!(
            config(&[("TABLE_NAME", "t")])
                .unwrap()
                .sealing_key
                .is_none()
        );
    }

    /// Not a real KMS ciphertext: the bytes 0..=183 in base64 (a real one for a 256-bit data
    /// key is 184 bytes), enough for the parsing tests.
    fn sample_ciphertext() -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode((0..184u8).collect::<Vec<u8>>())
    }

    #[test]
    fn a_kms_ciphertext_is_one_source_of_the_sealing_key() {
        let ciphertext = sample_ciphertext();
        let lambda = [
            ("TABLE_NAME", "t"),
            ON_LAMBDA,
            ("MAIL_FROM", "a@b.test"),
            ("EVENT_BUS_NAME", "b"),
        ];
        let with = |extra: &[(&'static str, &str)]| {
            let mut vars: Vec<(&str, &str)> = lambda.to_vec();
            vars.extend_from_slice(extra);
            config(&vars)
        };
        let kms_key = ("SEALING_KMS_KEY_ID", "alias/paybridge/prod/sealing");
        let c = with(&[("SEALING_KEY_CIPHERTEXT", &ciphertext), kms_key]).unwrap();
        match &c.sealing_key {
            Some(SealingKeySource::Kms {
                ciphertext: bytes,
                kms_key_id,
            }) => {
                assert_eq!(bytes.len(), 184);
                assert_eq!(kms_key_id, "alias/paybridge/prod/sealing");
            }
            other => panic!("{other:?}"),
        }
        // Debug (a config printed whole) shows neither the ciphertext nor its bytes.
        let printed = format!("{c:?}");
        assert!(printed.contains("<184 bytes>"), "{printed}");
        assert!(!printed.contains(&ciphertext[..16]), "{printed}");
        assert!(!printed.contains("[0, 1, 2"), "{printed}");

        // Exactly one source, and errors that never echo what was given.
        let e = with(&[
            ("SEALING_KEY_CIPHERTEXT", &ciphertext),
            kms_key,
            SEALING_KEY,
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "SEALING_KEY_CIPHERTEXT and SEALING_KEY are both set: set one: the KMS ciphertext of the sealing key (preferred) or the key itself"
        );
        let e = with(&[("SEALING_KEY_CIPHERTEXT", &ciphertext)])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("SEALING_KMS_KEY_ID is required"), "{e}");
        let e = with(&[
            ("SEALING_KEY_CIPHERTEXT", "not base64 ~~ c2VjcmV0"),
            kms_key,
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("SEALING_KEY_CIPHERTEXT=\"***\" is not valid"),
            "{e}"
        );
        assert!(!e.contains("c2VjcmV0"), "{e}");
        // Empty is unset: a blank template parameter falls back to SEALING_KEY.
        let c = with(&[("SEALING_KEY_CIPHERTEXT", ""), kms_key, SEALING_KEY]).unwrap();
        assert!(matches!(c.sealing_key, Some(SealingKeySource::Key(_))));

        // Off Lambda: both optional, but never both.
        let c = config(&[
            ("TABLE_NAME", "t"),
            ("SEALING_KEY_CIPHERTEXT", &ciphertext),
            kms_key,
        ])
        .unwrap();
        assert!(matches!(c.sealing_key, Some(SealingKeySource::Kms { .. })));
        assert!(matches!(
            config(&[
                ("TABLE_NAME", "t"),
                ("SEALING_KEY_CIPHERTEXT", &ciphertext),
                kms_key,
                SEALING_KEY
            ]),
            Err(ConfigError::Conflict { .. })
        ));
    }

    #[tokio::test]
    async fn a_configured_key_needs_no_kms_call() {
        // A client that could reach nothing: SEALING_KEY, or no key at all, never uses it.
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::Config::builder()
                .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
                .region(aws_sdk_kms::config::Region::new("us-east-1"))
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        );
        let c = config(&[("TABLE_NAME", "t"), SEALING_KEY]).unwrap();
        let key = sealing_key(&kms, &c).await.unwrap().unwrap();
        let same = store::SealingKey::from_bytes(&[1u8; 32]);
        assert_eq!(key.id(), same.id());
        let none = config(&[("TABLE_NAME", "t")]).unwrap();
        assert!(sealing_key(&kms, &none).await.unwrap().is_none());
    }

    #[test]
    fn mail_and_events_are_optional_off_lambda() {
        let c = config(&[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(c.mail_from, None);
        assert_eq!(c.ses_configuration_set, None);
        assert_eq!(c.event_bus_name, None);

        let c = config(&[
            ("TABLE_NAME", "t"),
            ("MAIL_FROM", "Paybridge <billing@paybridge.test>"),
            ("SES_CONFIGURATION_SET", "receipts"),
            ("EVENT_BUS_NAME", "paybridge-dev"),
        ])
        .unwrap();
        assert_eq!(
            c.mail_from.as_deref(),
            Some("Paybridge <billing@paybridge.test>")
        );
        assert_eq!(c.ses_configuration_set.as_deref(), Some("receipts"));
        assert_eq!(c.event_bus_name.as_deref(), Some("paybridge-dev"));
    }

    #[test]
    fn lambda_requires_a_sender_and_a_bus() {
        let e = config(&[("TABLE_NAME", "t"), ON_LAMBDA, ("EVENT_BUS_NAME", "b")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "MAIL_FROM is required: the SES sender of receipts (on Lambda)"
        );
        let e = config(&[("TABLE_NAME", "t"), ON_LAMBDA, ("MAIL_FROM", "a@b.test")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "EVENT_BUS_NAME is required: the EventBridge bus for events (on Lambda)"
        );

        // The configuration set stays optional: not every account uses one.
        let c = config(&[
            ("TABLE_NAME", "t"),
            ON_LAMBDA,
            ("MAIL_FROM", "a@b.test"),
            ("EVENT_BUS_NAME", "b"),
            SEALING_KEY,
        ])
        .unwrap();
        assert_eq!(c.mail_from.as_deref(), Some("a@b.test"));
        assert_eq!(c.event_bus_name.as_deref(), Some("b"));
        assert_eq!(c.ses_configuration_set, None);
    }

    #[test]
    fn empty_is_unset() {
        let c = config(&[
            ("TABLE_NAME", "t"),
            ("MAIL_FROM", ""),
            ("SES_CONFIGURATION_SET", ""),
            ("EVENT_BUS_NAME", ""),
        ])
        .unwrap();
        assert_eq!(c.mail_from, None);
        assert_eq!(c.ses_configuration_set, None);
        assert_eq!(c.event_bus_name, None);
        let e = config(&[
            ("TABLE_NAME", "t"),
            ON_LAMBDA,
            ("MAIL_FROM", ""),
            ("EVENT_BUS_NAME", "b"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Missing {
                    name: "MAIL_FROM",
                    ..
                }
            ),
            "{e}"
        );
    }
}
