//! The address plan: hosts, resellers, users, bridges and container numbers (pure).

pub mod plan;
