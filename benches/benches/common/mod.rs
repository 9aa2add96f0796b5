//! What several benches share and the `bench` library cannot hold, because it
//! needs the broker (a dev-dependency: the ladder, the README's main command,
//! should not build the broker it does not run).

#![allow(dead_code)] // each bench uses its part

pub mod servers;
