//! Test harness: a real Kafka-protocol broker (librdkafka's mock cluster, in this process but
//! listening on loopback TCP), `osn start` processes configured against it, and HTTP/websocket
//! clients. Every wait is on a condition with a deadline.
//!
//! - [`crypto`]: the shared organisations and identities;
//! - [`brokers`]: the mock cluster and tansu;
//! - [`process`]: `osn start` processes ([`OsnSpec`], [`Osn`]);
//! - [`clients`]: broadcasts, deliveries, config transactions;
//! - [`chains`]: checks of chains across OSNs;
//! - [`in_process`]: channels started in the test process;
//! - [`raw_ws`]: a byte-level websocket client;
//! - [`browser`]: headless chromium over the DevTools protocol.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use osn::cli::client::{read_authorization, seek_request, transaction};
use osn::identity::{create_ca, issue, KeyType, Role, SigningIdentity, Validity};
use osn::kafka::embedded::EmbeddedKafka;
use osn::proto::orderer::deliver_response;
use osn::proto::{Block, BroadcastResponse, DeliverResponse, Envelope, SeekInfo};
use prost::Message as _;

mod brokers;
pub mod browser;
mod chains;
mod clients;
mod crypto;
mod in_process;
mod process;
pub mod raw_ws;

pub use brokers::*;
pub use chains::*;
pub use clients::*;
pub use crypto::*;
pub use in_process::*;
pub use process::*;

/// A tmpfs of a given size on a new directory (a disk that fills up), unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None, saying why on stderr, where the machine forbids mounts (not root, no
    /// CAP_SYS_ADMIN): the tests that need one are then skipped (RELIABILITY.md says so).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: this machine forbids mounting a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes its size (`mount -o remount,size=…`): room again on a full disk.
    pub fn resize(&self, size: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.path()).status();
        assert!(status.is_ok_and(|s| s.success()), "remount {} with size={size}", self.path().display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process killed a moment ago may still hold files there.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A fresh channel name, also the topic name.
pub fn channel_name(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Polls `check` until it returns Some, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}
