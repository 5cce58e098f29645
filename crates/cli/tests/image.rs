//! The container image, built here as the release builds it (`scripts/image`: ./Containerfile
//! on a base assembled from this machine's files, podman, no pull), pushed with skopeo to a
//! local docker-registry and checked from there and from its exported root filesystem, entered
//! with `chroot --userspec=65532:65532` (no container can run on these machines; loopback is
//! shared, so the image's binary reaches servers started here).
//!
//! To keep `./scripts/test` bounded, the image is built once per run from the debug binary
//! cargo just built for these tests (stripped by the script): every property checked here —
//! user, entrypoint, labels, the files the image holds, that every shared library is there and
//! that the CA bundle is the one the binary loads — is the same for the release binary. The
//! release image's size (`scripts/image` with no `--binary`) is measured in the README's figures;
//! here the compressed size is held to the goal too, with the debug binary's extra weight.
//!
//! Needs podman, skopeo and docker-registry (./scripts/test installs them); fails, never skips,
//! without them.

mod common;
mod support_cloud;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use irsa_sandbox::apiserver::Tls;
use serde_json::Value;
use support_cloud::{ACCOUNT, SandboxCloud};

const ECR: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
/// The goal for the image's compressed size (what a node pulls).
const MAX_COMPRESSED: u64 = 25 * 1024 * 1024;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} not found: ./scripts/test installs it (apt-get install podman skopeo docker-registry)"
    );
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Waits until `addr` accepts TCP connections, up to `deadline`.
fn wait_listening(addr: &str, deadline: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(start.elapsed() < deadline, "{addr} never listened");
        std::thread::yield_now();
    }
}

/// Debian's docker-registry (CNCF distribution), plain HTTP on loopback, until dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: common::TempDir,
}

impl Registry {
    fn start() -> Registry {
        require("docker-registry");
        let dir = common::TempDir::new("image-registry");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.write(
            "config.yml",
            &format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.0.join("data").display()
            ),
        );
        let child = Command::new("docker-registry")
            .args(["serve", &config])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        wait_listening(&addr, Duration::from_secs(20));
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image, built once for every test in this file. It holds no process: the registry it
/// was pushed to is read (`skopeo inspect`) and stopped before the first test uses it, since
/// a static is never dropped and a registry kept in one would outlive the test run.
struct Built {
    /// The image's config, as the registry serves it (`skopeo inspect --config`).
    config: Value,
    /// The image's manifest, as the registry serves it (`skopeo inspect --raw`).
    manifest: Value,
    /// Its exported root filesystem.
    rootfs: PathBuf,
    /// The CA (and its server certificate for 127.0.0.1) that only the image's bundle trusts.
    tls: Tls,
    /// The process id the registry had.
    registry_pid: u32,
}

fn image() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        for tool in ["podman", "skopeo", "chroot"] {
            require(tool);
        }
        let registry = Registry::start();
        let tls = Tls::generate().expect("a test CA");
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        // The machine's bundle plus a CA nothing else on this machine trusts.
        let mut bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt")
            .expect("the machine's CA bundle (apt-get install ca-certificates)");
        bundle.push_str(tls.ca_pem());
        std::fs::write(work.join("ca-bundle.crt"), bundle).unwrap();
        let rootfs = work.join("rootfs");
        let reference = format!("{}/irsa:test", registry.addr);
        let out = run(Command::new(workspace().join("scripts/image"))
            .current_dir(workspace())
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_irsa"))
            .args(["--tag", "localhost/irsa:test", "--push", &reference])
            .arg("--ca-bundle")
            .arg(work.join("ca-bundle.crt"))
            .arg("--export")
            .arg(&rootfs));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("pushed {reference}")), "{stdout}");
        let built = Built {
            config: skopeo_inspect(&reference, &["--config"]),
            manifest: skopeo_inspect(&reference, &["--raw"]),
            rootfs,
            tls,
            registry_pid: registry.child.id(),
        };
        // Stopped (and waited for) here: nothing of this file runs past its tests.
        drop(registry);
        built
    })
}

fn skopeo_inspect(reference: &str, args: &[&str]) -> Value {
    let out = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .args(args)
        .arg(format!("docker://{reference}")));
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

/// `irsa ARGS` inside the image's root filesystem as uid/gid 65532, with only `env`.
fn in_image(args: &[&str], env: &[(&str, &str)]) -> common::Run {
    let built = image();
    // The child's environment is cleared, so name chroot by its path.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("chroot (coreutils) is installed");
    let out = Command::new(chroot)
        .arg("--userspec=65532:65532")
        .arg(&built.rootfs)
        .arg("/usr/local/bin/irsa")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("chroot runs");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_registry_is_stopped_once_the_image_is_built() {
    let pid = image().registry_pid;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "docker-registry (pid {pid}) still runs: it would outlive the test run"
    );
}

