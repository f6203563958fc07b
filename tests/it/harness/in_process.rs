//! Channels started in the test process (no `osn` process): for the supervisor and
//! multi-channel tests that reach into the actors and ledgers.

use super::*;

/// Starts channels of `settings` in this process (no system channel) on `store`, signed by OSN 0,
/// with their ledgers checked at start.
pub fn start_channels(
    settings: &[osn::config::ChannelSettings],
    kafka: &osn::config::KafkaConfig,
    store: std::sync::Arc<dyn osn::ledger::Store>,
) -> std::sync::Arc<osn::actors::Channels> {
    let producer = osn::kafka::producer(kafka).unwrap();
    let specs = channel_specs(settings);
    // Two threads: several channels share each (as on a machine with fewer cores than channels).
    let channels =
        osn::actors::Channels::start(&specs, None, 900, kafka, &producer, store, Some(osn_signer(0)), true, 2);
    std::sync::Arc::new(channels.unwrap())
}

/// In-process channels' start specs: Org1 as their organisation, OrdererMSP as the orderer's.
pub fn channel_specs(settings: &[osn::config::ChannelSettings]) -> Vec<osn::actors::ChannelSpec> {
    use osn::identity::load_org_msp;
    use osn::proto::osn::Organization;
    let org1: Organization = load_org_msp(&crypto().org1.join("msp")).unwrap().into();
    let orderer: Organization = load_org_msp(&crypto().osn_identity(0)).unwrap().into();
    let orgs = std::collections::BTreeMap::from([(org1.msp_id.clone(), org1)]);
    settings
        .iter()
        .map(|s| osn::actors::ChannelSpec {
            settings: s.clone(),
            genesis: osn::core::block::genesis_block(
                &s.name,
                &osn::config::channel_config(s, &orgs, Some(&orderer)).unwrap(),
            ),
        })
        .collect()
}

/// The signing identity of orderer `osn{n}`, for in-process channels.
pub fn osn_signer(n: usize) -> std::sync::Arc<SigningIdentity> {
    std::sync::Arc::new(SigningIdentity::load(&crypto().osn_identity(n)).unwrap())
}

/// Broadcasts through a channel actor directly (in-process tests), waiting out a channel that
/// says it is not ready (starting or restarting); panics on any other failure.
pub async fn broadcast_via_actor(ch: &osn::actors::ChannelHandle, env: &Envelope) {
    use osn::actors::{BroadcastBatch, BroadcastError};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let msg = BroadcastBatch {
            slot: osn::actors::MailboxSlot::new(&ch.status),
            envelopes: vec![env.encode_to_vec().into()],
            config_seq: 0,
            deadline: std::time::Instant::now() + Duration::from_secs(5),
        };
        let outcome = match ch.addr.send(msg).await.map(|mut answers| answers.pop()) {
            Ok(Some(Ok(enqueued))) => enqueued.acknowledged().await.map(|_| ()),
            Ok(Some(Err(e))) => Err(e),
            Ok(None) => panic!("no answer from {}", ch.name),
            Err(e) => panic!("mailbox of {}: {e}", ch.name),
        };
        match outcome {
            Ok(()) => return,
            Err(BroadcastError::NotReady { .. }) => {
                assert!(Instant::now() < deadline, "channel {} never became ready", ch.name);
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("broadcast failed: {e}"),
        }
    }
}

/// Every block of an in-process channel's ledger.
pub fn ledger_chain(ch: &osn::actors::ChannelHandle) -> Vec<Block> {
    (0..ch.ledger.height()).map(|n| ch.ledger.block(n).unwrap().unwrap()).collect()
}
