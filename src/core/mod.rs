//! The sans-IO core: everything that decides what goes into a block, and nothing that touches a
//! socket, a disk or a clock. Time is passed in as an `Instant`; bytes come in as `Bytes`.
//!
//! - [`cutter`]: Fabric's block cutter (batch size rules).
//! - [`brokercheck`]: the Kafka cluster's settings held to Fabric's guide.
//! - [`canonical`]: an envelope's bytes as Go re-marshals them (what Fabric's orderer puts in a block).
//! - [`block`]: block assembly, header and data hashes, metadata slots.
//! - [`ttc`]: time-to-cut timer bookkeeping (when to *propose* a cut).
//! - [`config`]: channel configurations: validity, updates, new channels, update signers.
//! - [`configtree`]: Fabric's configuration tree (`common.Config`), typed and byte-exact.
//! - [`configedit`]: edits of a configuration tree (values, organisations) before an update.
//! - [`configtx`]: Fabric's config update rules (read/write sets, mod_policies) and channel template.
//! - [`fabric_policy`]: Fabric's MSPs (NodeOUs, admins) and signature / implicit-meta policies.
//! - [`channelconfig`]: a Fabric configuration's ordering values, with Fabric 1.4's validation.
//! - [`genesis`]: configtxgen's Kafka system channel configuration and genesis block.
//! - [`chain`]: the per-channel state machine that turns consumed Kafka messages into blocks.
//! - [`envelope`]: structural validation of broadcast envelopes.
//! - [`link`]: a channel's link to Kafka (trouble, probe, stall, fatal) as a state machine.
//! - [`retry`]: the short/long retry schedule for Kafka trouble.
//! - [`seek`]: resolution of a Deliver `SeekInfo` against a ledger height.
//! - [`ecdsa`]: ECDSA P-256 signatures in DER and the low-S rule.
//! - [`msp`]: organisations, identities, certificate chains and signature verification.
//! - [`policy`]: Writers / Readers / Admins rules.
//! - [`policydsl`]: Fabric's policy language (`OR('Org1MSP.admin')`, `MAJORITY Admins`), compiled as Fabric does.
//! - [`access`]: a channel's access checks of signed requests, in Fabric's order.
//! - [`verify_chain`]: checking a chain of blocks: links, data hashes and orderer signatures.
//! - [`peer_verify`]: a channel's blocks checked as a Fabric peer checks them (BlockValidation, well-formed transactions).

pub mod access;
pub mod admission;
pub mod block;
pub mod brokercheck;
pub mod canonical;
pub mod chain;
pub mod channelconfig;
pub mod config;
pub mod configedit;
pub mod configtree;
pub mod configtx;
pub mod cutter;
pub mod ecdsa;
pub mod envelope;
pub mod fabric_policy;
pub mod genesis;
pub mod link;
pub mod msp;
pub mod p256;
pub mod peer_verify;
pub mod policy;
pub mod policydsl;
pub mod retry;
pub mod seek;
#[cfg(test)]
pub mod testkit;
pub mod ttc;
pub mod verify_chain;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod sim_tests;

/// Which of `shards` (at least 1) a channel belongs to: FNV-1a of its name, so that it is the
/// same in every run and every process (the hub's consumers, the ledger writers).
pub fn shard_of(channel: &str, shards: usize) -> usize {
    let hash = channel.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod shard_tests {
    #[test]
    fn a_channel_is_always_in_the_same_shard_and_names_spread() {
        assert_eq!(super::shard_of("devchannel", 4), super::shard_of("devchannel", 4));
        assert_eq!(super::shard_of("anything", 1), 0);
        assert_eq!(super::shard_of("anything", 0), 0);
        let used: std::collections::HashSet<usize> = (0..64).map(|i| super::shard_of(&format!("ch{i}"), 4)).collect();
        assert_eq!(used.len(), 4);
    }
}
