//! srvctl: a container-farm manager for microsite hosting on systemd-nspawn.
//!
//! `sc` only validates and edits the datastore, then asks systemd to act; everything that
//! runs is expanded from the datastore by a generator and oneshot services. This library holds
//! every decision: names, the address plan, the datastore, the operations and their views.

pub mod access;
pub mod accounts;
pub mod addr;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod containers;
pub mod dns;
pub mod engine;
pub mod failure;
pub mod front;
pub mod gateway;
pub mod mail;
pub mod mesh;
pub mod model;
pub mod ops;
pub mod store;
pub mod system;
