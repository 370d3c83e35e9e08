//! The Warren network node: wire format, the sans-IO routing core and the simulator.

pub mod routing;
pub mod sim;
pub mod wire;
