//! `GET /v1/channels/{channel}/deliver`, upgraded to a websocket. Each request is a
//! DELIVER_SEEK_INFO Envelope (binary frame = protobuf, text frame = JSON) and is answered in the
//! same form: the blocks, then a final status. Requests are served one at a time, in order, as
//! Fabric's Deliver stream does; requests sent while one is streaming wait their turn (up to
//! [`MAX_QUEUED`]). A frame that is not a websocket message at all gets BAD_REQUEST and a close.

use std::collections::VecDeque;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage as Message, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytes::Bytes;

use super::{encode, Item, Subscription, MAX_REQUEST};
use crate::actors::ChannelHandle;
use crate::http::negotiate::Format;
use crate::http::websocket_channel;
use crate::http::AppState;
use crate::proto::Status;

/// Requests a client may queue behind the one being served.
pub const MAX_QUEUED: usize = 16;

pub async fn websocket(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let alternative = "POST a DELIVER_SEEK_INFO envelope for a streamed HTTP response";
    let ch = match websocket_channel(&state, &path, &req, alternative) {
        Ok(ch) => ch,
        Err(resp) => return Ok(resp),
    };
    let (response, session, stream) = match crate::http::websocket_handshake(&req, body) {
        Ok(handshake) => handshake,
        Err(resp) => return Ok(resp),
    };
    actix_web::rt::spawn(session_loop(
        ch,
        session,
        stream.max_frame_size(MAX_REQUEST).aggregate_continuations().max_continuation_size(MAX_REQUEST),
    ));
    Ok(response)
}

async fn session_loop(ch: ChannelHandle, mut session: Session, mut stream: AggregatedMessageStream) {
    let channel = ch.name.clone();
    let _stream = super::StreamGuard::new(Some(&channel));
    tracing::debug!(%channel, "deliver session opened");
    let mut queued: VecDeque<(Format, Bytes)> = VecDeque::new();
    let mut current: Option<(Format, Subscription)> = None;
    let close = loop {
        while current.is_none() {
            let Some((format, raw)) = queued.pop_front() else { break };
            match Subscription::open(&ch, super::decode_request(format, raw)) {
                Ok(sub) => current = Some((format, sub)),
                Err((status, info)) => {
                    tracing::debug!(%channel, ?status, %info, "deliver request refused");
                    if send(&mut session, format, Item::End(status, info)).await.is_err() {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            // Serving a request; `next` is cancel-safe, so a client frame may win the race.
            item = next(&mut current) => {
                let Some((format, _)) = current else { continue };
                match item {
                    Some(item @ Item::Block(_)) => {
                        if send(&mut session, format, item).await.is_err() {
                            return;
                        }
                    }
                    Some(item @ Item::End(..)) => {
                        current = None;
                        if send(&mut session, format, item).await.is_err() {
                            return;
                        }
                    }
                    None => current = None,
                }
            }
            msg = stream.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if let Err(reason) = enqueue(&mut queued, Format::Protobuf, b) {
                        break Some(reason);
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Err(reason) = enqueue(&mut queued, Format::Json, t.into_bytes()) {
                        break Some(reason);
                    }
                }
                Some(Ok(Message::Ping(p))) => {
                    if session.pong(&p).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Ok(Message::Pong(_))) => {}
                Some(Err(e)) => {
                    tracing::debug!(%channel, error = %e, "deliver websocket protocol error");
                    let info = format!("not a valid websocket message: {e}");
                    let _ = send(&mut session, Format::Json, Item::End(Status::BadRequest, info.clone())).await;
                    break Some(CloseReason { code: CloseCode::Protocol, description: Some(info) });
                }
            }
        }
    };
    let _ = session.close(close).await;
    tracing::debug!(%channel, "deliver session closed");
}

/// The current subscription's next item; pending forever when there is none.
async fn next(current: &mut Option<(Format, Subscription)>) -> Option<Item> {
    match current {
        Some((_, sub)) => sub.next().await,
        None => std::future::pending().await,
    }
}

fn enqueue(queued: &mut VecDeque<(Format, Bytes)>, format: Format, raw: Bytes) -> Result<(), CloseReason> {
    if queued.len() >= MAX_QUEUED {
        return Err(CloseReason {
            code: CloseCode::Policy,
            description: Some(format!("more than {MAX_QUEUED} deliver requests queued; send one after the other")),
        });
    }
    queued.push_back((format, raw));
    Ok(())
}

async fn send(session: &mut Session, format: Format, item: Item) -> Result<(), actix_ws::Closed> {
    match format {
        Format::Protobuf => session.binary(encode(format, item)).await,
        // JSON encodes to UTF-8 text.
        Format::Json => session.text(String::from_utf8_lossy(&encode(format, item)).into_owned()).await,
    }
}
