//! The operations routes of a running `osn start`: `/version`, and `/logspec` changing what the
//! process logs while it runs, on the API's listener and on a listener of their own.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// The spec the harness starts every OSN with (`OSN_LOG`).
const HARNESS_SPEC: &str = "info,osn=debug,rdkafka=warn";
const TRACE_SPEC: &str = "info,osn=trace,rdkafka=warn";

async fn get(url: &str) -> (u16, Value) {
    let mut resp = client().get(url).send().await.unwrap();
    let body = resp.body().await.unwrap();
    (resp.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn put_logspec(base: &str, body: &str) -> (u16, Value) {
    let mut resp = client().put(format!("{base}/logspec")).send_body(body.to_owned()).await.unwrap();
    let body = resp.body().await.unwrap();
    (resp.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The lines of the log that `GET /logspec`'s TRACE event wrote.
fn trace_lines(osn: &Osn) -> usize {
    osn.log().lines().filter(|l| l.contains("TRACE") && l.contains("log spec read")).count()
}

/// Turns TRACE on for `osn` and off again through `base` (its API's or its operations listener's
/// URL), checking each step the way an operator would: by what the process logs.
async fn trace_on_and_off(osn: &Osn, base: &str) {
    let logspec = format!("{base}/logspec");
    assert_eq!(get(&logspec).await, (200, json!({ "spec": HARNESS_SPEC })));
    // The handler logs each read at TRACE, which the harness's spec leaves out; the log is
    // written before the answer, so an answered request that logged nothing logs nothing.
    assert_eq!(trace_lines(osn), 0, "no TRACE line before the change:\n{}", osn.log_tail());

    let body = json!({ "spec": TRACE_SPEC }).to_string();
    assert_eq!(put_logspec(base, &body).await, (204, Value::Null));
    assert_eq!(get(&logspec).await, (200, json!({ "spec": TRACE_SPEC })));
    wait_for("a TRACE line of osn in the log", Duration::from_secs(10), || {
        let n = trace_lines(osn);
        async move { (n > 0).then_some(()) }
    })
    .await;
    assert!(osn.log().contains("log spec changed"), "the change is logged:\n{}", osn.log_tail());

    // An invalid spec is refused, and the one in force stays.
    for bad in [r#"{"spec":"osn=loud"}"#, r#"{"spec":""}"#, r#"{"level":"debug"}"#, "osn=debug"] {
        let (code, answer) = put_logspec(base, bad).await;
        assert_eq!((code, &answer["status"]), (400, &json!("BAD_REQUEST")), "{bad}: {answer}");
        assert!(answer["info"].as_str().is_some_and(|i| !i.is_empty()), "{bad}: {answer}");
    }
    let (_, answer) = put_logspec(base, r#"{"spec":"osn=loud"}"#).await;
    assert!(answer["info"].as_str().unwrap().starts_with("invalid log spec 'osn=loud': "), "{answer}");
    assert_eq!(get(&logspec).await, (200, json!({ "spec": TRACE_SPEC })), "the spec in force stays");

    // Back to the harness's spec: reads log nothing at TRACE any more.
    let body = json!({ "spec": HARNESS_SPEC }).to_string();
    assert_eq!(put_logspec(base, &body).await, (204, Value::Null));
    let before = trace_lines(osn);
    assert_eq!(get(&logspec).await, (200, json!({ "spec": HARNESS_SPEC })));
    assert_eq!(trace_lines(osn), before, "no TRACE line after the change back:\n{}", osn.log_tail());
}

#[actix_rt::test]
async fn version_and_logspec_on_the_api_listener() {
    let channel = channel_name("ops");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    assert_eq!(osn.operations_url, osn.url, "served by the API's listener by default");

    let (code, version) = get(&format!("{}/version", osn.url)).await;
    assert_eq!(code, 200);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let commit = version["commit"].as_str().unwrap_or_default();
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
    assert_eq!(version.as_object().unwrap().len(), 2, "{version}");

    trace_on_and_off(&osn, &osn.url).await;
}

#[actix_rt::test]
async fn operations_listener_of_their_own_with_json_logs() {
    let channel = channel_name("ops");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec {
        operations_address: "127.0.0.1:0".into(),
        env: vec![("OSN_LOG_FORMAT", "json".into())],
        ..OsnSpec::new(&channel, &broker)
    };
    let mut osn = Osn::start(spec).await;
    let (api, ops) = (osn.url.clone(), osn.operations_url.clone());
    assert!(ops.starts_with("http://") && ops != api, "a listener of their own: {ops} (API {api})");

    // Each listener serves its own routes only.
    assert_eq!(get(&format!("{ops}/version")).await.1["version"], env!("CARGO_PKG_VERSION"));
    let (code, answer) = get(&format!("{api}/version")).await;
    assert_eq!((code, answer["info"].as_str()), (404, Some("no route for GET /version")));
    let (code, answer) = get(&format!("{ops}/v1/channels")).await;
    assert_eq!((code, answer["info"].as_str()), (404, Some("no route for GET /v1/channels")));
    assert_eq!(get(&format!("{api}/v1/channels/{channel}")).await.0, 200);

    // The JSON log format reloads its filter the same way.
    trace_on_and_off(&osn, &ops).await;
    assert!(osn.log().lines().any(|l| l.contains(r#""level":"TRACE""#)), "JSON lines:\n{}", osn.log_tail());

    // SIGTERM stops both listeners and the process exits cleanly.
    let status = osn.terminate().await;
    assert!(status.success(), "{status}:\n{}", osn.log_tail());
    assert!(client().get(format!("{ops}/version")).send().await.is_err(), "the operations listener is closed");
}
