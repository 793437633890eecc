//! Authorize.Net's official Python SDK (PyPI `authorizenet`), installed into
//! `<tools>/anet-sdk-venv` on first use, to drive Paybridge's Authorize.Net-compatible proxy as
//! a real client would: it sends XML built from the XSD and reads the answers with pyxb, which
//! refuses anything the XSD does not allow.

use std::io;
use std::path::PathBuf;
use std::process::Command;

/// Pinned: the version whose requests and strict answer parsing the tests were written against.
const SDK_PACKAGE: &str = "authorizenet==1.1.6";

/// The venv's python with the SDK.
pub fn python() -> io::Result<PathBuf> {
    crate::process::python_with("anet-sdk", SDK_PACKAGE, "Authorize.Net's Python SDK")
}

/// Runs `script` (Python source) with the SDK and `env`; answers its standard output, or an
/// error with its standard error when it fails.
pub fn run_script(script: &str, env: &[(&str, &str)]) -> io::Result<String> {
    let python = python()?;
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "the SDK script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
