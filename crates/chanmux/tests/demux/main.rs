//! Demultiplexer behaviour through the in-process communicator.

#[path = "../support/mod.rs"]
mod support;

mod backpressure;
mod bad_input;
mod consumer_api;
mod exposure;
mod failures;
mod fidelity;
mod leaks;
mod lifecycle;
mod limits;
mod races;
mod reference;
mod subscriptions;
