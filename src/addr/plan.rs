//! The cluster-wide address plan (one class-A network, 10.0.0.0/8).
//!
//! | range | use |
//! |---|---|
//! | 10.0.0.0 – 10.14.255.255 | reserved: external networks, VPNs outside srvctl |
//! | 10.15.X.Y | host-to-host mesh (X serving host, Y client host) |
//! | 10.(16·H + R).U.0/24 | one bridge per (host H, reseller R, user U) |
//!
//! On a bridge: .0 network, .1 host address (the containers' gateway), .2–.252 containers,
//! .253–.254 the user's VPN clients, .255 broadcast.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Why a plan index was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} is out of range ({min}..={max})")]
pub struct RangeError {
    what: &'static str,
    value: u32,
    min: u32,
    max: u32,
}

macro_rules! plan_index {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $name(u8);

        impl $name {
            /// Smallest valid value.
            pub const MIN: u8 = $min;
            /// Largest valid value.
            pub const MAX: u8 = $max;

            /// Build the index, checking its range.
            pub fn new(value: u32) -> Result<Self, RangeError> {
                if (u32::from(Self::MIN)..=u32::from(Self::MAX)).contains(&value) {
                    Ok(Self(value as u8))
                } else {
                    Err(RangeError { what: $what, value, min: Self::MIN.into(), max: Self::MAX.into() })
                }
            }

            /// The numeric value.
            pub fn get(self) -> u8 {
                self.0
            }

            /// Every valid value, in ascending order.
            pub fn all() -> impl Iterator<Item = Self> {
                (Self::MIN..=Self::MAX).map(Self)
            }
        }

        impl TryFrom<u32> for $name {
            type Error = RangeError;
            fn try_from(v: u32) -> Result<Self, RangeError> {
                Self::new(v)
            }
        }

        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.0.into()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

plan_index!(
    /// H: a host's number in its cluster, 1..=15.
    HostNet, "hostnet", 1, 15
);
plan_index!(
    /// R: a reseller id, 0..=15; 0 is the operator.
    ResellerId, "reseller id", 0, 15
);
plan_index!(
    /// U: a user's index inside its reseller, 0..=254; 0 is the reseller's own account.
    UserIndex, "user index", 0, 254
);
plan_index!(
    /// c: a container's number on its user's bridge, 2..=252.
    ContainerNumber, "container number", 2, 252
);

impl ResellerId {
    /// The operator (root), reseller 0.
    pub const OPERATOR: Self = Self(0);
    /// Ids that `add-reseller` hands out: 1..=15.
    pub fn assignable() -> impl Iterator<Item = Self> {
        Self::all().filter(|r| *r != Self::OPERATOR)
    }
}

impl UserIndex {
    /// The reseller's own account, index 0.
    pub const OWN: Self = Self(0);
    /// Indexes that `add-user` hands out: 1..=254.
    pub fn assignable() -> impl Iterator<Item = Self> {
        Self::all().filter(|u| *u != Self::OWN)
    }
}

/// First octet of every srvctl address.
const CLASS_A: u8 = 10;
/// Second octet of the host mesh.
const MESH_OCTET: u8 = 15;
/// First UID/GID of srvctl accounts; the plan derives an account's id from (R, U) once.
pub const ACCOUNT_ID_BASE: u32 = 20000;
/// Every UID/GID a srvctl account may hold: above the system's ids (0–999, so never root),
/// below the ids of dynamic and container users (60000 and up). New accounts get ids from
/// [`ACCOUNT_ID_BASE`]; accounts imported from srvctl 3 keep theirs when inside this range.
pub const ACCOUNT_IDS: std::ops::Range<u32> = 1000..60_000;

/// One user's bridge on one host: 10.(16·H + R).U.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bridge {
    /// The host.
    pub host: HostNet,
    /// The reseller.
    pub reseller: ResellerId,
    /// The user inside the reseller.
    pub user: UserIndex,
}

