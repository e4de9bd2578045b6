//! thaw: fine-tune neural networks from pretrained weights, from a terminal.

pub mod cli;
pub mod client;
pub mod compare;
pub mod daemon;
pub mod engine;
pub mod executor;
pub mod gpu;
pub mod log;
pub mod number;
pub mod paths;
pub mod protocol;
pub mod run;
pub mod series;
pub mod session;
pub mod signals;
pub mod train;
pub mod tui;
pub mod worker;
