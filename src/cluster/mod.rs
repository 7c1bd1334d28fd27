//! The cluster: hosts that share one datastore through etcd.

pub mod sync;