#[test]
fn the_image_config_runs_irsa_as_non_root_with_oci_labels() {
    let config = &image().config;
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "{config:#}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/irsa"]));
    let labels = &c["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/irsa-dev/irsa"
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or_default();
    assert!(
        revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
        "revision label {revision:?} is not a commit"
    );
    assert_eq!(config["os"], "linux");
}

#[test]
fn the_image_is_small_and_holds_only_the_binary_its_libraries_and_certificates() {
    let manifest = &image().manifest;
    let compressed: u64 = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["size"].as_u64().expect("layer size"))
        .sum::<u64>()
        + manifest["config"]["size"].as_u64().expect("config size");
    let rootfs = &image().rootfs;
    let mut files = Vec::new();
    let mut uncompressed = 0;
    let mut stack = vec![rootfs.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let path = entry.path();
                let file = path.strip_prefix(rootfs).unwrap().display().to_string();
                // The scratch directory another test of this run writes into the exported
                // root filesystem (not part of the image).
                if file.starts_with(&format!("tmp/login-{}/", std::process::id())) {
                    continue;
                }
                uncompressed += meta.len();
                files.push(file);
            }
        }
    }
    files.sort();
    eprintln!(
        "image (debug binary): {compressed} bytes compressed, {uncompressed} bytes uncompressed"
    );
    assert!(
        compressed < MAX_COMPRESSED,
        "{compressed} bytes compressed, goal < {MAX_COMPRESSED}"
    );
    let expected_fixed = [
        "etc/group",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
        "lib",
        "lib64",
        "usr/local/bin/irsa",
    ];
    for f in expected_fixed {
        assert!(files.iter().any(|x| x == f), "{f} missing: {files:?}");
    }
    // Anything else is a shared library the binary links (and nothing else: no shell).
    for f in &files {
        assert!(
            expected_fixed.contains(&f.as_str()) || f.starts_with("usr/lib") && f.contains(".so"),
            "unexpected file in the image: {f} (all: {files:?})"
        );
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
}

#[test]
fn irsa_runs_from_the_image_root_filesystem_as_65532() {
    let version = in_image(&["--version"], &[]);
    assert_eq!(version.code, 0, "{}", version.stderr);
    assert_eq!(
        version.stdout.trim(),
        format!("irsa {}", env!("CARGO_PKG_VERSION"))
    );
    let install = in_image(&["install"], &[]);
    assert_eq!(install.code, 0, "{}", install.stderr);
    let committed = std::fs::read_to_string(workspace().join("deploy/install.yaml")).unwrap();
    assert_eq!(install.stdout, committed);
    let help = in_image(&["controller", "--help"], &[]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(help.stdout.contains("--leader-elect"), "{}", help.stdout);
}

/// STS and ECR of the sandbox cloud behind HTTPS whose certificate only the image's bundle
/// trusts: `irsa login` in the chroot succeeds, and fails once that bundle is the machine's.
#[test]
fn https_from_the_image_trusts_exactly_the_image_ca_bundle() {
    let built = image();
    let cloud = SandboxCloud::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tls = built.tls.clone();
    let router = cloud.cloud.router();
    runtime.spawn(async move {
        let _ = irsa_sandbox::apiserver::serve_tls(listener, &tls, router, async move {
            let _ = stopped.await;
        })
        .await;
    });
    // The token file and the cache inside the image's /tmp, readable by 65532 only.
    let tmp = built
        .rootfs
        .join("tmp")
        .join(format!("login-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("token"), cloud.token()).unwrap();
    run(Command::new("chown").args(["-R", "65532:65532"]).arg(&tmp));
    let inside = format!("/tmp/{}", tmp.file_name().unwrap().to_string_lossy());
    let role = format!("arn:aws:iam::{ACCOUNT}:role/puller");
    let token = format!("{inside}/token");
    let cache = format!("{inside}/cache");
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ROLE_ARN", role.as_str()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
        ("XDG_CACHE_HOME", cache.as_str()),
        ("IRSA_LOG", "warn"),
    ];
    let login = in_image(&["login", ECR, "--no-cache"], &env);
    assert_eq!(
        login.code, 0,
        "irsa login over HTTPS failed:\n{}",
        login.stderr
    );
    assert!(login.stdout.contains(ECR), "{}", login.stdout);
    assert_eq!(cloud.calls("sts", "AssumeRoleWithWebIdentity"), 1);

    // The control: the same call with the machine's bundle in its place is refused.
    let bundle = built.rootfs.join("etc/ssl/certs/ca-certificates.crt");
    let ours = std::fs::read(&bundle).unwrap();
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", &bundle).unwrap();
    let refused = in_image(&["login", ECR, "--no-cache"], &env);
    std::fs::write(&bundle, ours).unwrap();
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.to_lowercase().contains("certificate")
            || refused.stderr.contains("UnknownIssuer")
            || refused.stderr.to_lowercase().contains("dispatch failure"),
        "{}",
        refused.stderr
    );
    assert_eq!(cloud.calls("sts", "AssumeRoleWithWebIdentity"), 1);
    let _ = stop.send(());
    runtime.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&tmp);
}
