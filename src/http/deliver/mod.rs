//! Deliver: a client sends a DELIVER_SEEK_INFO Envelope and receives DeliverResponses, the blocks
//! asked for and then one status. Two transports share the service's [`Subscription`]
//! (`service::deliver`), decoding requests and encoding its items:
//!
//! - [`websocket`]: `GET /v1/channels/{channel}/deliver`, several requests one after another;
//! - [`stream`]: `POST /v1/channels/{channel}/deliver`, one request, a chunked response.
//!
//! A request is a signed DELIVER_SEEK_INFO envelope whose creator must satisfy the channel's
//! Readers policy (403 otherwise). A live stream re-checks its creator whenever the channel's
//! access control changes, and ends with FORBIDDEN when the creator's certificate expires.
//!
//! A subscription reads blocks from the ledger behind the channel's height watch. Nothing is
//! queued for a subscriber: a slow one falls behind and reads the ledger at its own pace, and the
//! channel's cost for it is one watch receiver. Dropping it frees everything.

pub mod stream;
pub mod websocket;

use bytes::Bytes;

use super::negotiate::{decode, Format};
use crate::proto::{Block, DeliverResponse, Envelope, Status};
pub use crate::service::deliver::{check_reader, Item, StreamGuard, Subscription};

/// Largest deliver request accepted (a SeekInfo envelope is small; signed ones stay well below).
pub const MAX_REQUEST: usize = 1024 * 1024;

/// The Envelope of a deliver request body in `format`, or why it does not decode (the
/// subscription counts and refuses it).
pub fn decode_request(format: Format, raw: Bytes) -> Result<Envelope, String> {
    decode(format, raw, "common.Envelope")
}

/// One DeliverResponse in `format` (protobuf bytes, or JSON text without a newline).
pub fn encode(format: Format, item: Item) -> Bytes {
    match (format, item) {
        // The stored bytes already are the block's encoding: wrap them without decoding.
        (Format::Protobuf, Item::Block(stored)) => stored.deliver_frame(),
        (Format::Json, Item::Block(stored)) => match <Block as prost::Message>::decode(stored.raw()) {
            Ok(block) => json(&DeliverResponse::block(block)),
            Err(e) => json(&DeliverResponse::status(
                Status::InternalServerError,
                format!("a stored block does not decode: {e}"),
            )),
        },
        (Format::Protobuf, Item::End(status, info)) => {
            prost::Message::encode_to_vec(&DeliverResponse::status(status, info)).into()
        }
        (Format::Json, Item::End(status, info)) => json(&DeliverResponse::status(status, info)),
    }
}

fn json(resp: &DeliverResponse) -> Bytes {
    // Generated serde for a message with string/bytes/enum fields cannot fail.
    serde_json::to_vec(resp).map(Bytes::from).unwrap_or_default()
}

#[cfg(test)]
mod tests;
