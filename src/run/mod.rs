//! The run directory, the contract between a worker and whoever watches it (the daemon, `thaw
//! train`, the offline CLI, `thaw compare`): every file's name, its reading and its writing,
//! the locks, what `/proc` says of a worker, and the catalog of sessions and runs on disk.
//!
//! - `desired.json`, written (atomically) by the daemon: what the user asked for.
//! - `state.json`, written (atomically) by the worker: status, step, epoch, frozen groups, pid.
//! - `metrics.csv` and `events.jsonl`, appended by the worker.
//! - `checkpoints/`, `best.bpk`, `classes.json`, `transfer.json`, `nan.json`, by the worker.
//! - `worker.lock`, `train.lock`, `worker.log`, and a Slurm run's `slurm.sh`, `slurm.json` and
//!   `slurm-JOB.log`.
//!
//! Nothing here knows of burn, sockets or terminals.

pub mod catalog;
pub mod checkpoints;
pub mod desired;
pub mod dir;
pub mod event;
pub mod follow;
pub mod lock;
pub mod metrics;
pub mod nan;
pub mod process;
pub mod state;
pub mod status;

pub use catalog::Catalog;
pub use desired::{Desired, DesiredRead};
pub use dir::{RunDir, class_names_near, now, write_atomic};
pub use event::{Event, EventKind};
pub use metrics::{GradNorm, MetricRow, MetricsLayout, Split};
pub use nan::NanRecord;
pub use process::hostname;
pub use state::{RunState, epoch_said};
pub use status::RunStatus;
