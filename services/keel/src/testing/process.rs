//! Processes for end-to-end tests: service binaries and their Envoys started with a
//! log file each, the lock on the fixed local ports, readiness polls and a GraphQL client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{infra_var, repo_root};

/// A child process stopped (SIGTERM, then SIGKILL) when dropped; its output goes to a
/// log file under `target/e2e-logs/` that failures point at.
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM and wait; returns whether it exited by itself within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// SIGKILL, as a crash would: no handler runs, nothing is flushed or closed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit by itself; its status, or `None`
    /// if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGINT (Ctrl-C) and wait up to `grace`; the exit status, or `None` if it was
    /// still running (it is then killed).
    pub fn interrupt(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    /// The whole output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            self.terminate(Duration::from_secs(5));
        }
    }
}

/// Held while a test uses the generated local ports (they are fixed, so two stacks
/// cannot run at once): an exclusive `flock` on `target/e2e-logs/.ports.lock`, released
/// when dropped. It serializes tests across threads and across test binaries.
pub struct PortsLock {
    _file: std::fs::File,
}

/// Blocks until no other test holds the ports (see [`PortsLock`]).
pub fn lock_ports() -> PortsLock {
    use std::os::fd::AsRawFd;
    let path = log_dir().join(".ports.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("ports lock file");
    // SAFETY: flock on a file descriptor this function owns for the call's duration.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    PortsLock { _file: file }
}

fn log_dir() -> PathBuf {
    let dir = repo_root().join("target/e2e-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Where cargo put this test's sibling binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target dir")
}

/// Builds the given packages' binaries in this repository's workspace (cargo does
/// nothing when they are fresh).
pub fn build_binaries(packages: &[&str]) {
    build_binaries_in(&repo_root(), packages);
}

/// Builds the given packages' binaries in the workspace of folder `dir`.
pub fn build_binaries_in(dir: &Path, packages: &[&str]) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build").current_dir(dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {packages:?} failed");
}

pub fn spawn(name: &str, program: &Path, args: &[&str], env: &[(&str, String)]) -> Process {
    let log = log_dir().join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let err = file.try_clone().expect("log file clone");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
    Process {
        name: name.to_string(),
        child,
        log,
    }
}

/// Starts the Envoy of `deployable` with its generated local config in `configs`
/// (a system's `generated/envoy/local`).
pub fn envoy(configs: &Path, deployable: &str) -> Process {
    let bin = PathBuf::from(infra_var("ENVOY_BIN"));
    let config = configs.join(format!("{deployable}.yaml"));
    spawn(
        &format!("{deployable}-envoy"),
        &bin,
        &[
            "-c",
            config.to_str().expect("utf-8 path"),
            "--use-dynamic-base-id",
            "--log-level",
            "warn",
        ],
        &[],
    )
}

/// Polls `url` until it answers 200, or panics with the processes' logs.
pub async fn wait_http_ok(url: &str, timeout: Duration, procs: &mut [&mut Process]) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await
            && r.status().is_success()
        {
            return;
        }
        for p in procs.iter_mut() {
            assert!(
                p.is_running(),
                "{} exited; log {}:\n{}",
                p.name,
                p.log.display(),
                p.log_tail()
            );
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = procs
                .iter()
                .map(|p| format!("--- {}:\n{}", p.name, p.log_tail()))
                .collect();
            panic!("{url} not ready after {timeout:?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until Envoy's admin reports its app cluster healthy (active health checks pass).
pub async fn wait_envoy_healthy(admin_port: u16, cluster: &str, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    let url = format!("http://127.0.0.1:{admin_port}/clusters");
    loop {
        if let Ok(r) = client.get(&url).send().await
            && let Ok(text) = r.text().await
            && text.lines().any(|l| {
                l.starts_with(&format!("{cluster}::")) && l.ends_with("health_flags::healthy")
            })
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster {cluster} of the Envoy on admin port {admin_port} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A GraphQL client for the BFF.
#[derive(Clone)]
pub struct Graphql {
    url: String,
    client: reqwest::Client,
    /// Sent as `Authorization: Bearer …`.
    token: Option<String>,
}

impl Graphql {
    pub fn new(url: impl Into<String>) -> Self {
        Graphql {
            url: url.into(),
            client: reqwest::Client::new(),
            token: None,
        }
    }

    /// The same endpoint, calling with `token`.
    pub fn with_token(&self, token: impl Into<String>) -> Graphql {
        Graphql {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `login`'s session (asserting it succeeded), and a client calling with its token.
    pub async fn login(&self, email: &str, password: &str) -> (Graphql, serde_json::Value) {
        let q = "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken expiresIn roles } }";
        let v = self
            .ok(
                q,
                serde_json::json!({"input": {"email": email, "password": password}}),
            )
            .await;
        let session = v["login"].clone();
        let token = session["accessToken"].as_str().expect("an access token");
        (self.with_token(token), session)
    }

    /// Where it posts.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The whole response (`data` and `errors`).
    pub async fn run(&self, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let mut post = self.client.post(&self.url);
        if let Some(t) = &self.token {
            post = post.bearer_auth(t);
        }
        let r = post
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .expect("graphql request");
        r.json().await.expect("graphql response is JSON")
    }

    /// `data`, asserting there are no errors.
    pub async fn ok(&self, query: &str, variables: serde_json::Value) -> serde_json::Value {
        let v = self.run(query, variables).await;
        assert!(
            v.get("errors").is_none_or(|e| e.is_null()),
            "unexpected errors: {v:#}"
        );
        v["data"].clone()
    }

    /// The first error's `extensions.code`, asserting there is one.
    pub async fn error_code(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> (String, serde_json::Value) {
        let v = self.run(query, variables).await;
        let err = v["errors"][0].clone();
        assert!(!err.is_null(), "expected an error: {v:#}");
        (
            err["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            err,
        )
    }
}
