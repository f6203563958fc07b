//! The supervisor: opens each channel's ledger and starts its ChannelActor under actix's
//! `Supervisor` (which restarts an actor that stops) on one of a fixed pool of arbiters (threads:
//! `[actors] threads`, one per core by default; a channel goes to the one running the fewest),
//! and records them in the registry front ends read ([`Channels`]; the factory, [`Starter`], and
//! the registry are separate types). A panic in a channel actor's handling drops the actor
//! instead of stopping it; the supervisor then marks the channel ERRORED, reloads its ledger from
//! the store and starts a new actor on the same arbiter, counted as a restart. Channels are the
//! system channel (from its genesis block) and the channels created through it, as in Fabric:
//! those found in its ledger at start, and those its actor creates while it consumes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::kafka::{self, Producer};
use actix::{Addr, Arbiter, ArbiterHandle};
use bytes::Bytes;

use super::channel::{capture_panics, ChannelActor, ChannelCreator, ChannelStatus, OnPanic, Phase, Role};
use crate::config::{ChannelSettings, KafkaConfig, SystemConfig};
use crate::core::block::genesis_block_of;
use crate::core::channelconfig::Bundle;
use crate::identity::SigningIdentity;
use crate::ledger::{created_channels, Ledger, Store};
use crate::proto::{BatchSize, Block};

/// Everything the HTTP layer needs about one channel.
#[derive(Clone)]
pub struct ChannelHandle {
    pub name: String,
    pub addr: Addr<ChannelActor>,
    pub ledger: Arc<Ledger>,
    pub status: Arc<ChannelStatus>,
    pub settings: ChannelSettings,
    /// Whether this is the system channel.
    pub system: bool,
}

impl ChannelHandle {
    /// The batch size the chain is cut by (of the configuration in force).
    pub fn batch_size(&self) -> BatchSize {
        self.ledger.config().values.batch_size
    }

    /// The batch timeout of the configuration in force.
    pub fn batch_timeout(&self) -> std::time::Duration {
        self.ledger.config().values.batch_timeout
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Bundle> {
        self.ledger.config()
    }
}

/// The system channel: its name, its genesis block (used when its ledger is new; an existing
/// ledger keeps its own chain, which must start with the same block), and this OSN's settings for
/// it and the channels created through it.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    pub name: String,
    pub genesis: Block,
    pub config: SystemConfig,
}

/// The actor factory: opens channels' ledgers and starts their actors on the arbiter pool, at
/// start and later (the system channel's actor creates channels with it, as its
/// [`ChannelCreator`]), and again after a panic; records each in the [`Registry`].
pub struct Starter {
    /// Itself, for the actors it starts (the system channel's role, a panic's report).
    me: Weak<Starter>,
    kafka: kafka::Clients,
    store: Arc<dyn Store>,
    /// This OSN's identity, which signs every block it writes.
    signer: Arc<SigningIdentity>,
    time_window: i64,
    /// Check every stored block of a channel before starting it (`ledger.check-on-start`).
    check_ledgers: bool,
    system: SystemConfig,
    /// Where the channels it starts are recorded.
    registry: Arc<Registry>,
    /// The arbiters channel actors run on, each with how many channels it runs; at most `threads`.
    arbiters: Mutex<Vec<(Arbiter, usize)>>,
    threads: usize,
    /// The arbiter each channel's actor runs on (a restarted actor runs there again).
    homes: Mutex<BTreeMap<String, ArbiterHandle>>,
    /// Set when the OSN shuts down: no channel starts after that.
    stopped: AtomicBool,
}

/// The running channels, which front ends read (through [`Channels`]) and the [`Starter`]
/// records what it starts in: separate from the starting itself.
#[derive(Default)]
struct Registry {
    channels: RwLock<BTreeMap<String, ChannelHandle>>,
    /// The channels the system channel created (so far as this OSN has consumed it).
    created: Mutex<std::collections::BTreeSet<String>>,
    /// The system channel's name.
    system: String,
}

