//! Where workers run. [`local`] starts them as processes on this machine (for the daemon and
//! for `thaw train`) and records how they ended; [`slurm`] submits them as Slurm jobs, watches
//! the jobs and cancels them.

pub mod local;
pub mod slurm;
