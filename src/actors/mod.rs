//! Actors: the [`supervisor`] starts one [`channel::ChannelActor`] per channel on a fixed pool of
//! arbiters (threads, `[actors] threads`), restarted by actix's `Supervisor` if it stops and by
//! the supervisor if a panic drops it; a restarted actor rebuilds its state from the ledger.
//! Mailboxes are bounded.

pub mod channel;
pub mod supervisor;

pub use crate::ledger::created_channels;
pub use channel::{
    BroadcastBatch, BroadcastError, ChannelActor, ChannelCreator, ChannelStatus, EnqueueConfig, Enqueued, MailboxSlot,
    Phase, Role, Taken,
};
pub use supervisor::{ChannelHandle, Channels, Starter, SystemSpec};
