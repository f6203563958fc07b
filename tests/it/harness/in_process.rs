//! Channels started in the test process (no `osn` process): for the supervisor and
//! multi-channel tests that reach into the actors and ledgers.

use super::*;

/// Starts an OSN's channels in this process (no `osn` process, no HTTP) on `store`, signed by
/// OSN 0, with their ledgers checked at start: the system channel of a test network cutting by
/// `batch` every 50 ms, then each channel of `names` that the network does not have yet, created
/// through it as an admin of Org1 would (the service's creation path, its only member Org1).
pub async fn start_network(
    names: &[String],
    batch: osn::proto::BatchSize,
    kafka: &osn::config::KafkaConfig,
    store: std::sync::Arc<dyn osn::ledger::Store>,
) -> std::sync::Arc<osn::actors::Channels> {
    let producer = osn::kafka::producer(kafka).unwrap();
    let system = osn::actors::SystemSpec {
        name: SYSTEM_CHANNEL.into(),
        genesis: genesis_block(&kafka.brokers, batch, "50ms", 0),
        config: Default::default(),
    };
    // Two threads: several channels share each (as on a machine with fewer cores than channels).
    let channels = osn::actors::Channels::start(system, 900, kafka, &producer, store, osn_signer(0), true, 2);
    let channels = std::sync::Arc::new(channels.unwrap());
    let service = osn::service::Service {
        channels: channels.clone(),
        verifier: std::sync::Arc::new(osn::verify::Verifier::new(1).unwrap()),
        signer: Some(osn_signer(0)),
        enqueue_timeout: Duration::from_secs(5),
        kafka_settings: osn::kafka::settings::KafkaSettings::new(),
    };
    for name in names {
        if channels.get(name).is_some() {
            continue;
        }
        let create = osn::cli::channel::ChannelCreate {
            channel: name.clone(),
            organizations: vec!["Org1MSP".into()],
            consortium: CONSORTIUM.into(),
        };
        let envelope = osn::identity::envelope::config_update(&crypto().admin, &create.update(&crypto().admin), &[]);
        let request = osn::core::config::UpdateRequest::parse(&envelope).unwrap();
        // The system channel may still be starting: its creations wait until it is ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match service.create_channel(&request).await {
                Ok(_) => break,
                Err(e) if e.status() == osn::proto::Status::ServiceUnavailable && Instant::now() < deadline => {
                    actix_rt::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("creating {name}: {e}"),
            }
        }
    }
    channels
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
            // Checked under the configuration in force, as the service enqueues them.
            config_seq: ch.status.access().sequence(),
            deadline: std::time::Instant::now() + Duration::from_secs(5),
        };
        let outcome = match ch.addr.send(msg).await.map(|mut taken| (taken.answers.pop(), taken.rest.is_empty())) {
            Ok((Some(Ok(enqueued)), _)) => enqueued.acknowledged().await.map(|_| ()),
            Ok((Some(Err(e)), _)) => Err(e),
            // No room in the backlog bound yet.
            Ok((None, false)) => Err(BroadcastError::Behind { channel: ch.name.clone(), lag: 0, limit: 0 }),
            Ok((None, true)) => panic!("no answer from {}", ch.name),
            Err(e) => panic!("mailbox of {}: {e}", ch.name),
        };
        match outcome {
            Ok(()) => return,
            Err(BroadcastError::NotReady { .. } | BroadcastError::Behind { .. }) => {
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
