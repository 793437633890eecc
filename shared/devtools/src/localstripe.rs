//! localstripe, a Python fake of Stripe's API, for the Stripe adapter's tests: installed on
//! demand into a virtualenv under the tools dir, started through a small launcher that binds
//! 127.0.0.1 (localstripe's own CLI binds `::`) and keeps its pickle file (hard-coded to
//! `/tmp/localstripe.pickle`) in a temporary folder of its own, removed when it stops
//! (research/local-stack.md section 6).
//!
//! It accepts any secret key that starts with `sk_` and refuses every other one with 401. It
//! does not implement `Idempotency-Key` replays or the Search API.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{Server, Spawned, log_output, on_free_port, tools_dir};

/// Pinned: the version research/local-stack.md section 6 verified.
const LOCALSTRIPE_PACKAGE: &str = "localstripe==1.15.10";
/// Env var that makes [`shared_for_tests`] use an already running localstripe.
const TEST_ENDPOINT_ENV: &str = "PAYBRIDGE_TEST_LOCALSTRIPE_ENDPOINT";
/// Starts localstripe's aiohttp app on 127.0.0.1 with its pickle file moved, after starting a
/// watcher that exits with the parent. Arguments: parent pid, log file, port, state folder.
const LAUNCHER: &str = r#"
import os, pickle, shutil, socket, sys, threading, time

parent, log, port, state = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(state, exist_ok=True)
pickle_path = os.path.join(state, "localstripe.pickle")

def clean_up():
    shutil.rmtree(state, ignore_errors=True)
    try:
        os.remove(log)
    except OSError:
        pass

def exit_with_parent():
    # A parent that died before this started is caught too: we were re-parented at once.
    while os.getppid() == parent:
        time.sleep(0.5)
    clean_up()
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()

from localstripe import resources

def dump_to_disk(self):
    with open(pickle_path, "wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

resources.Store.dump_to_disk = dump_to_disk
# Always from scratch: nothing of another run is loaded.
resources.Store.try_load_from_disk = lambda self: None

from aiohttp import web
from localstripe.server import app

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", port))
web.run_app(app, sock=sock, print=None)
"#;

/// A running localstripe; dropping it kills it and removes its log and state folder. It keeps
/// everything in memory (and the pickle): nothing is lost that a test would want.
#[derive(Debug)]
pub struct LocalStripe {
    server: Server,
    state: PathBuf,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        // The server is killed by its own Drop, after this.
        let _ = fs::remove_dir_all(&self.state);
    }
}

impl LocalStripe {
    /// Installs localstripe if missing, starts it on a free port of 127.0.0.1, waits until it answers.
    pub fn start() -> io::Result<LocalStripe> {
        let python = ensure_installed()?;
        let (server, state) = on_free_port(|port| launch(&python, port))?;
        Ok(LocalStripe { server, state })
    }

    /// "http://127.0.0.1:PORT"
    pub fn endpoint(&self) -> &str {
        &self.server.endpoint
    }
}

/// One localstripe per test process, or the endpoint in PAYBRIDGE_TEST_LOCALSTRIPE_ENDPOINT.
/// Shared by every test of the process and never reset: tests tell their own objects apart by
/// their ids and metadata. Panics with a clear message if it cannot start.
pub fn shared_for_tests() -> &'static str {
    static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
    crate::process::shared_for_tests(&SHARED, TEST_ENDPOINT_ENV, "localstripe", || {
        // Its state folder goes with it: the launcher removes it when this process exits.
        let python = ensure_installed()?;
        on_free_port(|port| launch(&python, port)).map(|(server, _state)| server)
    })
}

/// `<tools>/localstripe-venv/bin/python` with the pinned localstripe, installed first if missing.
fn ensure_installed() -> io::Result<PathBuf> {
    crate::process::python_with("localstripe", LOCALSTRIPE_PACKAGE, "localstripe")
}

fn command(python: &Path, port: u16, parent: u32, log: &Path, state: &Path) -> io::Result<Command> {
    let mut command = Command::new(python);
    command
        .arg("-c")
        .arg(LAUNCHER)
        .arg(parent.to_string())
        .arg(log)
        .arg(port.to_string())
        .arg(state);
    log_output(&mut command, log)?;
    Ok(command)
}

/// Spawns localstripe on `port` and waits until it answers (401 to an unauthenticated GET).
fn launch(python: &Path, port: u16) -> io::Result<(Server, PathBuf)> {
    let logs = tools_dir().join("localstripe-logs");
    fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{port}.log"));
    let state = std::env::temp_dir().join(format!(
        "paybridge-localstripe-{}-{port}",
        std::process::id()
    ));
    let child = command(python, port, std::process::id(), &log, &state)?.spawn()?;
    let spawned = Spawned {
        child,
        name: "localstripe",
        port,
        log,
        remove_log: true,
        port_taken: &["Address already in use"],
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = spawned.wait_ready(|_| {
        crate::moto::http_get(&endpoint, "/v1/customers", Duration::from_secs(2))
            .is_ok_and(|(s, _)| s == 401)
    });
    match server {
        Ok(server) => Ok((server, state)),
        Err(e) => {
            let _ = fs::remove_dir_all(&state);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_loopback_keeps_its_state_aside_and_stops_on_drop() {
        let started = std::time::Instant::now();
        let ls = LocalStripe::start().expect("start localstripe");
        println!(
            "localstripe: spawn to ready {:?}, start() total (with any install) {:?}, {}",
            ls.server.ready_after,
            started.elapsed(),
            ls.endpoint()
        );
        let endpoint = ls.endpoint().to_owned();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        let state = ls.state.clone();
        let log = ls.server.log.clone();
        drop(ls);
        assert!(
            crate::moto::http_get(&endpoint, "/v1/customers", Duration::from_secs(2)).is_err(),
            "localstripe still answers after drop"
        );
        assert!(!log.exists(), "{} was left behind", log.display());
        assert!(!state.exists(), "{} was left behind", state.display());
    }
}
