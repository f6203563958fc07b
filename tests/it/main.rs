//! Integration tests: real `osn` processes against a real Kafka-protocol broker (librdkafka's
//! mock cluster on loopback), checked the way a user would check them.

mod harness;

mod access;
mod bad_input;
mod broadcast_api;
mod channels;
mod cli;
mod deliver;
mod deliver_api;
mod fabric_network;
mod grpc;
mod https;
mod lifecycle;
mod operations;
mod operations_faults;
mod ordering;
mod replicas;
mod subscribers;
mod supervision;
mod ttc;

// The crash suite and broker outages under load, on the mock cluster and on an independent
// broker process (tansu, sqlite storage; scripts/install-tansu).
mod crash;

// `osn ledger verify` on a ledger written by the library (no broker).
mod ledger_verify;

// The API's OpenAPI document and page, against a running OSN.
mod openapi;

// The explorer in a real browser (Debian's chromium, headless, over the DevTools protocol).
mod explorer;

// The HTTP edge against its contract: schemathesis (PyPI; scripts/install-schemathesis).
mod contract;

// The code's shape: a sans-IO core, module headers.
mod tidy;
