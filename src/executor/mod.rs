//! Where workers run. Local workers are child processes of the daemon (`daemon::workers`);
//! [`slurm`] submits them as Slurm jobs, watches the jobs and cancels them.

pub mod slurm;
