//! lightsnn host library: data loaders, the Candle supernet, the SAHD search, training and export.
#![deny(missing_docs)]

pub mod export;
