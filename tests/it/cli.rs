//! The newcomer's path: `osn dev`, then `osn broadcast` and `osn deliver` in another shell.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use osn::proto::orderer::deliver_response;
use osn::proto::DeliverResponse;

use crate::harness::crypto;

/// Stops the process as an operator would (SIGTERM, so `osn dev` removes its temporary ledger),
/// then SIGKILL if it has not exited within 10 s.
pub struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let terminated = Command::new("kill").arg(self.0.id().to_string()).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while terminated && Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `osn` with the development identities of this test binary (not the user's ~/.osn).
pub fn osn_command() -> Command {
    // The dev identities, made once here: `osn dev` processes started at once by concurrent tests
    // would each find them missing and race to write the same files.
    static DEV_CRYPTO: std::sync::Once = std::sync::Once::new();
    DEV_CRYPTO.call_once(|| {
        osn::identity::dev_crypto(&crypto().root.join("dev")).expect("the dev identities");
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osn"));
    cmd.env("OSN_DEV_CRYPTO", crypto().root.join("dev")).env_remove("OSN_IDENTITY");
    cmd
}

fn osn(args: &[&str]) -> std::process::Output {
    osn_command().args(args).output().expect("run osn")
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

/// Starts `osn dev` with `args` (and `--data-dir`); returns it, its URL and its banner.
pub fn start_dev(args: &[&str], data_dir: Option<&std::path::Path>) -> (KillOnDrop, String, String) {
    let mut cmd = osn_command();
    cmd.args(["dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]).args(args);
    if let Some(dir) = data_dir {
        cmd.arg("--data-dir").arg(dir);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
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
    (dev, url, banner)
}

/// The dev broker keeps about 5 MB per partition; a client sending far more than the channel
/// can order at once is slowed to its pace (max-lag-bytes) instead of outrunning the consumer
/// and losing records.
#[test]
fn dev_mode_survives_a_batch_flood() {
    let (_dev, url, _) = start_dev(&[], None);
    let out = osn(&[
        "broadcast",
        "--url",
        &url,
        "--channel",
        "devchannel",
        "--mode",
        "batch",
        "--count",
        "20000",
        "--size",
        "2048",
        "--batch-size",
        "500",
        "--concurrency",
        "8",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = osn(&["channel", "info", "devchannel", "--url", &url, "--json"]);
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert_ne!(info["status"], "ERRORED", "{info}");
        if info["kafka"]["lastOffsetPersisted"].as_str() == Some("20000") {
            break;
        }
        assert!(Instant::now() < deadline, "not everything ordered: {info}");
        std::thread::sleep(Duration::from_millis(100)); // a poll interval, not synchronisation
    }
}

#[test]
fn dev_mode_then_broadcast_then_deliver() {
    let data = tempfile::tempdir().unwrap();
    let ledger = data.path().join("ledger");
    let (dev, url, banner) = start_dev(&["--batch-timeout", "50ms", "--max-message-count", "30"], Some(&ledger));
    assert!(banner.contains("IN-MEMORY"), "dev mode says its broker is in memory:\n{banner}");

    // Dev mode prints its address only once the channel is ready.
    let out = osn(&["broadcast", "--url", &url, "--channel", "devchannel", "--count", "100", "--size", "1024"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "broadcast failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accepted 100/100"), "{stdout}");

    // The dev client reads the channel's configuration: its organisation, and the dev orderers'.
    let out = osn(&["channel", "config", "get", "--channel", "devchannel", "--url", &url]);
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(config.contains("DevOrgMSP") && config.contains("OrdererMSP"), "{config}");

    // The dev admin creates another channel; its batch size is the orderer organisation's
    // admin's to change (/Channel/Orderer/Admins), not the client's nor DevOrgMSP's admin's.
    let admin = crypto().root.join("dev").join("dev-org").join("identities").join("admin");
    let admin = admin.to_str().unwrap();
    let orderer_admin = crypto().root.join("dev").join("orderer-org").join("identities").join("admin");
    let orderer_admin = orderer_admin.to_str().unwrap();
    let started = Instant::now();
    let out = osn(&["channel", "create", "--channel", "second", "--url", &url, "--identity", admin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("created channel second (status READY"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "creation took {:?}", started.elapsed());
    let update =
        ["channel", "config", "update", "--channel", "second", "--batch-size", "3", "--batch-timeout", "250ms"];
    for who in [None, Some(admin)] {
        let identity = who.map_or(vec![], |w| vec!["--identity", w]);
        let out = osn(&[&update[..], &["--url", &url], &identity[..]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("HTTP 403 BAD_REQUEST"), "{who:?}: {err}");
        assert!(err.contains("/Channel/Orderer/BatchSize not satisfied"), "{who:?}: {err}");
    }
    let out = osn(&[&update[..], &["--url", &url, "--identity", orderer_admin]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("configuration sequence 2") && text.contains("3 messages"), "{text}");
    assert!(text.contains("batch timeout  250ms"), "{text}");

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
    let out = osn(&["dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--data-dir", ledger.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("earlier `osn dev` broker"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn approvals_are_collected_offline_and_policies_and_anchor_peers_set_from_the_cli() {
    let (_dev, url, _) = start_dev(&[], None);
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str| files.path().join(name).to_str().unwrap().to_owned();
    let identity = |org: &str| crypto().root.join("dev").join(org).join("identities").join("admin");
    let (admin, orderer_admin) = (identity("dev-org"), identity("orderer-org"));
    let (admin, orderer_admin) = (admin.to_str().unwrap(), orderer_admin.to_str().unwrap());
    let run = |args: &[&str]| {
        let out = osn(&[args, &["--url", &url]].concat());
        (out.status.success(), text(&out))
    };

    // A creation written to a file, then sent (as `peer channel create -f` sends one).
    let created = file("create.pb");
    let (ok, out) = run(&["channel", "create", "--channel", "third", "--identity", admin, "--output", &created]);
    assert!(ok && out.contains("wrote the creation of channel third"), "{out}");
    let (ok, out) = run(&["channel", "config", "send", &created, "--identity", admin]);
    assert!(ok && out.contains("created channel third (status READY"), "{out}");

    // A batch size change is the orderer organisation's admins' to approve: written by DevOrg's
    // admin, refused as it stands, approved offline by the orderer admin, then accepted.
    let update = file("update.pb");
    let (ok, out) = run(&[
        "channel",
        "config",
        "update",
        "--channel",
        "third",
        "--batch-size",
        "7",
        "--identity",
        admin,
        "--output",
        &update,
    ]);
    assert!(ok && out.contains("wrote the update of channel third"), "{out}");
    let (ok, out) = run(&["channel", "config", "send", &update, "--identity", admin]);
    assert!(!ok && out.contains("HTTP 403 BAD_REQUEST") && out.contains("/Channel/Orderer/BatchSize"), "{out}");
    let (ok, out) = run(&["channel", "config", "sign", &update, "--identity", orderer_admin]);
    assert!(ok && out.contains("added the approval of OrdererMSP") && out.contains("(2 approvals)"), "{out}");
    let (ok, out) = run(&["channel", "config", "sign", &update, "--identity", orderer_admin]);
    assert!(ok && out.contains("already holds the approval") && out.contains("(2 approvals)"), "{out}");
    let (ok, out) = run(&["channel", "config", "send", &update, "--identity", admin]);
    assert!(ok && out.contains("configuration sequence 2") && out.contains("7 messages"), "{out}");

    // A policy in configtx.yaml's words and an anchor peer, by the organisation's admin.
    let (ok, out) = run(&[
        "channel",
        "config",
        "update",
        "--channel",
        "third",
        "--set-policy",
        "/Channel/Application/Writers=OR('DevOrgMSP.admin', 'DevOrgMSP.client')",
        "--set-policy",
        "Application/Endorsement=MAJORITY Endorsement",
        "--anchor-peer",
        "DevOrgMSP=peer0.dev.example.com:7051",
        "--identity",
        admin,
    ]);
    assert!(ok && out.contains("configuration sequence 3"), "{out}");
    let (ok, out) = run(&["channel", "config", "get", "--channel", "third", "--identity", admin, "--json"]);
    assert!(ok, "{out}");
    let config: serde_json::Value = serde_json::from_str(&out).unwrap();
    let application = &config["channel_group"]["groups"]["Application"];
    let anchors = &application["groups"]["DevOrgMSP"]["values"]["AnchorPeers"]["value"]["anchor_peers"];
    assert_eq!(anchors, &serde_json::json!([{"host": "peer0.dev.example.com", "port": 7051}]), "{config}");
    let writers = &application["policies"]["Writers"]["policy"];
    assert_eq!(writers["type"], 1, "a signature policy now: {writers}");
    assert_eq!(writers["value"]["identities"].as_array().unwrap().len(), 2, "{writers}");
    let endorsement = &application["policies"]["Endorsement"];
    assert_eq!(endorsement["mod_policy"], "Admins", "{endorsement}");
    assert_eq!(endorsement["policy"]["value"]["rule"], "MAJORITY", "{endorsement}");

    // Mistakes are named before anything is sent.
    for (flag, says) in [
        ("--set-policy=Application/Writers=OR('DevOrgMSP.boss')", "principal 'DevOrgMSP.boss'"),
        ("--set-policy=Application/Writers", "expected PATH=RULE"),
        ("--anchor-peer=DevOrgMSP=peer0", "expected ORG=HOST:PORT"),
        ("--anchor-peer=NoSuchMSP=peer0:7051", "no group /Channel/Application/NoSuchMSP"),
    ] {
        let (ok, out) = run(&["channel", "config", "update", "--channel", "third", flag, "--identity", admin]);
        assert!(!ok && out.contains(says), "{flag}: {out}");
    }
    let (ok, out) = run(&["channel", "config", "sign", &file("missing.pb"), "--identity", admin]);
    assert!(!ok && out.contains("cannot read"), "{out}");
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

/// Runs `osn` with `stdin` as its input.
fn osn_with_input(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = osn_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run osn");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[actix_rt::test]
async fn client_commands_against_a_running_osn() {
    use crate::harness::*;
    use osn::proto::Block;
    use prost::Message as _;

    let channel = channel_name("clicmd");
    let broker = Broker::with_topic(&channel);
    let osn_proc = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let url = osn_proc.url.as_str();
    let ch = channel.as_str();
    // Sign as Org1's client, a member of the channel.
    let identity = crypto().org1.join("identities").join("client");
    let identity = identity.to_str().unwrap();
    let osn = |args: &[&str]| osn_command().env("OSN_IDENTITY", identity).args(args).output().expect("run osn");

    // Four ways to broadcast (the last over Fabric's gRPC), generated or from stdin.
    let grpc = osn_proc.grpc_addr.as_str();
    for mode in ["single", "batch", "ws", "grpc"] {
        let out = osn(&[
            "broadcast",
            "--url",
            url,
            "--grpc",
            grpc,
            "--channel",
            ch,
            "--mode",
            mode,
            "--count",
            "150",
            "--batch-size",
            "40",
        ]);
        assert!(out.status.success(), "{mode}: {}", text(&out));
        assert!(text(&out).contains("accepted 150/150"), "{mode}: {}", text(&out));
    }
    let out = osn_with_input(
        &[
            "broadcast",
            "--url",
            url,
            "--channel",
            ch,
            "--input",
            "-",
            "--input-format",
            "lines",
            "--mode",
            "ws",
            "--identity",
            identity,
        ],
        b"first\nsecond\nthird\n",
    );
    assert!(text(&out).contains("accepted 3/3"), "{}", text(&out));
    let chain = osn_proc.wait_for_transactions(603, Duration::from_secs(30)).await;

    // Refusals are reported per reason and fail the command.
    let out = osn(&["broadcast", "--url", url, "--channel", "nope", "--count", "2"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not accepted 2: NOT_FOUND: channel 'nope' does not exist"), "{}", text(&out));
    // Over gRPC the stream ends at the refusal, as Fabric's: the rest is unanswered.
    let out = osn(&["broadcast", "--grpc", grpc, "--channel", "nope", "--count", "2", "--mode", "grpc"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not accepted 1: NOT_FOUND: channel 'nope' does not exist"), "{}", text(&out));
    assert!(text(&out).contains("not accepted 1: no answer: the stream ended"), "{}", text(&out));

    // Channels and blocks.
    let out = osn(&["channel", "list", "--url", url]);
    assert!(text(&out).contains(ch) && text(&out).contains("READY"), "{}", text(&out));
    let out = osn(&["channel", "info", ch, "--url", url, "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(info["height"].as_str(), Some(chain.len().to_string().as_str()), "{info}");
    let out = osn(&["channel", "info", ch, "--url", url]);
    assert!(text(&out).contains("last offset persisted"), "{}", text(&out));
    let out = osn(&["block", "get", "--url", url, "--channel", ch, "newest", "--format", "protobuf"]);
    assert_eq!(Block::decode(&out.stdout[..]).unwrap(), *chain.last().unwrap());
    let out = osn(&["block", "get", "--url", url, "--channel", ch, "99999"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("HTTP 404 NOT_FOUND: block 99999 does not exist yet"), "{}", text(&out));

    // Deliver over HTTP as raw length-delimited protobuf: exactly the chain, then SUCCESS.
    let out = osn(&["deliver", "--url", url, "--channel", ch, "--transport", "http", "--format", "protobuf"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut raw = bytes::Bytes::from(out.stdout);
    let mut responses = Vec::new();
    while !raw.is_empty() {
        responses.push(DeliverResponse::decode_length_delimited(&mut raw).unwrap());
    }
    let blocks: Vec<Block> = responses
        .iter()
        .filter_map(|r| match &r.r#type {
            Some(deliver_response::Type::Block(b)) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(blocks, chain);
    assert_eq!(responses.last().unwrap().r#type, Some(deliver_response::Type::Status(200)));

    // A refused deliver says why.
    let out = osn(&["deliver", "--url", url, "--channel", ch, "--start", "99999"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("NOT_FOUND: start block 99999 is beyond"), "{}", text(&out));

    // Nobody listening.
    let out = osn(&["channel", "list", "--url", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot reach the OSN at http://127.0.0.1:9"), "{}", text(&out));
}

#[test]
fn load_against_an_embedded_osn_reports_ordered_throughput_as_json() {
    let out = osn(&["load", "--embedded", "--count", "2000", "--size", "512", "--baseline", "kafka", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON summary");
    assert_eq!(summary["accepted"], 2000, "{summary}");
    assert_eq!(summary["ordered"], 2000, "{summary}");
    assert!(summary["ordered_tps"].as_f64().unwrap() > 0.0, "{summary}");
    assert!(summary["delivered_latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{summary}");
    assert!(summary["refused"].as_object().unwrap().is_empty(), "{summary}");
    assert!(summary.get("send_lag_ms").is_none(), "no schedule, no lag: {summary}");
    // The OSN's CPU per ordered transaction, from its /proc: something, and less than a second.
    let cpu = summary["server_cpu_us_per_tx"].as_f64().unwrap();
    assert!(cpu > 0.0 && cpu < 1e6, "{summary}");
    // The broker alone, in the same run, and the OSN's share of it.
    let baseline = summary["baseline_kafka_tps"].as_f64().unwrap();
    let ratio = summary["baseline_ratio"].as_f64().unwrap();
    assert!(baseline > 0.0 && (ratio - summary["ordered_tps"].as_f64().unwrap() / baseline).abs() < 1e-9, "{summary}");
    let cut = summary["channel_metrics"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("osn_channel_blocks_cut_total"))
        .map(|(_, v)| v.as_f64().unwrap())
        .sum::<f64>();
    assert!(cut > 0.0, "the channel's actor metrics, before and after: {summary}");

    // At a target rate for a duration: rate × duration envelopes, sent on schedule.
    let started = Instant::now();
    let out = osn(&[
        "load",
        "--embedded",
        "--rate",
        "1000",
        "--duration",
        "2s",
        "--mode",
        "single",
        "--baseline",
        "kafka",
        "--baseline-fetch-wait",
        "2ms",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON summary");
    assert_eq!((summary["count"].as_u64(), summary["ordered"].as_u64()), (Some(2000), Some(2000)), "{summary}");
    assert!(summary["accepted_tps"].as_f64().unwrap() <= 1100.0, "paced at the rate: {summary}");
    // How late the generator itself sent, since the latencies count from when envelopes were due.
    assert!(summary["send_lag_ms"]["p50"].as_f64().is_some(), "{summary}");
    // The broker alone at the same rate: its own latencies, read back after acknowledged.
    let kafka = &summary["baseline_kafka_latency_ms"];
    let (ack, read) = (kafka["ack"]["p50"].as_f64().unwrap(), kafka["consumed"]["p50"].as_f64().unwrap());
    assert!(ack > 0.0 && read > 0.0, "{summary}");
    assert!(summary.get("baseline_ratio").is_none(), "a rate-limited run is no throughput baseline: {summary}");
    assert!(started.elapsed() >= Duration::from_secs(2), "it took the duration");

    // Websocket streams into two new channels, three subscribers each, signatures not verified.
    let out = osn(&[
        "load",
        "--embedded",
        "--no-verify",
        "--create-channels",
        "2",
        "--subscribers",
        "3",
        "--mode",
        "ws",
        "--concurrency",
        "4",
        "--count",
        "1000",
        "--size",
        "300",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON summary");
    assert_eq!((summary["accepted"].as_u64(), summary["ordered"].as_u64()), (Some(1000), Some(1000)), "{summary}");
    let channels = summary["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2, "{summary}");
    for ch in channels {
        assert!(ch["name"].as_str().unwrap().starts_with("load-"), "{summary}");
        assert_eq!((ch["accepted"].as_u64(), ch["ordered"].as_u64()), (Some(500), Some(500)), "{summary}");
        assert!(ch["blocks"].as_u64().unwrap() >= 1, "{summary}");
    }
    let subscribers = &summary["subscribers"];
    assert_eq!((subscribers["opened"].as_u64(), subscribers["received_every_block"].as_u64()), (Some(6), Some(6)));
    assert!(summary["ack_latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{summary}");
    let rss = &summary["server_rss_mib"];
    assert!(rss["before"].as_f64().unwrap() > 1.0 && rss["max"].as_f64() >= rss["after"].as_f64(), "{summary}");
}

/// A thousand channels created and ordered through the API of one OSN, each with its own
/// envelopes: every envelope is ordered once in its channel, and the process's threads stay a
/// fixed pool (one consumer, a fixed set of actor threads and of ledger writers, not a thread or client per channel).
#[test]
fn a_thousand_channels_created_and_ordered_through_one_osn() {
    let started = Instant::now();
    let out = osn(&[
        "load",
        "--embedded",
        "--no-verify",
        "--create-channels",
        "1000",
        "--count",
        "3000",
        "--size",
        "64",
        "--mode",
        "batch",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON summary");
    assert_eq!((summary["accepted"].as_u64(), summary["ordered"].as_u64()), (Some(3000), Some(3000)), "{summary}");
    let channels = summary["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 1000);
    for ch in channels {
        assert_eq!((ch["accepted"].as_u64(), ch["ordered"].as_u64()), (Some(3), Some(3)), "{ch}");
    }
    let threads = &summary["server_threads"];
    let (before, after) = (threads["before"].as_u64().unwrap(), threads["after"].as_u64().unwrap());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    // The load generator shares the process (--embedded); its threads are counted too, and so
    // are the ledger writers, a fixed pool.
    let writers = osn::ledger::writers() as u64;
    assert!(
        after <= 4 * cores + 32 + writers && after <= before + 8,
        "threads {before} before, {after} with 1,000 more channels"
    );
    eprintln!("1,000 channels created and loaded in {:?}; threads {before} → {after}", started.elapsed());
}

/// A client command whose stdout is closed by its reader (`osn … | head`) ends quietly: killed
/// by SIGPIPE as command-line tools are, with nothing on stderr (it used to panic with "failed
/// printing to stdout: Broken pipe" and a backtrace).
#[test]
fn a_closed_pipe_ends_a_client_command_quietly() {
    use std::os::fd::FromRawFd;
    use std::os::unix::process::ExitStatusExt;
    let identity = osn::identity::dev::dev_client_identity(&crypto().root.join("dev"));
    if !identity.is_dir() {
        // The dev identities are made by the first `osn dev`; make them without one.
        osn::identity::dev_crypto(&crypto().root.join("dev")).unwrap();
    }
    let mut fds = [0; 2];
    // SAFETY: a fresh pipe; its read end is closed at once, its write end handed to the child.
    let stdout = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        Stdio::from_raw_fd(fds[1])
    };
    let out =
        osn_command().args(["identity", "show"]).arg(&identity).stdout(stdout).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}

/// `osn dev --genesis`: the embedded broker runs a network made by Fabric's tools, from
/// configtxgen's block and with cryptogen's orderer as the OSN: its configuration reads as
/// configtxlator showed it, and its consortium's users create a channel and write to it.
#[test]
fn dev_mode_boots_from_a_configtxgen_block_and_runs_its_network() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12");
    let path = |p: &str| shared.join(p).to_str().unwrap().to_owned();
    let orderer = path("crypto/ordererOrganizations/example.com/orderers/orderer.example.com/msp");
    let block = path("genesis/kafka-two-orgs.block");
    let (_dev, url, banner) = start_dev(&["--genesis", &block, "--identity", &orderer, "--msp-id", "OrdererMSP"], None);
    assert!(banner.contains("running from") && banner.contains("system channel 'syschannel'"), "{banner}");

    // The system channel's configuration, read by the orderer organisation's admin.
    let admin = path("crypto/ordererOrganizations/example.com/users/Admin@example.com/msp");
    let out = osn(&[
        "channel",
        "config",
        "get",
        "--json",
        "--channel",
        "syschannel",
        "--url",
        &url,
        "--identity",
        &admin,
        "--msp-id",
        "OrdererMSP",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fabric: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shared.join("genesis/kafka-two-orgs.json")).unwrap()).unwrap();
    assert_eq!(ours, fabric["data"]["data"][0]["payload"]["data"]["config"]);

    // Org1's admin creates ch1 in SampleConsortium; Org1's user writes to it.
    let org1_admin = path("crypto/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp");
    let out = osn(&[
        "channel",
        "create",
        "--channel",
        "ch1",
        "--consortium",
        "SampleConsortium",
        "--url",
        &url,
        "--identity",
        &org1_admin,
        "--msp-id",
        "Org1MSP",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("created channel ch1 (status READY"), "{text}");
    let user1 = path("crypto/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp");
    let out = osn(&[
        "broadcast",
        "--url",
        &url,
        "--channel",
        "ch1",
        "--count",
        "20",
        "--size",
        "512",
        "--identity",
        &user1,
        "--msp-id",
        "Org1MSP",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("accepted 20/20"), "{text}{}", String::from_utf8_lossy(&out.stderr));
}
