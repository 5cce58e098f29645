//! Shared by the black-box tests: the workspace root, drift checks for committed files, and the
//! real Kubernetes OpenAPI schemas (PyPI `kubernetes-validate`, `--strict`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails, naming the first differing line and the command that regenerates the file, when the
/// committed `relative` path differs from `generated`.
pub fn assert_committed(relative: &str, generated: &str, regenerate: &str) {
    let path = workspace_root().join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; generate it with `{regenerate}`",
            path.display()
        )
    });
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "{relative} is out of date with the Rust code (first difference at {line}); \
             regenerate it from the workspace root with `{regenerate}` and commit it"
        );
    }
}

/// The venv holding `kubernetes-validate`; tests fail (never skip) without it.
pub fn validator() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/venv-k8s-validate"));
    let bin = venv.join("bin/kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: install the validator from the workspace root with\n  \
         python3 -m venv target/venv-k8s-validate && target/venv-k8s-validate/bin/pip install -r tests/requirements-validate.txt\n\
         or point IRSA_TEST_VENV_VALIDATE at a venv that has it",
        bin.display()
    );
    bin
}

/// Runs `kubernetes-validate --strict` for Kubernetes `version` (`1.37.0`) on `yaml`, written
/// to `name` in the test's temp dir. Returns whether it passed and everything it printed.
pub fn validate(name: &str, yaml: &str, version: &str) -> (bool, String) {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", version])
        .arg(&file)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
