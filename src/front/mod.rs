//! A module: the HTTPS front: routes and haproxy's configuration, its guard (`haproxy -c`),
//! changes made live through haproxy's runtime API, certificates from the internal issuer and
//! from ACME.

pub mod acme;
pub mod certs;
pub mod guard;
pub mod haproxy;
pub mod live;
pub mod routes;
pub mod runtime;
