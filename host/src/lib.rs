//! lightsnn host library: data loaders, the Candle supernet, the SAHD search, training and export.
#![deny(missing_docs)]

pub mod config;
pub mod data;
pub mod export;
pub mod fsutil;
pub mod limits;
pub mod model;
pub mod nasbench;
pub mod plot;
pub mod progress;
pub mod search;
pub mod stats;
pub mod study;
pub mod train;
