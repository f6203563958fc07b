//! The supervisor: opens each configured channel's ledger, starts its ChannelActor on its own
//! arbiter under actix's `Supervisor` (which restarts an actor that stops), and keeps the
//! registry HTTP reads from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix::{Addr, Arbiter};
use rdkafka::producer::FutureProducer;

use super::channel::{ChannelActor, ChannelStatus};
use crate::config::{ChannelSettings, KafkaConfig};
use crate::core::access::Access;
use crate::identity::SigningIdentity;
use crate::ledger::{Ledger, Store};
use crate::proto::osn::ChannelConfig;
use crate::proto::BatchSize;

/// Everything the HTTP layer needs about one channel.
#[derive(Clone)]
pub struct ChannelHandle {
    pub name: String,
    pub addr: Addr<ChannelActor>,
    pub ledger: Arc<Ledger>,
    pub status: Arc<ChannelStatus>,
    pub settings: ChannelSettings,
}

impl ChannelHandle {
    /// The batch size the chain is cut by (from the genesis block).
    pub fn batch_size(&self) -> BatchSize {
        self.ledger.config().batch_size.unwrap_or_else(|| self.settings.batch_size.into())
    }
}

/// What a channel is started with: its node-local settings and the consensus configuration a
/// new channel's genesis block records (an existing channel keeps its genesis block's).
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub settings: ChannelSettings,
    pub genesis: ChannelConfig,
}

/// The registry of running channels.
pub struct Channels {
    channels: BTreeMap<String, ChannelHandle>,
    arbiters: Mutex<Vec<Arbiter>>,
}

impl Channels {
    /// Opens every channel's ledger and starts its actor. `time_window` is how far (seconds) a
    /// request's timestamp may be from this OSN's clock. `signer` is this OSN's identity, which
    /// signs every block it writes (a new channel's genesis block included); there must be one
    /// when there are channels.
    pub fn start(
        specs: &[ChannelSpec],
        time_window: i64,
        kafka: &KafkaConfig,
        producer: &FutureProducer,
        store: &dyn Store,
        signer: Option<Arc<SigningIdentity>>,
    ) -> anyhow::Result<Self> {
        let mut channels = BTreeMap::new();
        let mut arbiters = Vec::new();
        for ChannelSpec { settings: s, genesis: config } in specs {
            let Some(signer) = signer.clone() else {
                anyhow::bail!("channel '{}': no identity to sign its blocks with (set identity.dir)", s.name);
            };
            let ledger = Arc::new(Ledger::open(&s.name, store.channel(&s.name)?, config, Some(&signer))?);
            if ledger.config() != config {
                tracing::warn!(
                    channel = %s.name,
                    "the configured batch size, organisations or policies differ from the channel's genesis block; the genesis block's apply"
                );
            }
            let access = Access::new(ledger.config(), time_window)
                .map_err(|e| anyhow::anyhow!("channel '{}': its genesis configuration is unusable: {e}", s.name))?;
            let status = Arc::new(ChannelStatus::default());
            status.set_access(access);
            let arbiter = Arbiter::new();
            let addr = {
                let (s, kafka, producer, ledger, status) =
                    (s.clone(), kafka.clone(), producer.clone(), ledger.clone(), status.clone());
                actix::Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                    ChannelActor::new(s, kafka, producer, ledger, status, signer)
                })
            };
            tracing::info!(channel = %s.name, height = ledger.height(), "channel started");
            channels.insert(
                s.name.clone(),
                ChannelHandle { name: s.name.clone(), addr, ledger, status, settings: s.clone() },
            );
            arbiters.push(arbiter);
        }
        Ok(Channels { channels, arbiters: Mutex::new(arbiters) })
    }

    pub fn get(&self, name: &str) -> Option<&ChannelHandle> {
        self.channels.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ChannelHandle> {
        self.channels.values()
    }

    /// Stops every channel actor's arbiter and waits until their threads are gone, so that the
    /// actors, their consumers and their ledger handles are dropped when this returns. Actors do
    /// not restart after this. Blocking: call it off the async threads.
    pub fn stop_and_join(&self) {
        let arbiters = std::mem::take(&mut *self.arbiters.lock().expect("arbiters lock"));
        for a in &arbiters {
            a.stop();
        }
        for a in arbiters {
            let _ = a.join();
        }
    }
}
