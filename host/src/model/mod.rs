//! The spiking network in Candle: LIF neurons, layers, the cell and the macro skeleton.

pub mod conv;
mod edge_weights;
pub mod layers;
pub mod lif;
pub mod mixing;
pub mod network;
pub mod observe;
pub mod params;
pub mod plain;

pub use layers::Mode;
pub use mixing::{EdgeMix, Mixing};
pub use network::{Forward, LayerId, Network, NoSink, Output, Probe, SpikeSink};
pub use observe::PackingSink;

#[cfg(test)]
mod tests;
