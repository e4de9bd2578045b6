//! Session files (the spec of a set of runs) and where sessions live on disk.

pub mod executor;
pub mod spec;
pub mod store;

pub use spec::{GradualUnfreeze, LrSchedule, OptimizerKind, RunSpec, SessionError, SessionSpec};
