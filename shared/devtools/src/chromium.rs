//! Headless Chromium for browser tests (issue 12): Debian's `chromium` and `chromium-driver`
//! packages, installed with apt on demand (CI starts from a machine without them), and a
//! ChromeDriver on loopback that opens one headless session per test.
//!
//! ```ignore
//! let driver = ChromeDriver::start()?; // blocking: may install the packages first
//! let client = driver.new_session(390, 844).await?;
//! client.goto("http://127.0.0.1:PORT/").await?;
//! client.close().await?;
//! ```
//!
//! The machine has no network but the package registries: Chromium is started with every
//! background service off ([`CHROMIUM_ARGS`]), so that it never tries to reach Google.

use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::process::{Server, Spawned, install_lock, log_output, on_free_port, run, tools_dir};

/// Where Debian's packages put them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The Debian packages that hold [`CHROMIUM`] and [`CHROMEDRIVER`].
const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// How long apt may wait for another apt (or dpkg) to release its lock, in seconds.
const APT_LOCK_TIMEOUT: &str = "600";

/// Chromium's windows are at least this wide; a narrower session is an emulated phone.
pub const DESKTOP_MIN_WIDTH: u32 = 500;

/// Chromium's flags besides `--user-data-dir` and `--window-size`: headless as root in a
/// container, and no background networking (update checks, sync, field trials...), whose
/// connections this machine's closed network refuses by the dozen.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-default-browser-check",
    "--password-store=basic",
];

/// Chromium and ChromeDriver: [`CHROMIUM`] and [`CHROMEDRIVER`], installed with apt first if
/// either is missing (`apt-get update`, then `apt-get install -y --no-install-recommends
/// chromium chromium-driver`; through `sudo -n` when not root). Once per process, and under a
/// lock file in [`tools_dir`] across the test processes of one `cargo test`. The error says
/// what apt answered.
pub fn ensure_installed() -> Result<(PathBuf, PathBuf), String> {
    static INSTALLED: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            install().map_err(|e| {
                format!(
                    "cannot install Chromium for the browser tests ({} and {} from Debian's \
                     packages {}): {e}",
                    CHROMIUM,
                    CHROMEDRIVER,
                    PACKAGES.join(" and ")
                )
            })
        })
        .clone()
}

fn installed() -> Option<(PathBuf, PathBuf)> {
    let (chromium, driver) = (PathBuf::from(CHROMIUM), PathBuf::from(CHROMEDRIVER));
    (chromium.is_file() && driver.is_file()).then_some((chromium, driver))
}

fn install() -> io::Result<(PathBuf, PathBuf)> {
    if let Some(found) = installed() {
        return Ok(found);
    }
    // Test binaries of one `cargo test` start at once: one installs, the others wait and find it.
    let _lock = install_lock(&tools_dir(), "chromium")?;
    if let Some(found) = installed() {
        return Ok(found);
    }
    let started = Instant::now();
    apt(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(PACKAGES);
    apt(&install)?;
    let found = installed().ok_or_else(|| {
        io::Error::other(format!(
            "apt-get installed {} but {CHROMIUM} or {CHROMEDRIVER} is missing",
            PACKAGES.join(" ")
        ))
    })?;
    eprintln!(
        "installed {} with apt-get in {:.0?}",
        PACKAGES.join(" and "),
        started.elapsed()
    );
    Ok(found)
}

/// `apt-get <args>`, non-interactive, waiting for the dpkg lock; as root, else through `sudo -n`.
fn apt(args: &[&str]) -> io::Result<()> {
    let root = is_root();
    let mut command = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        // sudo resets the environment: env sets it on the other side.
        sudo.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        sudo
    };
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-q", "-o"])
        .arg(format!("DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"))
        .args(args);
    let missing = if root {
        "apt-get not found: the browser tests need a Debian machine (or chromium and chromedriver at /usr/bin)"
    } else {
        "sudo not found: not root, so apt-get needs sudo -n to install chromium"
    };
    run(&mut command, missing)
}

/// Whether this process runs as root (uid 0), from /proc: the one thing apt needs.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A ChromeDriver on a free port of 127.0.0.1. Dropping it quits every browser it started
/// (its `/shutdown`, then SIGKILL to its process group) and removes their profiles.
#[derive(Debug)]
pub struct ChromeDriver {
    server: Server,
    /// ChromeDriver's pid, which is also its process group's: Chromium's processes are in it.
    group: u32,
    chromium: PathBuf,
    /// The `--user-data-dir` of each session, removed on drop.
    profiles: Mutex<Vec<PathBuf>>,
}

