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
        Ok(Config {
            table_name,
            listen: SocketAddr::new(bind, port),
            log_format,
            on_lambda,
        })
    }
}

/// Logs go to stdout, filtered by RUST_LOG (default info). JSON lines carry the request span's
/// fields (request_id, method, path) on every line logged inside a request.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
pub async fn store(config: &Config) -> Store {
    let aws = aws_config::load_from_env().await;
    Store::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name)
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
        // Name requests by API Gateway's request id, so our log lines match its access log.
        let router = router.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                use lambda_http::RequestExt;
                let id = match request.request_context_ref() {
                    Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
                        ctx.request_id.clone()
                    }
                    _ => None,
                };
                if let Some(id) = id {
                    request
                        .extensions_mut()
                        .insert(web::layers::lambda_context::RequestContextId(id));
                }
                request
            },
        ));
        lambda_http::run(router).await.map_err(ServeError::Lambda)
    } else {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| ServeError::Bind(config.listen, e))?;
        tracing::info!(address = %config.listen, "listening");
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    }
}

/// The app's ports over the configured store, for a function's router.
pub async fn services(config: &Config) -> std::sync::Arc<app::Services> {
    std::sync::Arc::new(services_over(
        store(config).await,
        std::sync::Arc::new(app::system::SystemClock),
    ))
}

/// The app's ports over a store: the ledger as accounting system and the sandbox gateway (the
/// default of every org until it configures a real one), all on `clock`.
pub fn services_over(store: Store, clock: std::sync::Arc<dyn app::ports::Clock>) -> app::Services {
    let ids: std::sync::Arc<dyn app::ports::Ids> = std::sync::Arc::new(app::system::RandomIds);
    let gateway = gateways::SandboxGateway::new(store.clone(), clock.clone(), ids.clone());
    let mut services = app::Services::over(store, std::sync::Arc::new(gateway));
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
    let router = build(services(&config).await);
    serve(router, &config).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
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
}
