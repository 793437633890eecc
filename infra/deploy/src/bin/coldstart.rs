//! Cold start, measured here: each function's release binary is started against a stub Lambda
//! Runtime API (a local HTTP server that hands out one invocation), beside a hello-world
//! `lambda_runtime` binary, and timed from exec to its first `GET /runtime/invocation/next`
//! (init) and to its first response (init + the first request, DynamoDB Local behind it).
//!
//! ```sh
//! cargo build --release -p admin -p pay-now -p invite -p accept-invite -p portal \
//!     -p save-method -p webhook -p auto-pay-tick -p anet-proxy -p hello-lambda
//! cargo run -p paybridge-deploy --bin coldstart -- [--runs 7] [--dir target/release] \
//!     [--hello target/release/hello-lambda] [--env NAME=VALUE ...] [--kms]
//! ```
//! `--kms` gives the functions their sealing key as the template does, a KMS data key
//! (SEALING_KEY_CIPHERTEXT, made in moto, AWS_ENDPOINT_URL_KMS pointing there) instead of
//! SEALING_KEY: init then includes the one `Decrypt` of every cold start.
//! `--dir` may also be infra/package.sh's output (`target/lambda`, `<name>/bootstrap`) when it
//! was built for this machine's architecture (`infra/package.sh x86_64` here).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::Value;
use tokio::sync::Notify;

/// The function binaries and the event each gets first (from events/): a request a client
/// would make, answered by reading DynamoDB Local where the route reads the table.
const TARGETS: &[(&str, &str)] = &[
    ("hello-lambda", "auto-pay-tick.scheduler.json"),
    ("admin", "admin-get-invoice.apigw-v2.json"),
    ("pay-now", "pay-now-summary.apigw-v2.json"),
    ("invite", "invite-list.apigw-v2.json"),
    ("accept-invite", "accept-invite-accept.apigw-v2.json"),
    ("portal", "portal-login.apigw-v2.json"),
    ("save-method", "save-method-terms.apigw-v2.json"),
    ("webhook", "webhook-sandbox-settled.apigw-v2.json"),
    ("auto-pay-tick", "auto-pay-tick.scheduler.json"),
    ("anet-proxy", "anet-proxy-request-api.apigw-v2.json"),
];

#[derive(Default)]
struct Times {
    next: Option<Duration>,
    response: Option<Duration>,
    body: Option<String>,
    error: Option<String>,
}

struct Stub {
    started: Mutex<Option<Instant>>,
    event: String,
    handed_out: Mutex<bool>,
    times: Mutex<Times>,
    done: Notify,
}

impl Stub {
    fn elapsed(&self) -> Duration {
        self.started
            .lock()
            .unwrap()
            .map(|s| s.elapsed())
            .unwrap_or_default()
    }
}

async fn next(State(stub): State<Arc<Stub>>) -> axum::response::Response {
    let first = {
        let mut handed = stub.handed_out.lock().unwrap();
        !std::mem::replace(&mut *handed, true)
    };
    if !first {
        // One invocation only: the process waits here until it is stopped, as a frozen Lambda.
        std::future::pending::<()>().await;
    }
    stub.times.lock().unwrap().next = Some(stub.elapsed());
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, value.parse().unwrap());
    };
    set("lambda-runtime-aws-request-id", "cold-start-0001".into());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:coldstart".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, stub.event.clone()).into_response()
}

async fn response(State(stub): State<Arc<Stub>>, body: String) -> StatusCode {
    {
        let mut times = stub.times.lock().unwrap();
        times.response = Some(stub.elapsed());
        times.body = Some(body);
    }
    stub.done.notify_one();
    StatusCode::ACCEPTED
}

async fn error(State(stub): State<Arc<Stub>>, body: String) -> StatusCode {
    stub.times.lock().unwrap().error = Some(body);
    stub.done.notify_one();
    StatusCode::ACCEPTED
}

struct Run {
    init: Duration,
    first_response: Duration,
    answer: String,
}

