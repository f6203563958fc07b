//! Integration tests: real `osn` processes against a real Kafka-protocol broker (librdkafka's
//! mock cluster on loopback), checked the way a user would check them.

mod harness;

mod bad_input;
mod channels;
mod cli;
mod deliver;
mod ordering;
mod replicas;
mod supervision;
mod ttc;

// The API's OpenAPI document and page, against a running OSN.
mod openapi;
