//! A module: the containers' `.nspawn` files, bridges and host0 networks, their unit links and
//! drop-ins; root filesystems and the images they are cloned from.

pub mod boot;
pub mod image;
pub mod limits;
pub mod nat;
pub mod render;
pub mod rootfs;
pub mod units;