impl Registry {
    fn get(&self, name: &str) -> Option<ChannelHandle> {
        self.channels.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn insert(&self, handle: ChannelHandle) {
        self.channels.write().unwrap_or_else(|e| e.into_inner()).insert(handle.name.clone(), handle);
    }
}

impl Starter {
    fn start(&self, settings: ChannelSettings, genesis: &Block, system: bool) -> anyhow::Result<ChannelHandle> {
        let name = settings.name.clone();
        anyhow::ensure!(!self.stopped.load(Ordering::SeqCst), "channel '{name}': the OSN is shutting down");
        let signer = self.signer.clone();
        let ledger = Arc::new(Ledger::open(&name, self.store.channel(&name)?, genesis)?);
        if system {
            let stored = ledger.block(0)?;
            anyhow::ensure!(
                stored.as_ref() == Some(genesis),
                "channel '{name}': the ledger's block 0 is not the genesis block of [system] genesis-file: this ledger belongs to another network (or was written by an OSN before Fabric's configuration, which is not migrated)"
            );
        }
        if self.check_ledgers {
            let started = std::time::Instant::now();
            let blocks = ledger.check_stored()?;
            tracing::info!(channel = %name, blocks, took_ms = started.elapsed().as_millis() as u64, "ledger checked");
        }
        let status = Arc::new(ChannelStatus::new(&name));
        let home = self.home();
        self.homes.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone(), home.clone());
        let addr = self.launch(&settings, &ledger, &status, system, &home, signer);
        let handle = ChannelHandle { name: name.clone(), addr, ledger, status, settings, system };
        tracing::info!(channel = %name, height = handle.ledger.height(), system, "channel started");
        self.registry.insert(handle.clone());
        Ok(handle)
    }

    /// The arbiter a new channel's actor runs on: a new one while the pool is not full, else the
    /// one running the fewest channels.
    fn home(&self) -> ArbiterHandle {
        let mut arbiters = self.arbiters.lock().unwrap_or_else(|e| e.into_inner());
        if arbiters.len() < self.threads {
            arbiters.push((Arbiter::new(), 0));
        }
        let (arbiter, channels) = arbiters.iter_mut().min_by_key(|(_, n)| *n).expect("at least one arbiter");
        *channels += 1;
        arbiter.handle()
    }

    /// Starts a channel's actor on `home` under actix's `Supervisor`.
    fn launch(
        &self,
        settings: &ChannelSettings,
        ledger: &Arc<Ledger>,
        status: &Arc<ChannelStatus>,
        system: bool,
        home: &ArbiterHandle,
        signer: Arc<SigningIdentity>,
    ) -> Addr<ChannelActor> {
        let (settings, kafka) = (settings.clone(), self.kafka.clone());
        let (ledger, status, time_window) = (ledger.clone(), status.clone(), self.time_window);
        let role = match self.me.upgrade() {
            Some(me) if system => Role::System(me),
            _ => Role::Application,
        };
        let on_panic = self.on_panic(&settings.name);
        actix::Supervisor::start_in_arbiter(home, move |_| {
            ChannelActor::new(settings, kafka, ledger, status, signer, time_window, role.clone(), on_panic)
        })
    }

    /// What a channel's actor calls when a panic drops it: see [`Starter::after_panic`].
    fn on_panic(&self, name: &str) -> OnPanic {
        let (starter, name) = (self.me.clone(), name.to_owned());
        Arc::new(move |message: String| {
            if let Some(starter) = starter.upgrade() {
                starter.after_panic(&name, &message);
            }
        })
    }

    /// A panic dropped the channel's actor: the channel is ERRORED (never left READY with no
    /// actor behind it), its ledger is read again from the store (the panic may have come between
    /// a block's write and the tip's update), and a new actor starts on the same arbiter, where it
    /// resumes from the ledger after the restart back-off; counted in `osn_channel_restarts`.
    fn after_panic(&self, name: &str, message: &str) {
        let Some(mut handle) = self.get(name) else { return };
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let restarts = handle.status.note_restart();
        tracing::error!(channel = %name, restarts, panic = %message, "the channel's actor panicked; restarting it from its ledger");
        handle
            .status
            .set(Phase::Errored, format!("the channel's actor panicked ({message}); restarting it from its ledger"));
        if let Err(e) = handle.ledger.reload() {
            tracing::error!(channel = %name, error = %e, "the ledger cannot be read again after the panic; the channel stays errored");
            handle.status.set(
                Phase::Errored,
                format!("the channel's actor panicked ({message}) and its ledger cannot be read again: {e}"),
            );
            return;
        }
        let home = self.homes.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
        let Some(home) = home else { return };
        let signer = self.signer.clone();
        handle.addr = self.launch(&handle.settings, &handle.ledger, &handle.status, handle.system, &home, signer);
        self.registry.insert(handle);
    }

