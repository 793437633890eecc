//! The local stack as a newcomer runs it: it starts, answers /health, has the demo org, and
//! keeps what was written across a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request over a plain socket; returns (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

struct Stack(Child);

impl Stack {
    fn start(port: u16, data: &std::path::Path) -> Stack {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge-local"))
            .env("PORT", port.to_string())
            .env("PAYBRIDGE_DATA_DIR", data)
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the local stack");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if let Some((200, _)) = http(port, "GET", "/health", None, "") {
                return Stack(child);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the local stack did not answer /health within 90 s");
    }

    /// Ctrl-C, as a person stops it; waits until it has shut DynamoDB Local down.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_the_demo_org_and_keeps_data_across_a_restart() {
    let data = std::env::temp_dir().join(format!("pb-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port();
    let key = "pbk_demo_local_only_never_deployed_0000000000";

    let stack = Stack::start(port, &data);
    let (status, body) = http(
        port,
        "GET",
        "/api/orgs/demo/invoices/INV-1001",
        Some(key),
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"amount\":\"1250.00\""), "{body}");
    let (status, _) = http(
        port,
        "GET",
        "/api/orgs/acme/invoices/A-2001",
        Some("pbk_acme_local_only_never_deployed_0000000000"),
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    let invoice = r#"{"invoice_number":"KEEP-1","customer_id":"c1","customer_name":"Kept Ltd","total":"42.00","issue_date":"2026-11-01","due_date":"2026-11-30"}"#;
    let (status, body) = http(port, "POST", "/api/orgs/demo/invoices", Some(key), invoice).unwrap();
    assert_eq!(status, 201, "{body}");
    stack.stop();

    let stack = Stack::start(port, &data);
    let (status, body) =
        http(port, "GET", "/api/orgs/demo/invoices/KEEP-1", Some(key), "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Kept Ltd"));
    stack.stop();
    let _ = std::fs::remove_dir_all(&data);
}
