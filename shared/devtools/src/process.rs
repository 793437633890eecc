//! The process plumbing the launchers share: where tools are installed and the lock around
//! installing them, free loopback ports, starting a child and waiting until it answers, and one
//! instance per test process. Each launcher keeps its own install, command and readiness check.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Idle, DynamoDB Local answers after about 1 s and moto after 0.5 s; while the machine compiles, up to ~10 s.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root: two levels above this crate's CARGO_MANIFEST_DIR.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("CARGO_MANIFEST_DIR is <repo>/shared/devtools")
        .to_path_buf()
}

/// Where tools are installed: env PAYBRIDGE_TOOLS_DIR, else `<repo>/.local` (git-ignored).
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("PAYBRIDGE_TOOLS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".local"),
    }
}

/// Locks `<tools>/<name>.lock` (creating `tools` if missing) until the returned file is dropped:
/// the test binaries of one `cargo test` start at once, and only one of them may install.
pub(crate) fn install_lock(tools: &Path, name: &str) -> io::Result<File> {
    fs::create_dir_all(tools).map_err(|e| {
        annotate(
            e,
            &format!(
                "cannot create tools dir {} (PAYBRIDGE_TOOLS_DIR)",
                tools.display()
            ),
        )
    })?;
    let path = tools.join(format!("{name}.lock"));
    // Never written: it only has to exist.
    let lock = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| annotate(e, &format!("cannot open {}", path.display())))?;
    lock.lock()
        .map_err(|e| annotate(e, &format!("cannot lock {}", path.display())))?;
    Ok(lock)
}

/// Runs a setup command (an install, a compile) to completion; its output only matters when it fails.
pub(crate) fn run(command: &mut Command, not_found: &str) -> io::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_found_hint(e, not_found))?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `launch` on a free port; the port can be taken between probing it and the child binding it,
/// so an `AddrInUse` is retried on another one, three tries in all.
pub(crate) fn on_free_port<T>(mut launch: impl FnMut(u16) -> io::Result<T>) -> io::Result<T> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match launch(free_port()?) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempts < 3 => continue,
            result => return result,
        }
    }
}

/// Gives `command` no stdin and sends its stdout and stderr to a new file `log`.
pub(crate) fn log_output(command: &mut Command, log: &Path) -> io::Result<()> {
    let out =
        File::create(log).map_err(|e| annotate(e, &format!("cannot create {}", log.display())))?;
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    Ok(())
}

/// A child just spawned to serve on 127.0.0.1:`port` with its output in `log` (see [`log_output`]).
pub(crate) struct Spawned {
    pub child: Child,
    /// For messages: "DynamoDB Local", "moto".
    pub name: &'static str,
    pub port: u16,
    pub log: PathBuf,
    /// Removed when the child stops or fails to start, rather than kept to be read later.
    pub remove_log: bool,
    /// Log text that means the port was taken (the start is then retried, see [`on_free_port`]).
    pub port_taken: &'static [&'static str],
}

impl Spawned {
    /// Polls until `ready` (given the time left) says the child answers. A child that exits first
    /// is an error, `AddrInUse` if its log says the port was taken; one that never answers is killed.
    pub(crate) fn wait_ready(self, mut ready: impl FnMut(Duration) -> bool) -> io::Result<Server> {
        let Spawned {
            mut child,
            name,
            port,
            log,
            remove_log,
            port_taken,
        } = self;
        let spawned = Instant::now();
        let deadline = spawned + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                let tail = log_tail(&log);
                let seen = if remove_log {
                    let _ = fs::remove_file(&log);
                    String::new()
                } else {
                    format!("; end of {}", log.display())
                };
                let kind = if port_taken.iter().any(|s| tail.contains(s)) {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(
                    kind,
                    format!(
                        "{name} exited while starting on 127.0.0.1:{port} ({status}){seen}:\n{tail}"
                    ),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{name} did not answer on 127.0.0.1:{port} within {} s; end of {}:\n{}",
                        START_TIMEOUT.as_secs(),
                        log.display(),
                        log_tail(&log)
                    ),
                ));
            }
            if ready(deadline - now) {
                return Ok(Server {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    child,
                    log,
                    remove_log,
                    ready_after: spawned.elapsed(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A child serving on loopback; dropping it kills it (SIGKILL: each launcher says why that is safe).
#[derive(Debug)]
pub(crate) struct Server {
    /// "http://127.0.0.1:PORT"
    pub(crate) endpoint: String,
    child: Child,
    pub(crate) log: PathBuf,
    remove_log: bool,
    /// From spawning the child to its first answer (reported by the tests and by Debug).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests"))]
    pub(crate) ready_after: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_log {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// One server per test process, kept in `shared` (a static of the launcher's own), or the endpoint
/// in env var `env` if set. Panics with a clear message if it cannot start.
pub(crate) fn shared_for_tests(
    shared: &'static OnceLock<Result<String, String>>,
    env: &str,
    name: &str,
    start: impl FnOnce() -> io::Result<Server>,
) -> &'static str {
    // The error is kept too, so every test fails fast with it instead of each retrying a 60 s start.
    let endpoint = shared.get_or_init(|| match std::env::var(env) {
        Ok(endpoint) if !endpoint.is_empty() => Ok(endpoint),
        // Never dropped: the child exits with this test process (both launchers watch their parent).
        _ => start()
            .map(|server| Box::leak(Box::new(server)).endpoint.clone())
            .map_err(|e| e.to_string()),
    });
    endpoint.as_deref().unwrap_or_else(|e| {
        panic!(
            "cannot start {name} for tests: {e}\n\
             (or set {env}=http://127.0.0.1:PORT to use one that is already running)"
        )
    })
}

/// The last lines of a log, for error messages.
fn log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

pub(crate) fn annotate(e: io::Error, context: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

pub(crate) fn not_found_hint(e: io::Error, hint: &str) -> io::Error {
    if e.kind() == io::ErrorKind::NotFound {
        io::Error::new(e.kind(), hint.to_owned())
    } else {
        e
    }
}

/// `<tools>/<name>-venv/bin/python` with `package` (a pinned requirement, `name==x.y.z`) installed
/// from PyPI, installing it first if missing or pinned otherwise. `purpose` says in the
/// "python3 not found" message what it is for.
pub(crate) fn python_with(name: &str, package: &str, purpose: &str) -> io::Result<PathBuf> {
    let tools = tools_dir();
    let lock = install_lock(&tools, name)?;
    let venv = tools.join(format!("{name}-venv"));
    let python = venv.join("bin/python");
    // Written after a successful install, so changing the pin reinstalls.
    let marker = venv.join("installed.txt");
    if python.is_file() && fs::read_to_string(&marker).is_ok_and(|s| s == package) {
        return Ok(python);
    }
    // A venv left half-made by an interrupted install, or for another version: start clean.
    let _ = fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        &format!(
            "python3 not found: install Python 3.9 or newer with its venv module (used to run {purpose})"
        ),
    )?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .arg("--disable-pip-version-check")
            .arg(package)
            .env("PIP_CACHE_DIR", tools.join("pip-cache")),
        "the new virtualenv has no python",
    )?;
    fs::write(&marker, package)?;
    drop(lock);
    Ok(python)
}
