//! The newcomer's path: `osn dev`, then `osn broadcast` and `osn deliver` in another shell.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use osn::proto::orderer::deliver_response;
use osn::proto::DeliverResponse;

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn osn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_osn")).args(args).output().expect("run osn")
}

/// `osn deliver` of devchannel from the oldest to the newest block.
fn deliver_all(url: &str, format: &str) -> std::process::Output {
    osn(&[
        "deliver",
        "--url",
        url,
        "--channel",
        "devchannel",
        "--start",
        "oldest",
        "--stop",
        "newest",
        "--format",
        format,
    ])
}

#[test]
fn dev_mode_then_broadcast_then_deliver() {
    let data = tempfile::tempdir().unwrap();
    let ledger = data.path().join("ledger");
    let mut child = Command::new(env!("CARGO_BIN_EXE_osn"))
        .args(["dev", "--http", "127.0.0.1:0", "--batch-timeout", "50ms", "--max-message-count", "30", "--data-dir"])
        .arg(&ledger)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("osn dev prints its address");
        banner.push_str(&line);
        banner.push('\n');
        if let Some(url) = line.strip_prefix("osn listening on ") {
            break url.to_owned();
        }
    };
    assert!(banner.contains("IN-MEMORY"), "dev mode says its broker is in memory:\n{banner}");

    // Dev mode prints its address only once the channel is ready.
    let out = osn(&["broadcast", "--url", &url, "--channel", "devchannel", "--count", "100", "--size", "1024"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "broadcast failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accepted 100/100"), "{stdout}");

    // Wait until all 100 are in blocks, then read them back as JSON lines.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = deliver_all(&url, "json");
        assert!(out.status.success(), "deliver failed: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<DeliverResponse> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a DeliverResponse per line"))
            .collect();
        let txs: usize = lines
            .iter()
            .filter_map(|r| match &r.r#type {
                Some(deliver_response::Type::Block(b)) if b.header.as_ref().unwrap().number > 0 => {
                    Some(b.data.as_ref().unwrap().data.len())
                }
                _ => None,
            })
            .sum();
        assert!(
            matches!(lines.last().and_then(|r| r.r#type.clone()), Some(deliver_response::Type::Status(200))),
            "ends with SUCCESS"
        );
        if txs == 100 {
            break;
        }
        assert!(txs < 100, "{txs} transactions for 100 sent");
        assert!(Instant::now() < deadline, "only {txs}/100 transactions delivered");
        std::thread::sleep(Duration::from_millis(50)); // a poll interval, not synchronisation
    }
    let out = deliver_all(&url, "summary");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("block      0") && summary.contains("status SUCCESS"), "{summary}");
    drop(dev);

    // Reusing the data directory of a dead in-memory broker is refused with a clear reason.
    let out = osn(&["dev", "--http", "127.0.0.1:0", "--data-dir", ledger.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("earlier `osn dev` broker"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_and_usage_errors_are_clear() {
    let out = osn(&["start", "--config", "/nonexistent/osn.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let out = osn(&["deliver", "--channel", "x", "--start", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'soon' is not oldest, newest or a block number"));
}
