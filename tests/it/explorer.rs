//! The explorer (`GET /explorer`) in a real browser, headless chromium, against `osn dev`: the
//! newcomer's click on the link `osn dev` prints, the channels, blocks arriving live, a block's
//! transactions, the charts, the chain check (good, then against another orderer organisation's
//! CA), keyboard use and phone width. Screenshots of each view go to
//! `<target>/explorer-screenshots/`.
//!
//! `OSN_EXPLORER_BLOCKS=N` first grows the channel to N blocks (one envelope each) and prints the
//! page's time to first render and the chain check's time: the figures of issue 24's note.

use std::time::{Duration, Instant};

use osn::proto::{Block, ChannelHeader, Envelope, Payload};
use prost::Message as _;
use serde_json::Value;

use crate::cli::{osn_command, start_dev};
use crate::harness::browser::{screenshot_dir, Browser};
use crate::harness::crypto;

const WAIT: Duration = Duration::from_secs(60);

/// `osn broadcast` of `count` envelopes of `size` bytes to devchannel, as the dev client.
fn broadcast(url: &str, count: usize, size: usize) {
    let out = osn_command()
        .args(["broadcast", "--url", url, "--channel", "devchannel", "--count", &count.to_string()])
        .args(["--size", &size.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "broadcast: {}", String::from_utf8_lossy(&out.stderr));
}

/// GET with the dev client's read authorisation; the body.
async fn read(url: &str, path: &str, accept: &str) -> (u16, bytes::Bytes) {
    let root = crypto().root.join("dev");
    let signer = osn::identity::SigningIdentity::load(&osn::identity::dev::dev_client_identity(&root)).unwrap();
    let auth = osn::cli::client::read_authorization(&signer, "devchannel");
    let mut resp = awc::Client::new()
        .get(format!("{url}{path}"))
        .insert_header(("Authorization", auth))
        .insert_header(("Accept", accept))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.body().limit(64 << 20).await.unwrap())
}

/// `n` as the page shows it: 10,001.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn height(url: &str) -> u64 {
    let mut resp = awc::Client::new().get(format!("{url}/v1/channels/devchannel")).send().await.unwrap();
    let info: Value = resp.json().await.unwrap();
    info["height"].as_str().unwrap().parse().unwrap()
}

/// The tx ids of block `n`, read through the API.
async fn tx_ids(url: &str, n: u64) -> Vec<String> {
    let (code, raw) = read(url, &format!("/v1/channels/devchannel/blocks/{n}"), "application/x-protobuf").await;
    assert_eq!(code, 200);
    let block = Block::decode(raw).unwrap();
    block
        .data
        .unwrap()
        .data
        .iter()
        .map(|raw| {
            let env = Envelope::decode(raw.clone()).unwrap();
            let payload = Payload::decode(env.payload).unwrap();
            ChannelHeader::decode(payload.header.unwrap().channel_header).unwrap().tx_id
        })
        .collect()
}

/// Fails naming the first of `wanted` that `text` (what `view` shows) lacks.
fn assert_shows(view: &str, text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "{view} shows {w:?}:\n{text}");
    }
}

/// Where an element is (its top and left, in page coordinates), to see that nothing moves.
const LAYOUT: &str = "JSON.stringify(['#live', '#charts', '#verify', 'figure[data-chart=tx]'].map((s) => { \
                      const r = document.querySelector(s).getBoundingClientRect(); \
                      return [s, Math.round(r.top + scrollY), Math.round(r.left), Math.round(r.height)]; }))";

const SHOWS: &str = "document.querySelector('main').innerText.slice(0, 1500)";

