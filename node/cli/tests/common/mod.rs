//! A real `stele` node as a child process on 127.0.0.1, and the CLI.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use stele_rpc::SteleApiClient;

pub const STELE: &str = env!("CARGO_BIN_EXE_stele");

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Node {
    pub child: Child,
    pub data_dir: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    /// From spawning to the first health answer.
    pub startup: Duration,
}

impl Node {
    /// Starts `stele node start --dev` and waits (bounded) until
    /// `chain_getHealth` answers.
    pub fn start(data_dir: &Path, port: u16) -> Node {
        let log = data_dir.with_extension(format!("log-{}", Instant::now().elapsed().as_nanos()));
        let log = PathBuf::from(format!(
            "{}-{port}-{}.log",
            log.display(),
            std::process::id()
        ));
        let spawned = Instant::now();
        let child = Command::new(STELE)
            .args(["node", "start", "--dev", "--block-interval-ms", "100"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--rpc-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the stele binary starts");
        let mut node = Node {
            child,
            data_dir: data_dir.to_path_buf(),
            port,
            log,
            startup: Duration::ZERO,
        };
        node.wait_healthy(Duration::from_secs(60));
        node.startup = spawned.elapsed();
        node
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> HttpClient {
        HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(120))
            .max_request_size(8 * 1024 * 1024)
            .build(self.url())
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls health until it answers or `limit` passes (then fails with the
    /// node's log).
    pub fn wait_healthy(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = self.client();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the node exited with {status}:\n{}", self.log_text());
            }
            if let Ok(health) = runtime.block_on(client.chain_get_health()) {
                assert!(health.healthy, "unhealthy: {health:?}");
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "no health answer within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Runs the CLI against this node with `--json`; returns parsed stdout.
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        let output = Command::new(STELE)
            .arg("--json")
            .args(args)
            .env("STELE_RPC", self.url())
            .env("STELE_DATA_DIR", &self.data_dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "stele {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "stele {args:?} printed no JSON ({error}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
