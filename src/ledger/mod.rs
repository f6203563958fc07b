//! The ledger: each channel's chain of blocks, and the commit point of ordering.
//!
//! [`Store`] and [`ChannelStore`] are the storage trait, implemented by [`rocks::RocksStore`]
//! (one column family per channel) and [`memory::MemoryStore`]. [`Ledger`] wraps one channel's
//! store: it writes the genesis block of a new channel, refuses a block that does not extend the
//! chain, and publishes the height on a watch channel so Deliver subscribers wait for blocks
//! instead of queueing them.
//!
//! The consumer position is the ORDERER metadata (`KafkaMetadata`) of the last block: a block and
//! the offset it covers are one value, written in one atomic batch. Nothing else stores it.

pub mod memory;
pub mod rocks;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::watch;

use crate::core::block::{genesis_block, header_hash, kafka_metadata, last_config};
use crate::core::chain::ChainTip;
use crate::identity::SigningIdentity;
use crate::proto::osn::ChannelConfig;
use crate::proto::{Block, Envelope, Payload};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger storage error on channel '{channel}': {message}")]
    Storage { channel: String, message: String },
    #[error("ledger of channel '{channel}' is corrupt at block {number}: {reason}")]
    Corrupt { channel: String, number: u64, reason: String },
    #[error("block {got} does not extend channel '{channel}' (expected block {expected})")]
    OutOfOrder { channel: String, expected: u64, got: u64 },
    #[error("block {number} of channel '{channel}' does not link to the previous block's header hash")]
    BrokenLink { channel: String, number: u64 },
}

/// Storage of many channels.
pub trait Store: Send + Sync + 'static {
    /// Opens (creating if needed) the storage of one channel.
    fn channel(&self, channel: &str) -> Result<Arc<dyn ChannelStore>, LedgerError>;
    /// Channels that have storage.
    fn channels(&self) -> Result<Vec<String>, LedgerError>;
}

/// Storage of one channel's blocks, by number.
pub trait ChannelStore: Send + Sync + 'static {
    /// The last block's number and marshaled bytes, if any block is stored.
    fn last(&self) -> Result<Option<(u64, Bytes)>, LedgerError>;
    /// A block's marshaled bytes.
    fn get(&self, number: u64) -> Result<Option<Bytes>, LedgerError>;
    /// Appends one block atomically: after a crash it is either wholly there or not at all.
    fn append(&self, number: u64, block: &[u8]) -> Result<(), LedgerError>;
}

/// One channel's ledger.
pub struct Ledger {
    channel: String,
    store: Arc<dyn ChannelStore>,
    tip: Mutex<ChainTip>,
    height: watch::Sender<u64>,
    config: ChannelConfig,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("channel", &self.channel).field("height", &self.height()).finish()
    }
}

impl Ledger {
    /// Opens a channel's ledger; a new channel gets its genesis block built from `config` and
    /// signed by `signer` (an OSN always passes its identity; None writes an unsigned genesis
    /// block, for tools and tests). An existing channel keeps the configuration of its genesis
    /// block.
    pub fn open(
        channel: &str,
        store: Arc<dyn ChannelStore>,
        config: &ChannelConfig,
        signer: Option<&SigningIdentity>,
    ) -> Result<Self, LedgerError> {
        let corrupt = |number, reason: String| LedgerError::Corrupt { channel: channel.to_owned(), number, reason };
        let last = match store.last()? {
            Some(last) => last,
            None => {
                let mut genesis = genesis_block(channel, config);
                if let Some(signer) = signer {
                    signer.sign_block(&mut genesis);
                }
                let genesis = genesis.encode_to_vec();
                store.append(0, &genesis)?;
                (0, Bytes::from(genesis))
            }
        };
        let (number, raw) = last;
        let block = Block::decode(raw).map_err(|e| corrupt(number, format!("does not decode: {e}")))?;
        let header = block.header.as_ref().ok_or_else(|| corrupt(number, "no header".into()))?;
        if header.number != number {
            return Err(corrupt(number, format!("stored under number {number} but holds block {}", header.number)));
        }
        let kafka = kafka_metadata(&block).ok_or_else(|| corrupt(number, "no ORDERER (Kafka) metadata".into()))?;
        let tip = ChainTip {
            next_number: number + 1,
            previous_hash: header_hash(header).into(),
            kafka,
            last_config: last_config(&block).unwrap_or(0),
        };
        let genesis = if number == 0 {
            block
        } else {
            Self::read(&*store, channel, 0)?.ok_or_else(|| corrupt(0, "missing".into()))?
        };
        let stored_config = genesis_config(&genesis).map_err(|e| corrupt(0, e))?;
        Ok(Ledger {
            channel: channel.to_owned(),
            store,
            height: watch::Sender::new(tip.next_number),
            tip: Mutex::new(tip),
            config: stored_config,
        })
    }

