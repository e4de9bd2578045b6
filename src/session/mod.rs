//! Session files (the spec of a set of runs) and where sessions live on disk.

pub mod executor;
pub mod info;
pub mod rules;
pub mod spec;
pub mod store;

pub use crate::engine::config::{GradualUnfreeze, LrSchedule, OptimizerKind};
pub use spec::{RunSpec, SessionError, SessionSpec};
