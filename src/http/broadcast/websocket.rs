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

use super::{acknowledged, answer, body_limit, decode_envelope, enqueue};
use crate::actors::ChannelHandle;
use crate::core::envelope::check_broadcast;
use crate::http::negotiate::{fail, Format};
use crate::http::AppState;
use crate::proto::{BroadcastResponse, Status};

type Pending = Pin<Box<dyn Future<Output = (Format, BroadcastResponse)>>>;

pub async fn websocket(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let channel = path.into_inner();
    let ch = match state.channel(&channel, Format::Json) {
        Ok(ch) => ch.clone(),
        Err(resp) => return Ok(resp),
    };
    if !req.headers().contains_key(actix_web::http::header::UPGRADE) {
        return Ok(fail(
            Format::Json,
            Status::BadRequest,
            "GET on broadcast is a websocket route: connect with a websocket client (Upgrade: websocket), \
             or POST an envelope",
        ));
    }
    // A frame holds one envelope: as large as the channel allows, in either encoding.
    let max_frame = body_limit(ch.batch_size().absolute_max_bytes, Format::Json);
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(max_frame).aggregate_continuations().max_continuation_size(max_frame);
    actix_web::rt::spawn(session_loop(state.into_inner(), ch, session, stream));
    Ok(response)
}

async fn session_loop(
    state: std::sync::Arc<AppState>,
    ch: ChannelHandle,
    mut session: Session,
    mut stream: AggregatedMessageStream,
) {
    let channel = ch.name.clone();
    tracing::debug!(%channel, "broadcast session opened");
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    // Set when the client sent something unusable: answer what came before, then close.
    let mut closing: Option<CloseReason> = None;
    let max_in_flight = state.http.max_in_flight;
    loop {
        if closing.is_some() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some((format, resp)) = in_flight.next(), if !in_flight.is_empty() => {
                if send(&mut session, format, &resp).await.is_err() {
                    return;
                }
            }
            msg = stream.recv(), if closing.is_none() && in_flight.len() < max_in_flight => {
                let (format, raw) = match msg {
                    Some(Ok(Message::Binary(b))) => (Format::Protobuf, b),
                    Some(Ok(Message::Text(t))) => (Format::Json, t.into_bytes()),
                    Some(Ok(Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => {
                        // The client is done sending; answer what is in flight, then close.
                        closing = Some(CloseReason { code: CloseCode::Normal, description: None });
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(%channel, error = %e, "broadcast websocket protocol error");
                        let info = format!("not a valid websocket message: {e}");
                        in_flight.push_back(Box::pin(std::future::ready((Format::Json, answer(Status::BadRequest, info.clone())))));
                        closing = Some(CloseReason { code: CloseCode::Protocol, description: Some(info) });
                        continue;
                    }
                };
                match handle(&state, &ch, format, raw).await {
                    Ok(pending) => in_flight.push_back(pending),
                    Err(resp) => {
                        let info = resp.info.clone();
                        in_flight.push_back(Box::pin(std::future::ready((format, resp))));
                        closing = Some(CloseReason { code: CloseCode::Invalid, description: Some(info) });
                    }
                }
            }
        }
    }
    let _ = session.close(closing).await;
    tracing::debug!(%channel, "broadcast session closed");
}

/// One frame: the future of its answer, or (for a frame that is not an Envelope at all) the
/// answer after which the session closes.
async fn handle(
    state: &AppState,
    ch: &ChannelHandle,
    format: Format,
    raw: Bytes,
) -> Result<Pending, BroadcastResponse> {
    let (envelope, marshaled) = decode_envelope(format, raw).map_err(|info| answer(Status::BadRequest, info))?;
    if let Err(invalid) = check_broadcast(&envelope, &ch.name, ch.batch_size().absolute_max_bytes) {
        let resp = answer(invalid.status(), invalid.to_string());
        return Ok(Box::pin(std::future::ready((format, resp))));
    }
    Ok(match enqueue(state, ch, marshaled).await {
        Ok(enqueued) => Box::pin(async move { (format, acknowledged(enqueued).await) }),
        Err(resp) => Box::pin(std::future::ready((format, resp))),
    })
}

async fn send(session: &mut Session, format: Format, resp: &BroadcastResponse) -> Result<(), actix_ws::Closed> {
    match format {
        Format::Protobuf => session.binary(prost::Message::encode_to_vec(resp)).await,
        Format::Json => session.text(serde_json::to_string(resp).unwrap_or_default()).await,
    }
}