    fn get(&self, name: &str) -> Option<ChannelHandle> {
        self.registry.get(name)
    }
}

impl ChannelCreator for Starter {
    /// The channel limit and the system channel's creations are checked by the system channel's
    /// chain; this opens the ledger of a channel it created (writing the genesis block if new)
    /// and starts its actor. A channel already running is left alone: true if it was started.
    fn create(&self, name: &str, genesis_envelope: Bytes) -> anyhow::Result<bool> {
        let system = &self.system;
        self.registry.created.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned());
        if let Some(existing) = self.get(name) {
            let genesis = existing.ledger.block(0)?.and_then(|b| b.data).and_then(|d| d.data.first().cloned());
            if genesis.as_ref() != Some(&genesis_envelope) {
                tracing::error!(channel = %name, "the system channel created a channel this OSN already has with another genesis block; keeping this OSN's");
            }
            return Ok(false);
        }
        self.start(system.settings(name), &genesis_block_of(genesis_envelope), false)?;
        Ok(true)
    }
}

/// The running channels, as front ends see them, and the OSN's handle on their actors.
pub struct Channels {
    registry: Arc<Registry>,
    starter: Arc<Starter>,
}

impl Channels {
    /// Opens the system channel's ledger, starts it and every channel created through it.
    /// `time_window` is how far (seconds) a request's timestamp may be from this OSN's clock.
    /// `signer` is this OSN's identity, which signs every block it writes. With
    /// `check_ledgers`, every stored block of a channel is checked before it starts
    /// (`ledger.check-on-start`).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        system: SystemSpec,
        time_window: i64,
        kafka: &KafkaConfig,
        producer: &Producer,
        store: Arc<dyn Store>,
        signer: Arc<SigningIdentity>,
        check_ledgers: bool,
        threads: usize,
    ) -> anyhow::Result<Self> {
        capture_panics();
        let hub = anyhow::Context::context(kafka::Hub::new(kafka), "cannot create the Kafka consumer")?;
        let registry = Arc::new(Registry { system: system.name.clone(), ..Default::default() });
        let starter = Arc::new_cyclic(|me| Starter {
            me: me.clone(),
            kafka: kafka::Clients { config: kafka.clone(), producer: producer.clone(), hub },
            store,
            signer,
            time_window,
            check_ledgers,
            system: system.config.clone(),
            registry: registry.clone(),
            arbiters: Mutex::default(),
            threads: threads.max(1),
            homes: Mutex::default(),
            stopped: AtomicBool::new(false),
        });
        let handle = starter.start(system.config.settings(&system.name), &system.genesis, true)?;
        for (name, genesis) in created_channels(&handle.ledger)? {
            starter.create(&name, genesis)?;
        }
        Ok(Channels { registry, starter })
    }

    pub fn get(&self, name: &str) -> Option<ChannelHandle> {
        self.registry.get(name)
    }

    /// The running channels, by name.
    pub fn iter(&self) -> std::vec::IntoIter<ChannelHandle> {
        self.list().into_iter()
    }

    /// The running channels, by name.
    pub fn list(&self) -> Vec<ChannelHandle> {
        self.registry.channels.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// The running channels' names.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.registry.channels.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// How many channels the system channel created, as far as this OSN has consumed it.
    pub fn created_count(&self) -> usize {
        self.registry.created.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Why the ledger cannot write, from a failed write until it can again (`/healthz`'s `ledger`).
    pub fn storage_failure(&self) -> Option<String> {
        self.starter.store.failure()
    }

    /// The system channel (None only before it started).
    pub fn system(&self) -> Option<ChannelHandle> {
        self.get(&self.registry.system)
    }

    /// The system channel's name.
    pub fn system_name(&self) -> &str {
        &self.registry.system
    }

    /// Stops every channel actor's arbiter and waits until their threads are gone, so that the
    /// actors, their consumers and their ledger handles are dropped when this returns. Actors do
    /// not restart after this. Blocking: call it off the async threads.
    pub fn stop_and_join(&self) {
        self.starter.stopped.store(true, Ordering::SeqCst);
        let arbiters = std::mem::take(&mut *self.starter.arbiters.lock().unwrap_or_else(|e| e.into_inner()));
        for (a, _) in &arbiters {
            a.stop();
        }
        for (a, _) in arbiters {
            let _ = a.join();
        }
    }
}
