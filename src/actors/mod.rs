//! Actors: the [`supervisor`] starts one [`channel::ChannelActor`] per channel, each on its own
//! arbiter (thread), restarted by actix's `Supervisor` if it stops; a restarted actor rebuilds
//! its state from the ledger. Mailboxes are bounded.

pub mod channel;
pub mod supervisor;

pub use channel::{
    BroadcastBatch, BroadcastError, ChannelActor, ChannelStatus, EnqueueConfig, Enqueued, MailboxSlot, Phase,
};
pub use supervisor::{created_channels, ChannelHandle, ChannelSpec, Channels, Starter, SystemSpec};