#[actix_rt::test]
async fn the_explorer_shows_channels_live_blocks_a_block_and_the_chain_check_in_a_real_browser() {
    let (_dev, url, banner) = start_dev(&["--batch-timeout", "100ms", "--max-message-count", "10"], None);
    let link = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("explorer ").map(|l| l.trim().to_owned()))
        .unwrap_or_else(|| panic!("osn dev prints an explorer link:\n{banner}"));
    assert!(link.starts_with(&format!("{url}/explorer#token=")), "{link}");
    let token = link.split_once("#token=").unwrap().1.to_owned();

    // The token is osn dev's: the dev reader answers with it only.
    let reader = |auth: Option<String>| {
        let url = url.clone();
        async move {
            let mut req = awc::Client::new().get(format!("{url}/explorer/dev-reader"));
            if let Some(auth) = auth {
                req = req.insert_header(("Authorization", auth));
            }
            let mut resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(reader(None).await.0, 401);
    assert_eq!(reader(Some(format!("Bearer {}", "0".repeat(64)))).await.0, 401);
    let (code, lent) = reader(Some(format!("Bearer {token}"))).await;
    assert_eq!((code, lent["mspId"].as_str()), (200, Some("DevOrgMSP")), "{lent}");
    let mut index = awc::Client::new().get(format!("{url}/")).send().await.unwrap();
    let index = String::from_utf8(index.body().await.unwrap().to_vec()).unwrap();
    assert!(index.contains("href=\"/explorer\""), "{index}");

    // Optionally, a long chain first (for the note's figures).
    let extra: u64 = std::env::var("OSN_EXPLORER_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if extra > 0 {
        let root = crypto().root.join("dev");
        let admin = osn_command()
            .args(["channel", "config", "update", "--channel", "devchannel", "--url", &url, "--batch-size", "1"])
            .arg("--identity")
            .arg(root.join("orderer-org").join("identities").join("admin"))
            .output()
            .unwrap();
        assert!(admin.status.success(), "{}", String::from_utf8_lossy(&admin.stderr));
        while height(&url).await < extra {
            broadcast(&url, 2_000.min((extra - height(&url).await) as usize), 256);
        }
        let admin = osn_command()
            .args(["channel", "config", "update", "--channel", "devchannel", "--url", &url, "--batch-size", "10"])
            .arg("--identity")
            .arg(root.join("orderer-org").join("identities").join("admin"))
            .output()
            .unwrap();
        assert!(admin.status.success(), "{}", String::from_utf8_lossy(&admin.stderr));
    }

    let shots = screenshot_dir();
    let mut browser = Browser::launch(1280, 900).await;
    let opened = Instant::now();
    browser.navigate(&format!("{url}/explorer#token={token}")).await;

    // One click: the link's token makes the page read as the dev client, and leaves the address.
    let who = browser
        .wait_for("the dev reader", "document.getElementById('identity-state').textContent.includes('DevOrgMSP') && document.getElementById('identity-state').textContent", "document.getElementById('identity-state').textContent", WAIT)
        .await;
    assert!(who.as_str().unwrap().contains("lent by osn dev"), "{who}");
    assert_eq!(browser.eval("location.hash").await, "#/");

    // Channels: both, READY, with their heights and Kafka topics.
    browser
        .wait_for(
            "devchannel READY in the channels table",
            "document.querySelector('#channels tr[data-channel=devchannel] .badge')?.textContent === 'READY' \
             && document.querySelector('#channels tr[data-channel=\"osn-system\"]') !== null",
            SHOWS,
            WAIT,
        )
        .await;
    let first_render = browser.eval("performance.getEntriesByName('osn-first-render')[0]?.startTime").await;
    let row = browser.eval("document.querySelector('#channels tr[data-channel=devchannel]').innerText").await;
    assert!(row.as_str().unwrap().contains("devchannel/0"), "the Kafka topic and partition: {row}");
    browser.screenshot(&shots.join("1-channels.png")).await;

    // A channel: its blocks arrive live, newest first, and nothing on the page moves.
    browser.eval("location.hash = '#/channels/devchannel'").await;
    browser.wait_for("live blocks", "document.querySelectorAll('#live-rows tr').length > 0", SHOWS, WAIT).await;
    let channel_render = opened.elapsed();
    let before = browser.eval(LAYOUT).await;
    let start = height(&url).await;
    broadcast(&url, 55, 300);
    // 55 envelopes at 10 a block: 6 blocks, the last one cut by the batch timeout.
    let newest = crate::harness::wait_for("the 6 blocks", WAIT, || {
        let url = url.clone();
        async move { Some(height(&url).await).filter(|h| *h >= start + 6).map(|h| h - 1) }
    })
    .await;
    browser
        .wait_for(
            "the newest block in the live table",
            &format!("document.querySelector('#live-rows tr')?.dataset.block === '{newest}'"),
            "document.getElementById('live-status').textContent",
            WAIT,
        )
        .await;
    let rows = browser.eval("document.querySelectorAll('#live-rows tr').length").await.as_u64().unwrap();
    let table = browser.eval("document.getElementById('live-rows').innerText").await;
    assert!(rows >= 6, "55 envelopes at 10 a block made at least 6 blocks: {rows} rows:\n{table}");
    let full = browser
        .eval("[...document.querySelectorAll('#live-rows tr')].find((r) => r.children[2].textContent === '10')?.innerText")
        .await;
    assert!(full.as_str().unwrap_or("").contains("max message count"), "a full block's reason: {full}");
    assert_eq!(browser.eval(LAYOUT).await, before, "blocks streaming in moved the page");

    // The charts have data: transactions ordered per second, and blocks cut.
    browser
        .wait_for(
            "the ordered tx/s chart to show the broadcast",
            "Number(document.querySelector('figure[data-chart=tx]').dataset.max) > 0 \
             && Number(document.querySelector('figure[data-chart=blocks]').dataset.max) > 0 \
             && Number(document.querySelector('figure[data-chart=tx]').dataset.points) >= 2",
            "[...document.querySelectorAll('figure.chart')].map((f) => f.dataset.chart + ' ' + f.dataset.points + ' ' + f.dataset.max).join('; ')",
            WAIT,
        )
        .await;
    assert_eq!(browser.eval(LAYOUT).await, before, "chart updates moved the page");
    browser.screenshot(&shots.join("2-channel-live.png")).await;

    // The chain check, trusting the orderer organisations of the channel's configuration.
    browser.eval("document.getElementById('verify-run').click()").await;
    let verified = browser
        .wait_for(
            "the chain check",
            "document.getElementById('verify-result').className.includes('ok') && document.getElementById('verify-result').textContent",
            "document.getElementById('verify-result').textContent",
            WAIT.max(Duration::from_secs(extra / 50)),
        )
        .await;
    let checked = height(&url).await;
    assert!(
        verified.as_str().unwrap().contains(&format!("{} blocks, hash chain and signatures OK", grouped(checked))),
        "{verified}"
    );
    let verify_took = browser.eval("document.getElementById('verify-count').textContent").await;

    // Trusting another orderer organisation (Fabric's sample OrdererMSP, another CA), the first
    // signed block fails and is named.
    let other_ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fabric-1.4.12/crypto/ordererOrganizations/example.com/msp/cacerts/ca.example.com-cert.pem");
    let pem = std::fs::read_to_string(other_ca).unwrap();
    browser
        .eval(&format!(
            "document.querySelector('input[name=anchor][value=given]').checked = true; \
             document.getElementById('anchor-msp').value = 'OrdererMSP'; \
             document.getElementById('anchor-pem').value = {}; \
             document.getElementById('verify-run').click()",
            serde_json::to_string(&pem).unwrap()
        ))
        .await;
    let bad = browser
        .wait_for(
            "the chain check against another CA",
            "document.getElementById('verify-result').dataset.bad !== undefined && document.getElementById('verify-result').textContent",
            "document.getElementById('verify-result').textContent",
            WAIT,
        )
        .await;
    let bad = bad.as_str().unwrap();
    assert!(bad.starts_with("Block 1 is bad: signature 0: signer not an orderer organisation member"), "{bad}");
    assert!(bad.contains("does not chain to a CA of OrdererMSP"), "{bad}");
    browser.eval("document.getElementById('verify').scrollIntoView()").await;
    browser.screenshot(&shots.join("3-verify-other-ca.png")).await;

    // A block, opened from the keyboard: its transactions' tx ids, as the API has them.
    browser.eval("document.querySelector('#live-rows a').focus()").await;
    browser.press("Enter", 13).await;
    browser
        .wait_for(
            "the block view",
            &format!("location.hash === '#/channels/devchannel/blocks/{newest}'"),
            "location.hash",
            WAIT,
        )
        .await;
    browser
        .wait_for(
            "the block's transactions",
            "document.querySelectorAll('#block-txs tbody tr').length > 0",
            SHOWS,
            WAIT,
        )
        .await;
    let shown = browser.eval("[...document.querySelectorAll('#block-txs .tx-id')].map((c) => c.textContent)").await;
    let expected = tx_ids(&url, newest).await;
    assert!(!expected.is_empty());
    assert_eq!(shown, serde_json::json!(expected));
    let page = browser.eval("document.getElementById('view-block').innerText").await;
    let page = page.as_str().unwrap();
    let wanted = [
        "ENDORSER_TRANSACTION",
        "DevOrgMSP",
        "signature 0 by OrdererMSP",
        "verifies with the signer's key",
        "Kafka: last offset persisted",
        "last config: block ",
        "\u{2714} matches the data",
    ];
    assert_shows("the block view", page, &wanted);
    browser.eval("document.querySelector('#view-block button[aria-expanded]').click()").await;
    browser
        .wait_for(
            "the block's JSON",
            "document.getElementById('block-json').textContent.includes('\"header\"')",
            SHOWS,
            WAIT,
        )
        .await;
    browser.screenshot(&shots.join("4-block.png")).await;

    // The channel's block 0: its configuration as a tree.
    browser.eval("location.hash = '#/channels/devchannel/blocks/0'").await;
    browser
        .wait_for("the config tree", "document.querySelector('#view-block details.tree') !== null", SHOWS, WAIT)
        .await;
    let config = browser.eval("document.getElementById('view-block').textContent").await;
    let config = config.as_str().unwrap();
    let wanted = [
        "CONFIG",
        "BatchSize",
        "max_message_count",
        "OrdererMSP",
        "DevOrgMSP",
        "ImplicitMeta: MAJORITY Admins",
        "no signatures (a genesis block is unsigned)",
    ];
    assert_shows("the config block", config, &wanted);
    browser.eval("document.querySelectorAll('#view-block details.tree').forEach((d) => d.open = true)").await;
    browser.screenshot(&shots.join("5-config-block.png")).await;

    // Opening a channel afresh (the token kept for the tab): the time until its newest blocks show.
    browser.eval("location.hash = '#/channels/devchannel'").await;
    browser.call("Page.reload", serde_json::json!({})).await;
    browser
        .wait_for(
            "the reloaded channel view",
            "document.readyState === 'complete' && document.querySelectorAll('#live-rows tr').length >= 7",
            SHOWS,
            WAIT,
        )
        .await;
    let channel_first_render = browser
        .eval(
            "JSON.stringify([performance.getEntriesByName('first-contentful-paint')[0]?.startTime, \
             performance.getEntriesByName('osn-first-render')[0]?.startTime, \
             document.getElementById('live-rows').firstElementChild.dataset.block])",
        )
        .await;

    // Without an identity, the page says so plainly.
    browser
        .eval("document.getElementById('identity-forget').click(); location.hash = '#/channels/devchannel/blocks/1'")
        .await;
    let plain = browser
        .wait_for(
            "the no-identity message",
            "document.getElementById('block-status').textContent.includes('needs a reader') && document.getElementById('block-status').textContent",
            SHOWS,
            WAIT,
        )
        .await;
    assert!(plain.as_str().unwrap().contains("give one"), "{plain}");

    // At phone width: nothing wider than the screen.
    browser.viewport(390, 844, true).await;
    browser.eval("location.hash = '#/channels/devchannel'").await;
    browser
        .wait_for(
            "the channel view at phone width",
            "document.querySelectorAll('figure.chart').length === 6",
            SHOWS,
            WAIT,
        )
        .await;
    let widths = browser.eval("[document.documentElement.scrollWidth, innerWidth]").await;
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "the page is wider than a phone: {widths}");
    browser.screenshot(&shots.join("6-phone.png")).await;

    // Keyboard: Tab moves through links and controls, each visibly focusable.
    browser.eval("document.activeElement.blur()").await;
    for _ in 0..3 {
        browser.press("Tab", 9).await;
    }
    let focused = browser.eval("document.activeElement.tagName").await;
    assert!(["A", "SUMMARY", "BUTTON", "INPUT"].contains(&focused.as_str().unwrap()), "{focused}");

    assert!(browser.problems.is_empty(), "the page logged problems: {:?}", browser.problems);
    let size = read(&url, "/explorer", "text/html").await.1.len();
    println!(
        "explorer: page {size} bytes; {} blocks; first render {first_render} ms after navigation; channel view with live \
         blocks {channel_render:?} after opening; chain check: {verify_took}; the channel view reloaded: [first \
         contentful paint ms, first block row ms, newest block shown] {channel_first_render}",
        checked
    );
}