/// One cold start of `binary` with `event` as its first invocation.
async fn cold_start(binary: &Path, event: &str, env: &[(String, String)]) -> Result<Run, String> {
    let stub = Arc::new(Stub {
        started: Mutex::new(None),
        event: event.to_owned(),
        handed_out: Mutex::new(false),
        times: Mutex::new(Times::default()),
        done: Notify::new(),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    *stub.started.lock().unwrap() = Some(Instant::now());
    let mut child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let finished = tokio::time::timeout(Duration::from_secs(20), stub.done.notified()).await;
    let _ = child.kill().await;
    let stderr = match child.stderr.take() {
        Some(mut pipe) => {
            use tokio::io::AsyncReadExt;
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        }
        None => String::new(),
    };
    server.abort();
    if finished.is_err() {
        return Err(format!("no answer within 20 s; stderr: {stderr:.500}"));
    }
    let times = std::mem::take(&mut *stub.times.lock().unwrap());
    if let Some(error) = times.error {
        return Err(format!("the function reported an error: {error:.500}"));
    }
    Ok(Run {
        init: times.next.ok_or("no invocation/next")?,
        first_response: times.response.ok_or("no response")?,
        answer: times.body.unwrap_or_default(),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the first invocation answered, in a word: an HTTP status, or the tick's report.
fn answer_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("statusCode").is_some() => format!("HTTP {}", v["statusCode"]),
        Ok(v) if v.get("claimed").is_some() => format!("tick, {} claimed", v["claimed"]),
        Ok(_) => "JSON".into(),
        Err(_) => format!("{body:.40}"),
    }
}

fn binary_in(dir: &Path, name: &str) -> PathBuf {
    let bootstrap = dir.join(name).join("bootstrap");
    if bootstrap.is_file() {
        bootstrap
    } else {
        dir.join(name)
    }
}

#[tokio::main]
async fn main() {
    let mut runs = 7usize;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dir = root.join("target/release");
    let mut hello = None;
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut kms = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--dir" => dir = PathBuf::from(args.next().expect("--dir DIR")),
            "--hello" => hello = Some(PathBuf::from(args.next().expect("--hello PATH"))),
            "--kms" => kms = true,
            "--env" => {
                let pair = args.next().expect("--env NAME=VALUE");
                let (name, value) = pair.split_once('=').expect("--env NAME=VALUE");
                extra.push((name.to_owned(), value.to_owned()));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let hello = hello.unwrap_or_else(|| root.join("target/release/hello-lambda"));

    // The table the functions read: DynamoDB Local, the demo org, its API key, an invoice.
    let world = paybridge_tests::World::new().await;
    world.add_invoice("demo", "INV-1", "99.90").await;
    let mut env: Vec<(String, String)> = [
        ("PATH", "/usr/bin:/bin"),
        ("AWS_LAMBDA_FUNCTION_NAME", "coldstart"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/paybridge/coldstart"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_SESSION_TOKEN", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL_DYNAMODB", devtools::shared_for_tests()),
        ("TABLE_NAME", world.store.table()),
        ("MAIL_FROM", "billing@paybridge.test"),
        ("SES_CONFIGURATION_SET", "coldstart"),
        ("EVENT_BUS_NAME", "coldstart"),
        ("PUBLIC_URL", "https://pay.example.com"),
        (
            "SEALING_KEY",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        ),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if kms {
        env.retain(|(name, _)| name != "SEALING_KEY");
        env.extend(kms_sealing_key().await);
    }
    env.extend(extra);

    println!(
        "cold start against a stub Runtime API: median of {runs} runs after one warm-up (ms); binaries from {}",
        dir.display()
    );
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>12} {:>10}  first answer",
        "function", "init", "init min", "init max", "first resp.", "init/hello"
    );
    let mut hello_init = None;
    for (name, event_file) in TARGETS {
        let binary = if *name == "hello-lambda" {
            hello.clone()
        } else {
            binary_in(&dir, name)
        };
        let event = std::fs::read_to_string(root.join("events").join(event_file)).unwrap();
        let mut inits = Vec::new();
        let mut firsts = Vec::new();
        let mut answer = String::new();
        let mut failed = None;
        for i in 0..=runs {
            match cold_start(&binary, &event, &env).await {
                Ok(run) if i > 0 => {
                    inits.push(ms(run.init));
                    firsts.push(ms(run.first_response));
                    answer = answer_of(&run.answer);
                }
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            println!("{name:<14} failed: {e}");
            continue;
        }
        let init = median(inits.clone());
        if *name == "hello-lambda" {
            hello_init = Some(init);
        }
        let ratio = hello_init.map_or("-".into(), |h| format!("{:.2}x", init / h));
        let min = inits.iter().cloned().fold(f64::MAX, f64::min);
        let max = inits.iter().cloned().fold(0.0, f64::max);
        println!(
            "{name:<14} {init:>9.2} {min:>9.2} {max:>9.2} {:>12.2} {ratio:>10}  {answer}",
            median(firsts)
        );
    }
}

/// SEALING_KEY_CIPHERTEXT, SEALING_KMS_KEY_ID and AWS_ENDPOINT_URL_KMS for a data key made in
/// moto (with the encryption context the functions name).
async fn kms_sealing_key() -> Vec<(String, String)> {
    use base64::Engine;
    let moto = devtools::moto::shared_for_tests();
    let kms = aws_sdk_kms::Client::new(&devtools::aws_client_config(moto));
    let key = kms
        .create_key()
        .description("paybridge sealing key (cold-start bench)")
        .send()
        .await
        .expect("CreateKey in moto");
    let arn = key.key_metadata().and_then(|m| m.arn()).unwrap().to_owned();
    let (app, paybridge) = runtime::SEALING_KEY_CONTEXT;
    let data_key = kms
        .generate_data_key()
        .key_id(&arn)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .encryption_context(app, paybridge)
        .send()
        .await
        .expect("GenerateDataKey in moto");
    let ciphertext = base64::engine::general_purpose::STANDARD
        .encode(data_key.ciphertext_blob().unwrap().as_ref());
    vec![
        ("SEALING_KEY_CIPHERTEXT".into(), ciphertext),
        ("SEALING_KMS_KEY_ID".into(), arn),
        ("AWS_ENDPOINT_URL_KMS".into(), moto.to_owned()),
    ]
}
