//! `GET /v1/channels/{channel}/broadcast`, upgraded to a websocket: envelopes in, one
//! BroadcastResponse out per envelope, in order (binary frame = protobuf, text frame = JSON; each
//! answer in its envelope's form). Envelopes are relayed as they arrive and answered as Kafka
//! acknowledges them, with up to `http.max-in-flight` awaiting acknowledgement; beyond that the
//! server stops reading the socket, which pushes back on the client.
//!
//! An envelope that fails a check gets its refusal and the stream goes on (Fabric ends its stream
//! on the first non-SUCCESS answer; a load test or a batching client is better served this way).
//! A frame that does not decode as an Envelope, or that is not a websocket message, gets
//! BAD_REQUEST after the answers before it, and the socket is closed.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage as Message, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt as _;
use tokio::sync::oneshot;

use super::{answer, authorise, body_limit, decode_envelope, relay_in_order};
use crate::actors::ChannelHandle;
use crate::http::negotiate::Format;
use crate::http::websocket_channel;
use crate::http::AppState;
use crate::proto::{BroadcastResponse, Status};

/// The answers to one group of frames, in order, each in its frame's format.
type Pending = Pin<Box<dyn Future<Output = Vec<(Format, BroadcastResponse)>>>>;

pub async fn websocket(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let ch = match websocket_channel(&state, &path, &req, "POST an envelope") {
        Ok(ch) => ch,
        Err(resp) => return Ok(resp),
    };
    // A frame holds one envelope: as large as the channel allows, in either encoding.
    let max_frame = body_limit(ch.batch_size().absolute_max_bytes, Format::Json);
    let (response, session, stream) = match crate::http::websocket_handshake(&req, body) {
        Ok(handshake) => handshake,
        Err(resp) => return Ok(resp),
    };
    let stream = stream.max_frame_size(max_frame).aggregate_continuations().max_continuation_size(max_frame);
    actix_web::rt::spawn(session_loop(state.into_inner(), ch, session, stream));
    Ok(response)
}

/// Most frames relayed to the channel actor in one message.
const MAX_COALESCED: usize = 256;

async fn session_loop(
    state: std::sync::Arc<AppState>,
    ch: ChannelHandle,
    mut session: Session,
    mut stream: AggregatedMessageStream,
) {
    let channel = ch.name.clone();
    tracing::debug!(%channel, "broadcast session opened");
    // Groups of frames being checked, relayed or awaiting Kafka, and how many frames they hold.
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut frames_in_flight = 0;
    // Fires when the last group handed to the channel was relayed: the next one waits for it, so
    // envelopes reach the channel in the order they came, while groups are verified concurrently.
    let mut last_relayed: Option<oneshot::Receiver<()>> = None;
    // Set when the client is done or sent something unusable: answer what came before, then close.
    let mut closing: Option<CloseReason> = None;
    let max_in_flight = state.http.max_in_flight;
    loop {
        if closing.is_some() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(answers) = in_flight.next(), if !in_flight.is_empty() => {
                frames_in_flight -= answers.len();
                for (format, resp) in answers {
                    if send(&mut session, format, &resp).await.is_err() {
                        return;
                    }
                }
            }
            msg = stream.recv(), if closing.is_none() && frames_in_flight < max_in_flight => {
                // Take this frame and every one already received, up to the room left, so a fast
                // client costs one actor message per group rather than per envelope.
                let room = (max_in_flight - frames_in_flight).min(MAX_COALESCED);
                let mut frames = Vec::new();
                let mut next = Some(msg);
                while let Some(msg) = next.take() {
                    match msg {
                        Some(Ok(Message::Binary(b))) => frames.push((Format::Protobuf, b)),
                        Some(Ok(Message::Text(t))) => frames.push((Format::Json, t.into_bytes())),
                        Some(Ok(Message::Ping(p))) => {
                            if session.pong(&p).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => {
                            closing = Some(CloseReason { code: CloseCode::Normal, description: None });
                            break;
                        }
                        Some(Err(e)) => {
                            tracing::debug!(%channel, error = %e, "broadcast websocket protocol error");
                            let info = format!("not a valid websocket message: {e}");
                            closing = Some(CloseReason { code: CloseCode::Protocol, description: Some(info) });
                            break;
                        }
                    }
                    if frames.len() >= room {
                        break;
                    }
                    next = stream.recv().now_or_never();
                }
                if !frames.is_empty() {
                    let (relayed, next_relayed) = oneshot::channel();
                    let after = last_relayed.replace(next_relayed);
                    let (count, pending, invalid) = relay(state.clone(), ch.clone(), frames, after, relayed);
                    frames_in_flight += count;
                    in_flight.push_back(pending);
                    if let Some(reason) = invalid {
                        closing = Some(reason);
                    }
                }
                if let Some(CloseReason { code: CloseCode::Protocol, description }) = &closing {
                    let resp = answer(Status::BadRequest, description.clone().unwrap_or_default());
                    frames_in_flight += 1;
                    in_flight.push_back(Box::pin(std::future::ready(vec![(Format::Json, resp)])));
                }
            }
        }
    }
    let _ = session.close(closing).await;
    tracing::debug!(%channel, "broadcast session closed");
}

/// Decodes and structurally checks a group of frames now, and returns (with the number of
/// answers to come) the future of their answers, in order: it verifies the group on the
/// verification pool, waits for `after` (the previous group relayed), relays the valid envelopes
/// in one actor message, signals `relayed`, and awaits Kafka's acknowledgements. A frame that is
/// not an Envelope at all gets BAD_REQUEST, ends the group, and its close reason is returned.
fn relay(
    state: std::sync::Arc<AppState>,
    ch: ChannelHandle,
    frames: Vec<(Format, Bytes)>,
    after: Option<oneshot::Receiver<()>>,
    relayed: oneshot::Sender<()>,
) -> (usize, Pending, Option<CloseReason>) {
    let mut formats = Vec::with_capacity(frames.len());
    let mut checked = Vec::with_capacity(frames.len());
    let mut close = None;
    for (format, raw) in frames {
        formats.push(format);
        match decode_envelope(format, raw) {
            Err(info) => {
                close = Some(CloseReason { code: CloseCode::Invalid, description: Some(info.clone()) });
                checked.push(Err(answer(Status::BadRequest, info)));
                break;
            }
            Ok((envelope, marshaled)) => checked.push(super::checked(&ch, envelope, marshaled)),
        }
    }
    let count = formats.len();
    let pending = async move {
        let checked = authorise(&state, &ch, checked).await;
        if let Some(previous) = after {
            // An error only means the previous group's future was dropped: the session is over.
            let _ = previous.await;
        }
        let answers = relay_in_order(&state, &ch, checked).await;
        let _ = relayed.send(());
        let answers = futures_util::future::join_all(answers).await;
        formats.into_iter().zip(answers).collect()
    };
    (count, Box::pin(pending), close)
}

async fn send(session: &mut Session, format: Format, resp: &BroadcastResponse) -> Result<(), actix_ws::Closed> {
    match format {
        Format::Protobuf => session.binary(prost::Message::encode_to_vec(resp)).await,
        Format::Json => session.text(serde_json::to_string(resp).unwrap_or_default()).await,
    }
}