impl Bridge {
    fn second_octet(&self) -> u8 {
        16 * self.host.get() + self.reseller.get()
    }

    /// The network address, 10.(16·H + R).U.0.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::new(CLASS_A, self.second_octet(), self.user.get(), 0)
    }

    /// Prefix length of every bridge network.
    pub const PREFIX: u8 = 24;

    /// The host side of the bridge and the containers' gateway, .1.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(CLASS_A, self.second_octet(), self.user.get(), 1)
    }

    /// The address of container number `c` on this bridge.
    pub fn container_address(&self, c: ContainerNumber) -> Ipv4Addr {
        Ipv4Addr::new(CLASS_A, self.second_octet(), self.user.get(), c.get())
    }

    /// The two addresses for the user's VPN clients, .253 and .254.
    pub fn vpn_client_addresses(&self) -> [Ipv4Addr; 2] {
        [253, 254].map(|d| Ipv4Addr::new(CLASS_A, self.second_octet(), self.user.get(), d))
    }

    /// The bridge's interface name, `sc-br-<16H+R>-<U>`: at most 13 characters.
    pub fn interface(&self) -> String {
        format!("sc-br-{}-{}", self.second_octet(), self.user)
    }

    /// Find the bridge and number that an address belongs to, if it is a container address.
    pub fn of_container_address(ip: Ipv4Addr) -> Option<(Bridge, ContainerNumber)> {
        let [a, b, u, c] = ip.octets();
        if a != CLASS_A || b < 16 {
            return None;
        }
        let bridge = Bridge {
            host: HostNet::new(u32::from(b / 16)).ok()?,
            reseller: ResellerId::new(u32::from(b % 16)).ok()?,
            user: UserIndex::new(u.into()).ok()?,
        };
        Some((bridge, ContainerNumber::new(c.into()).ok()?))
    }
}

/// Address of host `client` on the mesh tunnel served by host `server`: 10.15.X.Y. A server's
/// own interface has X = Y.
pub fn mesh_address(server: HostNet, client: HostNet) -> Ipv4Addr {
    Ipv4Addr::new(CLASS_A, MESH_OCTET, server.get(), client.get())
}

/// The network of every container of host `host` (its bridges, their containers and VPN
/// clients): 10.(16·H).0.0/[`HOST_CONTAINERS_PREFIX`].
pub fn host_containers(host: HostNet) -> Ipv4Addr {
    Ipv4Addr::new(CLASS_A, 16 * host.get(), 0, 0)
}

/// The prefix length of [`host_containers`].
pub const HOST_CONTAINERS_PREFIX: u8 = 12;

/// The addresses of the cluster, first and last: the host mesh (10.15.0.0/16) and the
/// containers of every host (10.16.0.0 – 10.255.255.255). Everything else, the reserved
/// 10.0–10.14 included, is outside the cluster.
pub const CLUSTER_ADDRESSES: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(CLASS_A, MESH_OCTET, 0, 0),
    Ipv4Addr::new(CLASS_A, 255, 255, 255),
);

/// Whether an address lies in a range that srvctl never hands to a container: outside 10/8,
/// 10.0–10.14 (external networks), 10.15 (host mesh).
pub fn is_reserved(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    a != CLASS_A || b <= MESH_OCTET
}

/// The UID (and GID) of account (R, U), the same on every host of the cluster.
pub fn account_id(reseller: ResellerId, user: UserIndex) -> u32 {
    ACCOUNT_ID_BASE + 256 * u32::from(reseller.get()) + u32::from(user.get())
}

