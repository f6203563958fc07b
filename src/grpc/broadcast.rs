//! `AtomicBroadcast.Broadcast`: envelopes in, one `BroadcastResponse` out per envelope, in order,
//! as Fabric's orderer answers them; SUCCESS once Kafka acknowledged the envelope.
//!
//! Each envelope is routed by its channel header (`Service::route`): to be ordered on its channel,
//! a config update, or a channel creation. Envelopes are pipelined: the stream reads on while
//! earlier ones are checked, relayed and acknowledged, with up to `grpc.max-in-flight` awaiting
//! their answer (beyond it the server stops reading, which pushes back on the client), and the
//! envelopes already received for one channel are relayed in one actor message. Checks run on the
//! verification pool; relaying keeps the order of the stream.
//!
//! **After a non-SUCCESS answer the stream ends** (gRPC status OK), as Fabric's does: that answer
//! is the last one. An envelope refused by a check (400, 403, 404, 413) is never relayed, and
//! neither is anything the client sent after it. An envelope refused once relayed (503: the
//! channel not ready or busy, or Kafka not acknowledging it) may have later envelopes of the
//! stream already relayed, which get no answer: like a lost connection, their fate is unknown to
//! the client (a retried one may be ordered twice; peers mark the second copy a duplicate
//! transaction, as with Fabric).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt as _;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use super::StreamMetrics;
use crate::proto::{BroadcastResponse, Envelope, Status};
use crate::service::broadcast::{authorise, checked, relay_in_order, Route};
use crate::service::Service;

/// Answers waiting for the client to read them before the stream stops sending.
pub const ANSWERS_BUFFERED: usize = 64;
/// Most envelopes relayed to a channel actor in one message.
const MAX_COALESCED: usize = 256;

/// The answers to one group of envelopes, in order.
type Pending = Pin<Box<dyn Future<Output = Vec<BroadcastResponse>> + Send>>;
/// A group's answers and how many envelopes it took.
type Counted = Pin<Box<dyn Future<Output = (usize, Vec<BroadcastResponse>)> + Send>>;

/// One Broadcast stream.
pub struct Stream {
    service: Service,
    max_in_flight: usize,
    /// Set once an envelope is refused before it was relayed: nothing after it is relayed.
    stopped: Arc<AtomicBool>,
    metrics: StreamMetrics,
}

/// A run of envelopes that go the same way.
enum Group {
    /// Envelopes to order on one channel.
    Order(crate::actors::ChannelHandle, Vec<Envelope>),
    /// A config update or a channel creation.
    Config(Route, Envelope),
    /// Refused at routing.
    Refused(BroadcastResponse),
}

impl Stream {
    pub fn new(service: Service, max_in_flight: usize) -> Self {
        Stream { service, max_in_flight, stopped: Arc::default(), metrics: StreamMetrics::new("Broadcast") }
    }

    /// Serves the stream until the client ends it (after its answers), an answer is not SUCCESS
    /// (after that answer), or the client goes away.
    pub async fn run(
        mut self,
        mut inbound: tonic::Streaming<Envelope>,
        out: mpsc::Sender<Result<BroadcastResponse, tonic::Status>>,
    ) {
        let mut in_flight: FuturesOrdered<Counted> = FuturesOrdered::new();
        let mut count = 0;
        // Why the client's stream could not be read, sent after the answers before it.
        let mut unreadable: Option<tonic::Status> = None;
        // Fires when the previous group was relayed (or refused): the next one relays after it,
        // so envelopes reach their channels in the stream's order while groups are checked
        // concurrently.
        let mut last_relayed: Option<oneshot::Receiver<()>> = None;
        let mut closing = false;
        loop {
            if closing && in_flight.is_empty() {
                if let Some(status) = unreadable {
                    self.metrics.failed(status.code());
                    let _ = out.send(Err(status)).await;
                }
                return;
            }
            tokio::select! {
                Some((size, answers)) = in_flight.next(), if !in_flight.is_empty() => {
                    count -= size;
                    for resp in answers {
                        let success = resp.status == Status::Success as i32;
                        if out.send(Ok(resp)).await.is_err() {
                            return;
                        }
                        self.metrics.sent();
                        if !success {
                            return;
                        }
                    }
                }
                first = inbound.message(), if !closing && count < self.max_in_flight => {
                    // This envelope and every one already received, up to the room left.
                    let room = (self.max_in_flight - count).min(MAX_COALESCED);
                    let mut envelopes = Vec::new();
                    let mut next = Some(first);
                    while let Some(message) = next.take() {
                        match message {
                            Ok(Some(envelope)) => {
                                self.metrics.received();
                                envelopes.push(envelope);
                            }
                            Ok(None) => {
                                closing = true;
                                break;
                            }
                            Err(status) => {
                                tracing::debug!(error = %status, "broadcast stream: cannot read the next envelope");
                                unreadable = Some(status);
                                closing = true;
                                break;
                            }
                        }
                        if envelopes.len() >= room {
                            break;
                        }
                        next = inbound.message().now_or_never();
                    }
                    for group in self.group(envelopes) {
                        let (relayed, next_relayed) = oneshot::channel();
                        let after = last_relayed.replace(next_relayed);
                        let (size, pending) = self.pending(group, after, relayed);
                        count += size;
                        in_flight.push_back(Box::pin(pending.map(move |answers| (size, answers))));
                    }
                }
            }
        }
    }

