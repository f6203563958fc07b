//! `AtomicBroadcast.Deliver`: a stream of signed SeekInfo requests (DELIVER_SEEK_INFO envelopes),
//! each answered, as Fabric's orderer answers it, with the blocks it asks for and then
//! `status: SUCCESS`, after which the same stream takes the next request; any other status ends
//! the stream (gRPC status OK). The request names its channel in its channel header; the checks
//! and the blocks are `service::deliver`'s (Readers, the time window, STRICT / BEST_EFFORT,
//! BLOCK_UNTIL_READY / FAIL_IF_NOT_READY, the reader checked again when the configuration changes).
//! With mutual TLS the request's `tls_cert_hash` must be the SHA-256 of the client's certificate
//! (400 otherwise), as Fabric's binding check requires.
//!
//! A slow reader is served at its own pace: a few blocks wait in the stream's buffer, then the
//! subscription waits for the client, reading the ledger only as it goes.

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::StreamMetrics;
use crate::core::envelope::channel_header_of;
use crate::proto::{Block, DeliverResponse, Envelope, Status};
use crate::service::deliver::{Item, StreamGuard, Subscription};
use crate::service::Service;

/// Blocks waiting for the client to read them before the subscription waits.
pub const BLOCKS_BUFFERED: usize = 4;

/// What binds a Deliver request to its TLS session.
#[derive(Debug, Clone)]
pub enum Binding {
    /// No mutual TLS: nothing to check (Fabric checks the hash only with client authentication).
    None,
    /// Mutual TLS: the SHA-256 of the client's certificate (empty if it showed none).
    Client(Vec<u8>),
}

impl Binding {
    /// The binding of a request on a listener that does (`mutual`) or does not require client
    /// certificates.
    pub fn of<T>(request: &tonic::Request<T>, mutual: bool) -> Binding {
        if !mutual {
            return Binding::None;
        }
        let hash = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|cert| Sha256::digest(cert.as_ref()).to_vec()))
            .unwrap_or_default();
        Binding::Client(hash)
    }

    /// Whether a request's `tls_cert_hash` fits the session.
    fn check(&self, tls_cert_hash: &[u8]) -> Result<(), String> {
        match self {
            Binding::None => Ok(()),
            Binding::Client(hash) if hash.is_empty() => {
                Err("mutual TLS: the client presented no certificate to bind the request to".into())
            }
            Binding::Client(_) if tls_cert_hash.is_empty() => Err(
                "mutual TLS: the request's channel header has no tls_cert_hash (the SHA-256 of the client's TLS certificate)"
                    .into(),
            ),
            Binding::Client(hash) if hash.as_slice() != tls_cert_hash => Err(
                "mutual TLS: the request's tls_cert_hash is not the SHA-256 of the client's TLS certificate".into(),
            ),
            Binding::Client(_) => Ok(()),
        }
    }
}

/// Serves one Deliver stream until the client ends it, a request ends with a status other than
/// SUCCESS, or the client goes away.
pub async fn serve(
    service: Service,
    binding: Binding,
    mut inbound: tonic::Streaming<Envelope>,
    out: mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
) {
    let mut metrics = StreamMetrics::new("Deliver");
    let _stream = StreamGuard::new(None);
    loop {
        let envelope = match inbound.message().await {
            Ok(Some(envelope)) => envelope,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "deliver stream: cannot read the next request");
                metrics.failed(e.code());
                let _ = out.send(Err(e)).await;
                return;
            }
        };
        metrics.received();
        let (code, info) = match request(&service, &binding, envelope, &out, &metrics).await {
            Ok(()) => (Status::Success, String::new()),
            Err(refusal) => refusal,
        };
        if code != Status::Success {
            tracing::debug!(status = code.as_str_name(), %info, "deliver request ended");
        }
        // With what was wrong in words (`info`, field 100, which Fabric's clients skip).
        if out.send(Ok(DeliverResponse::status(code, info))).await.is_err() {
            return;
        }
        metrics.sent();
        if code != Status::Success {
            return;
        }
    }
}

/// One request: its blocks, sent; Ok once the stop block was sent, or the status ending it and why.
async fn request(
    service: &Service,
    binding: &Binding,
    envelope: Envelope,
    out: &mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
    metrics: &StreamMetrics,
) -> Result<(), (Status, String)> {
    let header = channel_header_of(&envelope).map_err(|e| (e.status(), e.to_string()))?;
    binding.check(&header.tls_cert_hash).map_err(|info| (Status::BadRequest, info))?;
    let ch = service.lookup(&header.channel_id).map_err(|e| (e.status(), e.to_string()))?;
    let mut subscription = Subscription::open(&ch, Ok(envelope))?;
    loop {
        let item = tokio::select! {
            item = subscription.next() => item,
            // The client went away while the subscription waits for a block.
            () = out.closed() => return Err((Status::ServiceUnavailable, "the client went away".into())),
        };
        match item {
            Some(Item::Block(stored)) => {
                let block = <Block as prost::Message>::decode(stored.raw())
                    .map_err(|e| (Status::InternalServerError, format!("a stored block does not decode: {e}")))?;
                if out.send(Ok(DeliverResponse::block(block))).await.is_err() {
                    return Err((Status::ServiceUnavailable, "the client went away".into()));
                }
                metrics.sent();
            }
            Some(Item::End(Status::Success, _)) => return Ok(()),
            Some(Item::End(code, info)) => return Err((code, info)),
            None => return Ok(()),
        }
    }
}
