//! The layers stay apart: the domain and the use cases depend on no AWS, HTTP or Lambda crate.

use std::process::Command;

#[test]
fn domain_and_app_have_no_io_crates() {
    for krate in ["domain", "app"] {
        let out = Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "-p",
                krate,
                "-e",
                "normal",
                "--prefix",
                "none",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo tree");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            tree.contains(krate),
            "cargo tree printed nothing useful: {tree}"
        );
        for forbidden in [
            "aws-", "lambda", "axum", "hyper", "tokio", "tower", "reqwest",
        ] {
            let found: Vec<&str> = tree.lines().filter(|l| l.starts_with(forbidden)).collect();
            assert!(found.is_empty(), "{krate} depends on {found:?}");
        }
    }
}
