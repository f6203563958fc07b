//! OSN: a Kafka-based ordering service node for permissioned blockchains.
//!
//! Data flows one way: [`http`] or [`grpc`] → [`service`] (validate, admit) → [`actors`] (enqueue) →
//! [`kafka`] → [`actors`] (consume, cut, build with [`core`]) → [`ledger`] → height watch →
//! [`http`] or [`grpc`] (deliver).
//! See ARCHITECTURE.md for the codemap and the invariants.

pub mod actors;
pub mod cli;
pub mod config;
pub mod core;
pub mod faults;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod kafka;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod proto;
pub mod service;
pub mod verify;
