//! The API documents itself: `GET /openapi.json` is the OpenAPI 3 document, served as built in,
//! `GET /docs` is the page that renders it, `GET /` leads there, and every plain GET route the
//! document lists is one the running OSN serves.

use awc::http::header::CONTENT_TYPE;
use awc::ClientResponse;
use serde_json::Value;

use crate::harness::*;

/// The largest body read here (the document and the page are tens of kilobytes).
const LIMIT: usize = 4 << 20;

fn content_type<S>(resp: &ClientResponse<S>) -> String {
    resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[actix_rt::test]
async fn serves_its_openapi_document_and_the_page_that_renders_it() {
    let channel = channel_name("docs");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;

    // The document: JSON, exactly the built-in file, and OpenAPI 3.
    let mut resp = client().get(format!("{}/openapi.json", osn.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(content_type(&resp), "application/json");
    let body = resp.body().limit(LIMIT).await.unwrap();
    assert_eq!(body, osn::http::docs::OPENAPI.as_bytes(), "served byte for byte");
    let api: openapiv3::OpenAPI = serde_json::from_slice(&body).expect("an OpenAPI 3 document");
    assert_eq!(api.info.version, env!("CARGO_PKG_VERSION"));
    let doc: Value = serde_json::from_slice(&body).unwrap();

    // The page: HTML that loads the document.
    let mut resp = client().get(format!("{}/docs", osn.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(content_type(&resp).starts_with("text/html"), "{}", content_type(&resp));
    let page = String::from_utf8(resp.body().limit(LIMIT).await.unwrap().to_vec()).unwrap();
    assert!(page.contains("\"/openapi.json\""), "the page loads /openapi.json");

    // The root: an index of the pages.
    let mut resp = client().get(format!("{}/", osn.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let index = String::from_utf8(resp.body().limit(LIMIT).await.unwrap().to_vec()).unwrap();
    assert!(index.contains("href=\"/explorer\"") && index.contains("href=\"/docs\""), "{index}");

    // Every GET route of the document that is not a websocket is served by the router, with a
    // real channel and block: a path the document invents would get the default 404.
    let mut served = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else { continue };
        if get.get("x-websocket").is_some() || get["responses"].get("101").is_some() {
            continue;
        }
        let url = path.replace("{channel}", &channel).replace("{number}", "newest");
        assert!(!url.contains('{'), "{path}: a path parameter this test cannot fill in");
        // Signed as a reader of the channel (the blocks route needs it, the others ignore it).
        let authorization = osn::cli::client::read_authorization(&crypto().client, &channel);
        let mut resp = client()
            .get(format!("{}{url}", osn.url))
            .insert_header(("Authorization", authorization))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let body = resp.body().limit(LIMIT).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        // The router's fallback: 404 with `info: "no route for GET …"`.
        let fallback = code == 404 && text.contains("no route for");
        assert!(!fallback, "GET {url} is documented but not routed: {text}");
        if path == "/explorer/dev-reader" {
            // Only `osn dev` lends an identity; `osn start` has none to give.
            assert_eq!(code, 404, "{text}");
            assert!(text.contains("no development reader here"), "{text}");
            continue;
        }
        assert_eq!(code, 200, "GET {url} (redirects followed): {text}");
        served.push(path.clone());
    }
    served.sort();
    let want = [
        "/",
        "/docs",
        "/explorer",
        "/healthz",
        "/logspec",
        "/metrics",
        "/openapi.json",
        "/readyz",
        "/v1/channels",
        "/v1/channels/{channel}",
        "/v1/channels/{channel}/blocks/{number}",
        "/v1/channels/{channel}/config",
        "/version",
    ];
    assert_eq!(served, want);
}

/// Every path the document lists answers a method it does not list with 405 Method Not Allowed,
/// an `Allow` header naming exactly the methods the document lists for it, and the usual error
/// body; a path it does not list stays 404.
#[actix_rt::test]
async fn other_methods_on_documented_paths_are_405_with_the_documented_allow() {
    let channel = channel_name("methods");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let doc: Value = serde_json::from_str(osn::http::docs::OPENAPI).unwrap();
    let methods = ["get", "put", "post", "delete", "patch"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut documented: Vec<String> =
            methods.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_ascii_uppercase()).collect();
        documented.sort();
        let url = format!("{}{}", osn.url, path.replace("{channel}", &channel).replace("{number}", "0"));
        for method in ["DELETE", "PATCH", "PUT", "POST"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let mut resp = client()
                .request(awc::http::Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .insert_header(("Content-Type", "application/json"))
                .send_body("{}")
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
            let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
            allowed.sort();
            assert_eq!(allowed, documented, "Allow of {path}");
            let body: Value = serde_json::from_slice(&resp.body().limit(LIMIT).await.unwrap()).unwrap();
            assert_eq!(body["status"], "BAD_REQUEST", "{method} {path}: {body}");
            assert!(body["info"].as_str().unwrap().contains(&format!("{method} is not allowed")), "{body}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} method and path pairs");
    let resp = client().delete(format!("{}/v1/nowhere", osn.url)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
