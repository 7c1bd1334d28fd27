//! srvctl: a container-farm manager for microsite hosting on systemd-nspawn.
//!
//! `sc` only validates and edits the datastore, then asks systemd to act; everything that
//! runs is expanded from the datastore by a generator and oneshot services. This library holds
//! every decision: names, the address plan, the datastore, the operations and their views.

pub mod acme;
pub mod apply;
pub mod audit;
pub mod certs;
pub mod changeset;
pub mod claims;
pub mod cli;
pub mod cluster;
pub mod config_file;
pub mod failure;
pub mod front;
pub mod generator;
pub mod image;
pub mod import_v3;
pub mod model;
pub mod names;
pub mod ops;
pub mod paths;
pub mod pki;
pub mod plan;
pub mod regenerate;
pub mod registry;
pub mod render;
pub mod rootfs;
pub mod settings;
pub mod site;
pub mod store;
pub mod system;
pub mod views;
pub mod web;
