//! The explorer and channel console, served by every OSN, and the index page:
//!
//! - `GET /explorer`: [`page`], `explorer.html` beside this module, a self-contained page (inline
//!   style and script, nothing loaded from elsewhere) on the public API only: the channels with
//!   their status and live actor metrics (`/v1/channels`, `/metrics`), blocks as they are
//!   delivered (the deliver websocket), a block decoded (`/v1/channels/{channel}/blocks/{n}`),
//!   and the chain check, run in the browser as `osn verify` runs it. It signs its reads with an
//!   identity the user gives it (WebCrypto); the envelope code is the API page's own (`api.html`,
//!   between `BEGIN envelopes` and `END envelopes`), spliced in where the page says
//!   [`ENVELOPES_MARK`].
//! - `GET /explorer/dev-reader`: `osn dev`'s development client (MSP ID, certificate and key)
//!   for a request carrying the token of the link `osn dev` prints, `Authorization: Bearer
//!   <token>`. 404 on any OSN not started by `osn dev`: `osn start` has no token to give.
//! - `GET /`: a short index of what a browser can open here.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::negotiate::{fail, Format};
use super::AppState;
use crate::proto::Status;

/// The explorer as written, with [`ENVELOPES_MARK`] where the envelope code goes.
const SOURCE: &str = include_str!("explorer.html");

/// Where `explorer.html` takes the API page's envelope code.
pub const ENVELOPES_MARK: &str = "/* ENVELOPES from api.html */";

/// The page served: [`SOURCE`] with the API page's envelope code in place.
pub static PAGE: LazyLock<String> = LazyLock::new(|| SOURCE.replacen(ENVELOPES_MARK, envelope_code(), 1));

/// The section of the API page between its `BEGIN envelopes` and `END envelopes` comments.
fn envelope_code() -> &'static str {
    let page = super::docs::PAGE;
    let start = page.find("/* BEGIN envelopes").expect("api.html marks where its envelope code begins");
    let end = page[start..].find("/* END envelopes */").expect("api.html marks where its envelope code ends") + start;
    &page[start..end]
}

/// The index page.
const INDEX: &str = include_str!("index.html");

/// What the explorer may do: the API page's policy (its own inline script and style; HTTP and
/// websockets to this OSN only).
const PAGE_POLICY: &str = super::docs::PAGE_POLICY;

/// `GET /explorer`.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE.as_str())
}

/// `GET /`.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .body(INDEX)
}

/// The body of `GET /explorer/dev-reader`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevReaderBody<'a> {
    pub msp_id: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// `GET /explorer/dev-reader`.
pub async fn dev_reader(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(reader) = &state.http.dev_reader else {
        return fail(
            Format::Json,
            Status::NotFound,
            "no development reader here: only `osn dev` lends its client identity to the explorer; \
             give the page an identity of your own",
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if same_secret(token.as_bytes(), reader.token.as_bytes()) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(DevReaderBody { msp_id: &reader.msp_id, cert_pem: &reader.cert_pem, key_pem: &reader.key_pem }),
        _ => {
            let info = "the development reader needs `Authorization: Bearer <token>` with the token of the explorer \
                        link `osn dev` printed"
                .to_owned();
            let body = crate::proto::BroadcastResponse { status: Status::Forbidden as i32, info };
            let mut resp = super::negotiate::respond(Format::Json, actix_web::http::StatusCode::UNAUTHORIZED, &body);
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh token for a dev reader: 32 random bytes, hex.
pub fn new_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    crate::core::block::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_holds_the_envelope_code_and_loads_nothing_from_elsewhere() {
        assert!(!SOURCE.contains("function seekEnvelope"), "explorer.html takes the envelope code from api.html");
        assert!(SOURCE.contains(ENVELOPES_MARK));
        assert!(PAGE.contains("function seekEnvelope") && PAGE.contains("function importIdentity"));
        assert!(!PAGE.contains(ENVELOPES_MARK));
        for page in [PAGE.as_str(), INDEX] {
            let lower = page.to_ascii_lowercase();
            assert!(lower.starts_with("<!doctype html>"));
            for banned in ["http://", "https://", "<script src", "<link", "src=", "@import"] {
                assert!(!lower.contains(banned), "a page contains {banned:?}");
            }
            let style = lower.split_once("<style>").and_then(|(_, rest)| rest.split_once("</style>")).unwrap().0;
            assert!(!style.contains("url("), "the style loads nothing");
        }
        assert!(INDEX.contains("href=\"/explorer\"") && INDEX.contains("href=\"/docs\""));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd") && !same_secret(b"abc", b"ab") && !same_secret(b"", b"a"));
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
