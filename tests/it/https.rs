//! HTTPS: an OSN with `[http.tls]` serves its API over TLS only, to clients that trust its CA,
//! and the CLI reaches it with `--cacert` (HTTP and websocket routes alike).

use std::process::Command;

use crate::harness::*;

/// `osn`, signing as Org1's client.
fn osn_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osn"));
    cmd.env("OSN_IDENTITY", crypto().org1.join("identities").join("client"));
    cmd
}

fn osn_cli(args: &[&str]) -> std::process::Output {
    osn_command().args(args).output().expect("run osn")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[actix_rt::test]
async fn api_is_served_over_tls_to_clients_that_trust_its_ca() {
    let channel = channel_name("https");
    let broker = Broker::with_topic(&channel);
    let pki = TestPki::generate();
    let osn = Osn::start(OsnSpec { http_tls: Some(pki.clone()), ..OsnSpec::new(&channel, &broker) }).await;
    let addr = osn.url.strip_prefix("https://").unwrap_or_else(|| panic!("not an https URL: {}", osn.url)).to_owned();

    // A client trusting the CA: 200, by IP address and by name.
    for base in [osn.url.clone(), format!("https://localhost:{}", addr.rsplit_once(':').unwrap().1)] {
        let resp = pki.client().get(format!("{base}/v1/channels")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{base}");
    }

    // A client trusting another CA: the handshake fails, no answer.
    let stranger = TestPki::generate();
    let err = stranger.client().get(format!("{}/v1/channels", osn.url)).send().await.expect_err("untrusted");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = client().get(format!("http://{addr}/v1/channels")).send().await;
    assert!(plain.is_err(), "plain HTTP answered: {:?}", plain.map(|r| r.status()));

    // The CLI with --cacert: HTTP routes, and websockets (wss://) both ways.
    let ca = pki.ca_file.to_str().unwrap();
    let out = osn_cli(&["channel", "list", "--url", &osn.url, "--cacert", ca]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&channel), "{}", stdout(&out));

    let out = osn_cli(&[
        "broadcast",
        "--url",
        &osn.url,
        "--cacert",
        ca,
        "--channel",
        &channel,
        "--mode",
        "ws",
        "--count",
        "20",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("accepted 20/20"), "{}", stdout(&out));
    osn.wait_for_transactions(20, std::time::Duration::from_secs(20)).await;

    for transport in ["ws", "http"] {
        let out = osn_command()
            .args([
                "deliver",
                "--url",
                &osn.url,
                "--channel",
                &channel,
                "--format",
                "summary",
                "--transport",
                transport,
            ])
            .env("OSN_CACERT", ca)
            .output()
            .unwrap();
        assert!(out.status.success(), "{transport}: {}", stderr(&out));
        // The 20 broadcast and the genesis block's one.
        assert!(stdout(&out).contains("21 transactions"), "{transport}: {}", stdout(&out));
    }

    // Without --cacert the CLI says what is missing.
    let out = osn_cli(&["channel", "list", "--url", &osn.url]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--cacert"), "{}", stderr(&out));
}

/// A certificate problem stops `osn start` at once, naming the key and the file.
#[test]
fn start_refuses_an_unreadable_key_with_its_path() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-key.pem");
    let config = dir.path().join("osn.toml");
    let text = format!(
        "[http]\naddress = \"127.0.0.1:0\"\n[grpc]\naddress = \"127.0.0.1:0\"\n[http.tls]\ncert-file = {:?}\nkey-file = {:?}\n[ledger]\npath = {:?}\n",
        pki.cert_file,
        missing,
        dir.path().join("ledger"),
    );
    std::fs::write(&config, text).unwrap();
    let out = osn_cli(&["start", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let expected = format!("cannot read http.tls.key-file {}", missing.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
}

#[actix_rt::test]
async fn an_osn_with_a_client_ca_requires_client_certificates() {
    let channel = channel_name("mtls");
    let broker = Broker::with_topic(&channel);
    let mut pki = TestPki::generate();
    pki.require_client_certs = true;
    let osn = Osn::start(OsnSpec { http_tls: Some(pki.clone()), ..OsnSpec::new(&channel, &broker) }).await;

    // With the client certificate: answered.
    let resp = pki.client().get(format!("{}/v1/channels", osn.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // Trusting the server but presenting no certificate: no answer.
    let bare = osn::http::tls::client_config(&pki.ca_file, "ca").unwrap();
    let bare = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(bare)))
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let refused = bare.get(format!("{}/v1/channels", osn.url)).send().await;
    assert!(refused.is_err(), "answered without a client certificate: {:?}", refused.map(|r| r.status()));

    // A certificate from another CA: no answer either.
    let stranger = TestPki::generate();
    let other = osn::http::tls::client_config_with(
        &pki.ca_file,
        "ca",
        Some((stranger.client_cert_file.as_path(), stranger.client_key_file.as_path())),
    )
    .unwrap();
    let other = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(other)))
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    assert!(other.get(format!("{}/v1/channels", osn.url)).send().await.is_err());

    // The CLI with --client-cert/--client-key, over HTTP and websockets.
    let (ca, cert, key) =
        (pki.ca_file.to_str().unwrap(), pki.client_cert_file.to_str().unwrap(), pki.client_key_file.to_str().unwrap());
    let tls = ["--cacert", ca, "--client-cert", cert, "--client-key", key];
    let out = osn_cli(&[&["channel", "list", "--url", &osn.url][..], &tls].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = osn_cli(
        &[&["broadcast", "--url", &osn.url, "--channel", &channel, "--mode", "ws", "--count", "5"][..], &tls].concat(),
    );
    assert!(stdout(&out).contains("accepted 5/5"), "{}{}", stdout(&out), stderr(&out));
    let out = osn_cli(&["channel", "list", "--url", &osn.url, "--cacert", ca]);
    assert!(!out.status.success(), "the CLI without a client certificate was answered");
}
