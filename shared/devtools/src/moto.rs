//! moto, a Python mock of AWS, for the SES and EventBridge tests: installed on demand into a
//! virtualenv and bound to 127.0.0.1. Not for DynamoDB (DynamoDB Local is the real engine).
//!
//! What moto did can be read back from its own API: [`sent_mail`] (SES) and [`archived_events`]
//! (EventBridge, through an archive on the bus).

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use serde::Deserialize;

use crate::process::{Server, Spawned, log_output, on_free_port, tools_dir};

/// Pinned so that every machine mocks the same behaviour (research/local-stack.md section 3).
const MOTO_PACKAGE: &str = "moto[server]==5.2.5";
/// Env var that makes [`shared_for_tests`] use an already running moto.
const TEST_ENDPOINT_ENV: &str = "PAYBRIDGE_TEST_MOTO_ENDPOINT";
/// Runs `moto_server`'s main after starting a watcher that exits with the parent: test processes
/// never stop their shared server. Arguments: parent pid, log file, then moto_server's own.
const LAUNCHER: &str = r#"
import os, sys, threading, time

parent, log = int(sys.argv[1]), sys.argv[2]

def exit_with_parent():
    # A parent that died before this started is caught too: we were re-parented at once.
    while os.getppid() == parent:
        time.sleep(0.5)
    try:
        os.remove(log)
    except OSError:
        pass
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()

from moto.server import main
main(sys.argv[3:])
"#;

/// A running moto server; dropping it kills it and removes its log. moto keeps everything in
/// memory: nothing is lost that a test would want.
#[derive(Debug)]
pub struct MotoServer {
    server: Server,
}

impl MotoServer {
    /// Installs moto if missing, starts it on a free port of 127.0.0.1, waits until it answers.
    pub fn start() -> io::Result<MotoServer> {
        let python = ensure_installed()?;
        on_free_port(|port| launch(&python, port))
    }

    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> &str {
        &self.server.endpoint
    }
}

/// One moto per test process. If the env var PAYBRIDGE_TEST_MOTO_ENDPOINT is set, returns it
/// instead of starting anything. Panics with a clear message if it cannot start.
///
/// The server is shared by every test of the process and never reset: tests tell their own
/// records apart by unique names (a sender, a bus), not by an empty server.
pub fn shared_for_tests() -> &'static str {
    static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
    crate::process::shared_for_tests(&SHARED, TEST_ENDPOINT_ENV, "moto", || {
        MotoServer::start().map(|moto| moto.server)
    })
}

/// An SDK config for a local endpoint (moto, DynamoDB Local): region us-east-1 and placeholder
/// credentials whatever the environment holds, so that a test can never reach a real account.
/// `aws_sdk_sesv2::Client::new(&aws_client_config(endpoint))`.
pub fn aws_client_config(endpoint: &str) -> aws_config::SdkConfig {
    let credentials = Credentials::new("local", "local", None, None, "paybridge-local");
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::from_static("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

/// An email as moto's SES recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MotoMail {
    pub id: String,
    /// The From address.
    pub source: String,
    pub subject: String,
    /// The HTML part when the mail has one (moto keeps only that), else the text.
    pub body: String,
    pub destinations: MotoDestinations,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MotoDestinations {
    #[serde(rename = "ToAddresses", default)]
    pub to: Vec<String>,
    #[serde(rename = "CcAddresses", default)]
    pub cc: Vec<String>,
    #[serde(rename = "BccAddresses", default)]
    pub bcc: Vec<String>,
}

/// Every email moto's SES (v1 or v2) has accepted since it started, oldest first.
pub fn sent_mail(endpoint: &str) -> io::Result<Vec<MotoMail>> {
    let data = model_data(endpoint)?;
    match data.pointer("/ses/Message") {
        None => Ok(Vec::new()),
        Some(messages) => serde_json::from_value(messages.clone()).map_err(|e| {
            io::Error::other(format!("moto's ses.Message records changed shape: {e}"))
        }),
    }
}

/// The events an archive of that name has kept, as EventBridge delivers them to targets
/// (`detail-type`, `source`, `detail`, ...). An archive on a bus is the cheapest way to see what
/// reached the bus: moto keeps its events where `/moto-api/data.json` shows them.
pub fn archived_events(endpoint: &str, archive: &str) -> io::Result<Vec<serde_json::Value>> {
    let data = model_data(endpoint)?;
    let archives = data
        .pointer("/events/Archive")
        .and_then(|a| a.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let found = archives
        .iter()
        .find(|a| a.get("name").and_then(|n| n.as_str()) == Some(archive))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("moto has no EventBridge archive named {archive:?}"),
            )
        })?;
    Ok(found
        .get("events")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default())
}

