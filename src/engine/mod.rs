//! Training, with no knowledge of sockets or terminals.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod model;
pub mod precision;
pub mod schedule;
pub mod trainer;
pub mod weights;