    fn read(store: &dyn ChannelStore, channel: &str, number: u64) -> Result<Option<Block>, LedgerError> {
        match store.get(number)? {
            None => Ok(None),
            Some(raw) => Block::decode(raw).map(Some).map_err(|e| LedgerError::Corrupt {
                channel: channel.to_owned(),
                number,
                reason: format!("does not decode: {e}"),
            }),
        }
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The channel configuration of the genesis block.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// Number of blocks (the next block's number).
    pub fn height(&self) -> u64 {
        *self.height.borrow()
    }

    /// A receiver that sees every height change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    /// What the ordering chain resumes from.
    pub fn tip(&self) -> ChainTip {
        self.tip.lock().expect("ledger tip lock").clone()
    }

    pub fn block(&self, number: u64) -> Result<Option<Block>, LedgerError> {
        Self::read(&*self.store, &self.channel, number)
    }

    /// A block's marshaled bytes, as stored (serving them needs no re-encoding).
    pub fn block_bytes(&self, number: u64) -> Result<Option<Bytes>, LedgerError> {
        self.store.get(number)
    }

    /// Appends the next block. This is the commit point: once it returns, the block and the Kafka
    /// offset in its ORDERER metadata are durable (with sync writes) and visible to readers.
    pub fn append(&self, block: &Block) -> Result<(), LedgerError> {
        let mut tip = self.tip.lock().expect("ledger tip lock");
        let header = block.header.as_ref().ok_or_else(|| LedgerError::Corrupt {
            channel: self.channel.clone(),
            number: tip.next_number,
            reason: "block to append has no header".into(),
        })?;
        if header.number != tip.next_number {
            return Err(LedgerError::OutOfOrder {
                channel: self.channel.clone(),
                expected: tip.next_number,
                got: header.number,
            });
        }
        if header.previous_hash != tip.previous_hash {
            return Err(LedgerError::BrokenLink { channel: self.channel.clone(), number: header.number });
        }
        let kafka = kafka_metadata(block).ok_or_else(|| LedgerError::Corrupt {
            channel: self.channel.clone(),
            number: header.number,
            reason: "block to append has no ORDERER (Kafka) metadata".into(),
        })?;
        self.store.append(header.number, &block.encode_to_vec())?;
        *tip = ChainTip {
            next_number: header.number + 1,
            previous_hash: header_hash(header).into(),
            kafka,
            last_config: last_config(block).unwrap_or(tip.last_config),
        };
        self.height.send_replace(tip.next_number);
        Ok(())
    }
}

/// Reads the channel configuration out of a genesis block.
pub fn genesis_config(genesis: &Block) -> Result<ChannelConfig, String> {
    let data = genesis.data.as_ref().and_then(|d| d.data.first()).ok_or("genesis block has no data")?;
    let env = Envelope::decode(data.clone()).map_err(|e| format!("genesis envelope: {e}"))?;
    let payload = Payload::decode(env.payload).map_err(|e| format!("genesis payload: {e}"))?;
    ChannelConfig::decode(payload.data).map_err(|e| format!("genesis channel config: {e}"))
}

#[cfg(test)]
mod tests;
