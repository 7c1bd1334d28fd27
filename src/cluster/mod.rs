//! The cluster: hosts that share one datastore through etcd.

pub mod feed;
pub mod live;
pub mod status;
pub mod sync;