    /// Routes envelopes and groups runs of envelopes to order on the same channel.
    fn group(&self, envelopes: Vec<Envelope>) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for envelope in envelopes {
            match self.service.route(&envelope) {
                Ok(Route::Order(ch)) => match groups.last_mut() {
                    Some(Group::Order(last, run)) if last.name == ch.name => run.push(envelope),
                    _ => groups.push(Group::Order(ch, vec![envelope])),
                },
                Ok(route) => groups.push(Group::Config(route, envelope)),
                Err(refusal) => groups.push(Group::Refused(refusal)),
            }
        }
        groups
    }

    /// The future of a group's answers (and how many): checked now, relayed after `after`,
    /// signalling `relayed` once its envelopes are in their channel's actor (or refused).
    fn pending(
        &self,
        group: Group,
        after: Option<oneshot::Receiver<()>>,
        relayed: oneshot::Sender<()>,
    ) -> (usize, Pending) {
        let (service, stopped) = (self.service.clone(), self.stopped.clone());
        let previous = async move {
            if let Some(previous) = after {
                // An error only means the previous group's future was dropped: the stream is over.
                let _ = previous.await;
            }
        };
        match group {
            Group::Refused(resp) => (
                1,
                Box::pin(async move {
                    previous.await;
                    stopped.store(true, Ordering::SeqCst);
                    let _ = relayed.send(());
                    vec![resp]
                }),
            ),
            Group::Config(route, envelope) => (
                1,
                Box::pin(async move {
                    previous.await;
                    if stopped.load(Ordering::SeqCst) {
                        let _ = relayed.send(());
                        return Vec::new();
                    }
                    let resp = service.config_transaction(&route, &envelope).await;
                    if resp.status != Status::Success as i32 {
                        stopped.store(true, Ordering::SeqCst);
                    }
                    let _ = relayed.send(());
                    vec![resp]
                }),
            ),
            Group::Order(ch, envelopes) => {
                let size = envelopes.len();
                let candidates: Vec<_> = envelopes
                    .into_iter()
                    .map(|envelope| {
                        // Relayed as Fabric's orderer relays it: the envelope marshaled again.
                        let marshaled = envelope.encode_to_vec().into();
                        checked(&ch, envelope, marshaled)
                    })
                    .collect();
                (
                    size,
                    Box::pin(async move {
                        let mut authorised = authorise(&service, &ch, candidates).await;
                        previous.await;
                        if stopped.load(Ordering::SeqCst) {
                            let _ = relayed.send(());
                            return Vec::new();
                        }
                        // Nothing after a refused envelope is relayed.
                        if let Some(first) = authorised.results.iter().position(Result::is_err) {
                            authorised.results.truncate(first + 1);
                            authorised.kinds.truncate(first + 1);
                            stopped.store(true, Ordering::SeqCst);
                        }
                        let mut answers: Vec<_> = relay_in_order(&service, &ch, authorised)
                            .await
                            .into_iter()
                            .map(futures_util::FutureExt::boxed)
                            .collect();
                        // Refusals by the channel come at once: they stop the relaying of what follows.
                        let mut ready = Vec::with_capacity(answers.len());
                        for answer in &mut answers {
                            let now = answer.now_or_never();
                            if now.as_ref().is_some_and(|r| r.status != Status::Success as i32) {
                                stopped.store(true, Ordering::SeqCst);
                            }
                            ready.push(now);
                        }
                        let _ = relayed.send(());
                        let mut out = Vec::with_capacity(answers.len());
                        for (answer, now) in answers.into_iter().zip(ready) {
                            out.push(match now {
                                Some(resp) => resp,
                                None => answer.await,
                            });
                        }
                        out
                    }),
                )
            }
        }
    }
}
