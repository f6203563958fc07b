//! `GET /v1/channels/{channel}/deliver`, upgraded to a websocket. The client sends a
//! DELIVER_SEEK_INFO Envelope (binary frame = protobuf, text frame = JSON); the server answers
//! DeliverResponses in the same form: the blocks asked for, then a final `status: SUCCESS`, or a
//! single error status. The client may then send another request on the same socket.
//!
//! A subscriber reads blocks from the ledger behind the channel's height watch: a slow
//! subscriber falls behind without queueing anything, and the actor-side cost of a subscriber
//! is one watch receiver.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{Message, MessageStream, Session};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;

use super::negotiate::{fail, Format};
use super::AppState;
use crate::core::envelope::check_seek_request;
use crate::core::seek::{resolve, SeekRange};
use crate::ledger::Ledger;
use crate::proto::orderer::deliver_response;
use crate::proto::{Block, DeliverResponse, Envelope, Status};

/// Largest request frame accepted (a SeekInfo envelope is small; signed ones stay well below).
const MAX_FRAME: usize = 1024 * 1024;

pub async fn websocket(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let channel = path.into_inner();
    let ledger = match state.channel(&channel, Format::Json) {
        Ok(ch) => ch.ledger.clone(),
        Err(resp) => return Ok(resp),
    };
    if !req.headers().contains_key(actix_web::http::header::UPGRADE) {
        return Ok(fail(
            Format::Json,
            Status::BadRequest,
            "deliver is a websocket route: connect with a websocket client (Upgrade: websocket)",
        ));
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(session_loop(ledger, channel, session, stream.max_frame_size(MAX_FRAME)));
    Ok(response)
}

/// How a session ended, for logs.
enum End {
    ClientGone,
    Served,
}

async fn session_loop(ledger: Arc<Ledger>, channel: String, mut session: Session, mut stream: MessageStream) {
    tracing::debug!(%channel, "deliver session opened");
    loop {
        let (format, raw) = match stream.recv().await {
            Some(Ok(Message::Binary(b))) => (Format::Protobuf, b),
            Some(Ok(Message::Text(t))) => (Format::Json, t.into_bytes()),
            Some(Ok(Message::Ping(p))) => {
                if session.pong(&p).await.is_err() {
                    break;
                }
                continue;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(%channel, error = %e, "deliver protocol error");
                let _ = send_status(&mut session, Format::Json, Status::BadRequest).await;
                break;
            }
        };
        let request = super::negotiate::decode::<Envelope>(format, raw, "common.Envelope")
            .map_err(|info| (Status::BadRequest, info))
            .and_then(|env| check_seek_request(&env, &channel).map_err(|e| (e.status(), e.to_string())))
            .and_then(|seek| resolve(&seek, ledger.height()).map_err(|e| (e.status(), e.to_string())));
        let range = match request {
            Ok(range) => range,
            Err((status, info)) => {
                // DeliverResponse carries only a status; the reason goes to the log.
                tracing::debug!(%channel, ?status, %info, "deliver request refused");
                if send_status(&mut session, format, status).await.is_err() {
                    break;
                }
                continue;
            }
        };
        match serve(&ledger, &mut session, &mut stream, format, range).await {
            Ok(End::Served) => continue,
            Ok(End::ClientGone) | Err(_) => break,
        }
    }
    let _ = session.close(None).await;
    tracing::debug!(%channel, "deliver session closed");
}

/// Streams the blocks of `range`, then the final status. Returns when done or the client left.
async fn serve(
    ledger: &Ledger,
    session: &mut Session,
    stream: &mut MessageStream,
    format: Format,
    range: SeekRange,
) -> Result<End, actix_ws::Closed> {
    let mut height = ledger.subscribe();
    let mut next = range.start;
    loop {
        if next > range.stop {
            send_status(session, format, Status::Success).await?;
            return Ok(End::Served);
        }
        let h = *height.borrow_and_update();
        if next < h {
            match ledger.block_bytes(next) {
                Ok(Some(raw)) => session_send_block(session, format, raw).await?,
                Ok(None) | Err(_) => {
                    send_status(session, format, Status::InternalServerError).await?;
                    return Ok(End::Served);
                }
            }
            next += 1;
            continue;
        }
        if !range.wait {
            send_status(session, format, Status::NotFound).await?;
            return Ok(End::Served);
        }
        tokio::select! {
            changed = height.changed() => {
                if changed.is_err() {
                    send_status(session, format, Status::ServiceUnavailable).await?;
                    return Ok(End::Served);
                }
            }
            msg = stream.recv() => match msg {
                Some(Ok(Message::Ping(p))) => session.pong(&p).await?,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(End::ClientGone),
                // A new request while one is streaming: Fabric handles requests one at a time.
                Some(Ok(_)) => {
                    send_status(session, format, Status::BadRequest).await?;
                    return Ok(End::Served);
                }
            }
        }
    }
}

async fn session_send_block(session: &mut Session, format: Format, raw: Bytes) -> Result<(), actix_ws::Closed> {
    match format {
        Format::Protobuf => session.binary(deliver_block_frame(&raw)).await,
        Format::Json => match <Block as prost::Message>::decode(raw) {
            Ok(block) => {
                let resp = DeliverResponse::block(block);
                session.text(serde_json::to_string(&resp).unwrap_or_default()).await
            }
            Err(_) => send_status(session, format, Status::InternalServerError).await,
        },
    }
}

/// `DeliverResponse{block}` built around the stored block bytes, without decoding them.
pub fn deliver_block_frame(block: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(block.len() + 11);
    out.put_u8(0x12); // field 2 (block), wire type 2
    prost::encoding::encode_varint(block.len() as u64, &mut out);
    out.extend_from_slice(block);
    out.freeze()
}

async fn send_status(session: &mut Session, format: Format, status: Status) -> Result<(), actix_ws::Closed> {
    let resp = DeliverResponse::status(status, "");
    match format {
        Format::Protobuf => session.binary(prost::Message::encode_to_vec(&resp)).await,
        Format::Json => session.text(serde_json::to_string(&resp).unwrap_or_default()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn block_frame_decodes_as_a_deliver_response() {
        let block =
            Block { header: Some(crate::proto::BlockHeader { number: 7, ..Default::default() }), ..Default::default() };
        let frame = deliver_block_frame(&block.encode_to_vec());
        let resp = DeliverResponse::decode(frame).unwrap();
        assert_eq!(resp.r#type, Some(deliver_response::Type::Block(block)));
    }
}
