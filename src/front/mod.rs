//! A module: the HTTPS front: routes and haproxy's configuration, its guard (`haproxy -c`),
//! certificates from the internal issuer and from ACME.

pub mod acme;
pub mod certs;
pub mod guard;
pub mod haproxy;
pub mod routes;