/// The explorer on a network made by Fabric's tools (`osn dev --genesis` with configtxgen's block
/// and cryptogen's orderer): no link token there, so the user gives the page cryptogen's User1 of
/// Org1 (its PKCS#8 `_sk` key); the page follows a channel Org1's admin created and checks its
/// chain against the OrdererMSP of Fabric's configuration.
#[actix_rt::test]
async fn the_explorer_reads_a_fabric_network_as_a_cryptogen_user() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12");
    let path = |p: &str| shared.join(p).to_str().unwrap().to_owned();
    let orderer = path("crypto/ordererOrganizations/example.com/orderers/orderer.example.com/msp");
    let block = path("genesis/kafka-two-orgs.block");
    let (_dev, url, banner) = start_dev(&["--genesis", &block, "--identity", &orderer, "--msp-id", "OrdererMSP"], None);
    assert!(banner.contains(&format!("explorer {url}/explorer ")) && !banner.contains("#token="), "{banner}");
    let mut resp = awc::Client::new().get(format!("{url}/explorer/dev-reader")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404, "{:?}", resp.body().await);

    let org1_admin = path("crypto/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp");
    let out = osn_command()
        .args(["channel", "create", "--channel", "ch1", "--consortium", "SampleConsortium", "--url", &url])
        .args(["--identity", &org1_admin, "--msp-id", "Org1MSP"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let user1 = path("crypto/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp");
    let out = osn_command()
        .args(["broadcast", "--url", &url, "--channel", "ch1", "--count", "25", "--size", "512"])
        .args(["--identity", &user1, "--msp-id", "Org1MSP"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut browser = Browser::launch(1280, 900).await;
    browser.navigate(&format!("{url}/explorer#/channels/ch1")).await;
    browser
        .wait_for(
            "the page to ask for an identity",
            "document.getElementById('live-status').textContent.includes('need a reader')",
            SHOWS,
            WAIT,
        )
        .await;
    let cert = std::fs::read_to_string(format!("{user1}/signcerts/User1@org1.example.com-cert.pem")).unwrap();
    let keystore = std::fs::read_dir(format!("{user1}/keystore")).unwrap().next().unwrap().unwrap().path();
    let key = std::fs::read_to_string(keystore).unwrap();
    browser
        .eval(&format!(
            "document.getElementById('identity').open = true; \
             document.getElementById('identity-msp').value = 'Org1MSP'; \
             document.getElementById('identity-cert').value = {}; \
             document.getElementById('identity-key').value = {}; \
             document.getElementById('identity-use').click()",
            serde_json::to_string(&cert).unwrap(),
            serde_json::to_string(&key).unwrap()
        ))
        .await;
    let who = browser
        .wait_for(
            "the cryptogen identity",
            "document.getElementById('identity-state').textContent.includes('User1@org1.example.com') && document.getElementById('identity-state').textContent",
            "document.getElementById('identity-state').textContent",
            WAIT,
        )
        .await;
    assert!(who.as_str().unwrap().starts_with("Org1MSP"), "{who}");
    // ch1's blocks: its creation (block 0) and the 25 envelopes.
    let shown = browser
        .wait_for(
            "ch1's blocks",
            "[...document.querySelectorAll('#live-rows tr')].reduce((n, r) => n + Number(r.children[2].textContent), 0) === 26 && document.getElementById('live-rows').innerText",
            "document.getElementById('live-status').textContent",
            WAIT,
        )
        .await;
    assert!(shown.as_str().unwrap().contains("config"), "{shown}");
    browser.eval("document.getElementById('verify-run').click()").await;
    let verified = browser
        .wait_for(
            "the chain check against Fabric's OrdererMSP",
            "document.getElementById('verify-result').className.includes('ok') && document.getElementById('verify-result').textContent",
            "document.getElementById('verify-result').textContent",
            WAIT,
        )
        .await;
    assert!(verified.as_str().unwrap().contains("hash chain and signatures OK"), "{verified}");
    browser.screenshot(&screenshot_dir().join("7-fabric-network.png")).await;
    assert!(browser.problems.is_empty(), "the page logged problems: {:?}", browser.problems);
}
