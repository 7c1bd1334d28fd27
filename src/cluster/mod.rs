//! The cluster: hosts that share one datastore through etcd, one trust root and one mesh.
//!
//! Nothing here runs on a single host: a cluster of one keeps the local JSON datastore alone.

pub mod member;
pub mod pki;