impl ChromeDriver {
    /// Installs Chromium if missing ([`ensure_installed`]), starts ChromeDriver on a free port,
    /// waits until it is ready. Blocking: from async code, in `spawn_blocking`.
    pub fn start() -> Result<ChromeDriver, String> {
        let (chromium, driver) = ensure_installed()?;
        on_free_port(|port| launch(&driver, port))
            .map(|(server, group)| ChromeDriver {
                server,
                group,
                chromium,
                profiles: Mutex::new(Vec::new()),
            })
            .map_err(|e| format!("cannot start {}: {e}", driver.display()))
    }

    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> &str {
        &self.server.endpoint
    }

    /// A new headless Chromium of its own (a new empty profile) whose viewport is `width` x
    /// `height` CSS pixels. Narrower than 500 (Chromium's smallest window), it is a phone's
    /// (ChromeDriver's mobile emulation at that size: mobile viewport, touch, pixel ratio 1).
    /// Close it with `client.close()` when done.
    pub async fn new_session(&self, width: u32, height: u32) -> Result<fantoccini::Client, String> {
        let profile =
            std::env::temp_dir().join(format!("paybridge-chromium-{}", ulid::Ulid::new()));
        fs::create_dir_all(&profile)
            .map_err(|e| format!("cannot create {}: {e}", profile.display()))?;
        self.profiles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(profile.clone());
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let mut options = serde_json::json!({
            "binary": self.chromium,
            "args": args,
        });
        if width < DESKTOP_MIN_WIDTH {
            // A phone: its viewport, the page's `<meta name="viewport">` honoured, touch.
            options["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": {
                    "width": width,
                    "height": height,
                    "pixelRatio": 1,
                    "mobile": true,
                    "touch": true,
                },
            });
        }
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let mut builder = fantoccini::ClientBuilder::rustls()
            .map_err(|e| format!("cannot set up the WebDriver client's TLS: {e}"))?;
        builder
            .capabilities(capabilities)
            .connect(self.endpoint())
            .await
            .map_err(|e| {
                format!(
                    "ChromeDriver at {} could not start {} ({width}x{height}): {e}",
                    self.endpoint(),
                    self.chromium.display()
                )
            })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // Quits the browsers of sessions still open (a test that panicked before closing).
        let _ = http_get(&self.server.endpoint, "/shutdown", Duration::from_secs(5));
        // Whatever is left of ChromeDriver's process group (the Server's drop kills ChromeDriver
        // itself; orphaned Chromium processes would outlive it). ChromeDriver is not reaped
        // until then, so its pid, the group's id, cannot have been reused.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.group)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        for profile in self.profiles.get_mut().unwrap_or_else(|e| e.into_inner()) {
            let _ = fs::remove_dir_all(profile);
        }
    }
}

/// Spawns ChromeDriver on `port` in a process group of its own and waits until `/status` says it
/// is ready: the server and the group's id. A taken port is `AddrInUse`.
fn launch(driver: &Path, port: u16) -> io::Result<(Server, u32)> {
    let logs = tools_dir().join("chromedriver-logs");
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{port}.log"));
    let mut command = Command::new(driver);
    command
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .process_group(0);
    log_output(&mut command, &log)?;
    let child = command.spawn()?;
    let group = child.id();
    let endpoint = format!("http://127.0.0.1:{port}");
    let spawned = Spawned {
        child,
        name: "ChromeDriver",
        port,
        log,
        remove_log: true,
        port_taken: &["Address already in use", "port not available"],
    };
    let server = spawned.wait_ready(|left| {
        http_get(&endpoint, "/status", left.min(Duration::from_secs(2)))
            .is_ok_and(|(status, body)| status == 200 && body.contains("\"ready\":true"))
    })?;
    Ok((server, group))
}

/// A GET on loopback, answered as status and body (text). ChromeDriver keeps the connection
/// open whatever the request says, so the body is read up to its Content-Length.
fn http_get(endpoint: &str, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let authority = endpoint.trim_start_matches("http://");
    let address = authority
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{authority}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk)?;
        response.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if read == 0 || length.is_some_and(|length| body.len() >= length) {
                let status = head
                    .strip_prefix("HTTP/1.")
                    .and_then(|rest| rest.get(2..5))
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line")
                    })?;
                return Ok((status, body.to_owned()));
            }
        }
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a whole HTTP answer",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs Chromium if needed, opens a headless session at a phone's width, and reads back
    /// the size the page sees.
    #[tokio::test]
    async fn a_session_has_the_window_size_asked_for() {
        let driver = tokio::task::spawn_blocking(ChromeDriver::start)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
        let page = "data:text/html,<meta name=viewport content='width=device-width'><p>hi</p>";
        let size = "return [window.innerWidth, window.innerHeight]";
        for (width, height) in [(390, 844), (1280, 900)] {
            let client = driver.new_session(width, height).await.unwrap();
            client.goto(page).await.unwrap();
            let seen = client.execute(size, Vec::new()).await.unwrap();
            client.close().await.unwrap();
            assert_eq!(
                seen[0],
                serde_json::json!(width),
                "{width}x{height}: {seen}"
            );
        }
    }
}