/// Everything moto holds, by service and model (`/moto-api/data.json`): `{"ses": {"Message": [...]}, ...}`.
pub fn model_data(endpoint: &str) -> io::Result<serde_json::Value> {
    let (status, body) = http_get(endpoint, "/moto-api/data.json", Duration::from_secs(30))?;
    if status != 200 {
        return Err(io::Error::other(format!(
            "GET {endpoint}/moto-api/data.json answered {status}"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{endpoint}/moto-api/data.json is not JSON: {e}"),
        )
    })
}

/// `<tools>/moto-venv/bin/python` with the pinned moto, installed first if missing. Locked,
/// because the test binaries of one `cargo test` start at the same time.
fn ensure_installed() -> io::Result<PathBuf> {
    crate::process::python_with("moto", MOTO_PACKAGE, "moto")
}

/// moto on 127.0.0.1:`port`, exiting with process `parent` and logging to `log`.
fn command(python: &Path, port: u16, parent: u32, log: &Path) -> io::Result<Command> {
    let mut command = Command::new(python);
    command
        .arg("-c")
        .arg(LAUNCHER)
        .arg(parent.to_string())
        .arg(log)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    log_output(&mut command, log)?;
    Ok(command)
}

/// Spawns moto on `port` and waits until `GET /moto-api/` answers. A taken port is `AddrInUse`.
fn launch(python: &Path, port: u16) -> io::Result<MotoServer> {
    let logs = tools_dir().join("moto-logs");
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{port}.log"));
    let child = command(python, port, std::process::id(), &log)?.spawn()?;
    let spawned = Spawned {
        child,
        name: "moto",
        port,
        log,
        // Each start writes a new one; the launcher removes it too if we die first.
        remove_log: true,
        port_taken: &["Address already in use"],
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = spawned.wait_ready(|_| {
        http_get(&endpoint, "/moto-api/", Duration::from_secs(2)).is_ok_and(|(s, _)| s == 200)
    })?;
    Ok(MotoServer { server })
}

/// A GET over HTTP/1.0, so that the answer is never chunked: (status, body).
pub(crate) fn http_get(
    endpoint: &str,
    path: &str,
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let authority = endpoint
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{endpoint:?} is not an http:// endpoint"),
            )
        })?;
    let address = authority.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{authority} has no address"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP header"))?;
    let status = std::str::from_utf8(&response[..head_end])
        .ok()
        .and_then(|head| head.strip_prefix("HTTP/1."))
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))?;
    Ok((status, response.split_off(head_end + 4)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::free_port;
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread;
    use std::time::Instant;

    #[test]
    fn starts_on_loopback_and_stops_on_drop() {
        let started = Instant::now();
        let moto = MotoServer::start().expect("start moto");
        println!(
            "moto: spawn to ready {:?}, start() total (with any install) {:?}, {}",
            moto.server.ready_after,
            started.elapsed(),
            moto.endpoint()
        );
        let endpoint = moto.endpoint().to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        assert_eq!(sent_mail(&endpoint).expect("read moto's data"), vec![]);

        let log = moto.server.log.clone();
        drop(moto);
        assert!(
            http_get(&endpoint, "/moto-api/", Duration::from_secs(2)).is_err(),
            "moto still answers after drop"
        );
        assert!(!log.exists(), "{} was left behind", log.display());
    }

    #[test]
    fn exits_when_its_parent_is_gone() {
        let python = ensure_installed().expect("install moto");
        let port = free_port().unwrap();
        let log = tools_dir()
            .join("moto-logs")
            .join(format!("orphan-{port}.log"));
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        // Told its parent is some other process: to the launcher, that parent has already died.
        let not_our_pid = std::process::id() + 1;
        let mut child = command(&python, port, not_our_pid, &log)
            .unwrap()
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("moto kept running without its parent");
            }
            thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
        assert!(!log.exists(), "the orphan left {}", log.display());
    }

    #[test]
    fn taken_port_is_reported_as_addr_in_use() {
        let python = ensure_installed().expect("install moto");
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = launch(&python, port).expect_err("the port is taken");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
    }

    #[test]
    fn shared_for_tests_starts_once() {
        let endpoint = shared_for_tests();
        assert!(std::ptr::eq(endpoint, shared_for_tests()));
        let (status, _) = http_get(endpoint, "/moto-api/", Duration::from_secs(5)).unwrap();
        assert_eq!(status, 200);
    }
}