/// How many of each thing the plan holds.
pub mod capacity {
    /// Hosts in a cluster.
    pub const HOSTS: usize = 15;
    /// Resellers besides the operator.
    pub const RESELLERS: usize = 15;
    /// Users per reseller besides the reseller's own account.
    pub const USERS_PER_RESELLER: usize = 254;
    /// Containers per user per host.
    pub const CONTAINERS_PER_BRIDGE: usize = 251;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn bridge(h: u32, r: u32, u: u32) -> Bridge {
        Bridge {
            host: HostNet::new(h).unwrap(),
            reseller: ResellerId::new(r).unwrap(),
            user: UserIndex::new(u).unwrap(),
        }
    }

    fn c(n: u32) -> ContainerNumber {
        ContainerNumber::new(n).unwrap()
    }

    #[test]
    fn worked_examples_of_the_design() {
        assert_eq!(
            bridge(1, 0, 0).container_address(c(2)).to_string(),
            "10.16.0.2"
        );
        assert_eq!(bridge(1, 0, 0).gateway().to_string(), "10.16.0.1");
        assert_eq!(
            bridge(1, 1, 1).container_address(c(2)).to_string(),
            "10.17.1.2"
        );
        assert_eq!(
            bridge(15, 15, 254).container_address(c(2)).to_string(),
            "10.255.254.2"
        );
        assert_eq!(
            mesh_address(HostNet::new(3).unwrap(), HostNet::new(5).unwrap()).to_string(),
            "10.15.3.5"
        );
    }

    #[test]
    fn ranges_are_checked() {
        assert!(HostNet::new(0).is_err());
        assert!(HostNet::new(16).is_err());
        assert!(ContainerNumber::new(1).is_err());
        assert!(ContainerNumber::new(253).is_err());
        assert!(UserIndex::new(255).is_err());
        assert_eq!(ResellerId::assignable().count(), capacity::RESELLERS);
        assert_eq!(
            UserIndex::assignable().count(),
            capacity::USERS_PER_RESELLER
        );
        assert_eq!(
            ContainerNumber::all().count(),
            capacity::CONTAINERS_PER_BRIDGE
        );
        assert_eq!(HostNet::all().count(), capacity::HOSTS);
    }

    #[test]
    fn all_interface_names_are_unique_and_short() {
        let mut seen = HashSet::new();
        for h in HostNet::all() {
            for r in ResellerId::all() {
                for u in UserIndex::all() {
                    let b = Bridge {
                        host: h,
                        reseller: r,
                        user: u,
                    };
                    let name = b.interface();
                    assert!(name.len() <= 15, "{name}");
                    assert!(seen.insert(name));
                }
            }
        }
    }

    fn any_slot() -> impl Strategy<Value = (Bridge, ContainerNumber)> {
        (1u32..=15, 0u32..=15, 0u32..=254, 2u32..=252)
            .prop_map(|(h, r, u, n)| (bridge(h, r, u), c(n)))
    }

    proptest! {
        #[test]
        fn addresses_lie_in_their_bridge_and_outside_reserved((b, n) in any_slot()) {
            let ip = b.container_address(n);
            prop_assert!(!is_reserved(ip));
            let net = u32::from(b.network());
            prop_assert_eq!(u32::from(ip) & 0xffff_ff00, net);
            prop_assert!(ip != b.gateway() && ip != b.network());
            prop_assert!(!b.vpn_client_addresses().contains(&ip));
            prop_assert_eq!(Bridge::of_container_address(ip), Some((b, n)));
        }

        #[test]
        fn distinct_slots_have_distinct_addresses(x in any_slot(), y in any_slot()) {
            prop_assume!(x != y);
            prop_assert_ne!(x.0.container_address(x.1), y.0.container_address(y.1));
        }

        #[test]
        fn account_ids_are_unique(r1 in 0u32..=15, u1 in 0u32..=254, r2 in 0u32..=15, u2 in 0u32..=254) {
            prop_assume!((r1, u1) != (r2, u2));
            let id = |r, u| account_id(ResellerId::new(r).unwrap(), UserIndex::new(u).unwrap());
            prop_assert_ne!(id(r1, u1), id(r2, u2));
        }
    }
}
