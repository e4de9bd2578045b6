//! A real single-node Slurm cluster on loopback (slurmctld, slurmd, two fake GPUs), for the
//! tests of thaw's Slurm executor. See /work/shared/SLURM.md for how this setup was found.
//!
//! Slurm's ports are fixed (6817, 6818), so only one cluster can run on a machine at a time:
//! a `Slurm` holds an exclusive lock file for its whole life, which serializes the tests of
//! one binary (threads) and of several binaries (processes). Dropping it, also when a test
//! panics, cancels the jobs and stops both daemons; when a test fails it prints the tails of
//! the daemons' logs first, so the harness's own panic messages leave them out.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::daemon::kill;

/// Held for the life of a cluster; any process can take it, so it lives in /tmp.
const LOCK_PATH: &str = "/tmp/thaw-slurm-tests.lock";

/// Every cluster's directory starts with this, which is how stale daemons of a crashed test are
/// told apart from anyone else's Slurm.
const DIR_PREFIX: &str = "thaw-slurm-";

/// The binaries without which no cluster can start (the rest come in the same packages).
const REQUIRED: [&str; 4] = ["slurmctld", "slurmd", "sbatch", "munged"];

const INSTALL: &str =
    "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge";

/// The configuration that worked on Debian 12's Slurm 22.05; `{host}` is `hostname -s` (Slurm
/// insists the node name be this machine's) and `{dir}` the cluster's directory. `low` jobs are
/// requeued when a `high` job needs their cores; the short intervals and `cred_expire` make
/// scheduling and requeues quick enough for tests.
const CONF: &str = "\
ClusterName=ci
SlurmctldHost={host}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
AuthInfo=cred_expire=5
MinJobAge=600
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=low Nodes={host} PriorityTier=1 GraceTime=5 State=UP
PartitionName=high Nodes={host} PriorityTier=10 PreemptMode=OFF State=UP
SchedulerParameters=bf_interval=1,sched_interval=2
";

/// A job as `squeue --json` shows it (finished jobs stay for `MinJobAge`, 10 minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    /// PENDING, RUNNING, COMPLETING, COMPLETED, CANCELLED, FAILED, ...
    pub state: String,
    /// Why it is pending (`Resources`, `BeginTime`, ...), or `None`.
    pub reason: String,
    /// How often it was requeued (preempted, `scontrol requeue`).
    pub restarts: u64,
}

/// A running cluster in its own temporary directory.
pub struct Slurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// Dropped last (fields drop after `Drop::drop`), once the daemons are gone.
    _lock: Lock,
}

impl Slurm {
    /// Starts a cluster and waits until its node is idle; `None` (after a loud message) when
    /// Slurm is not installed or we are not root, unless `THAW_REQUIRE_SLURM=1`.
    pub fn start() -> Option<Slurm> {
        if let Some(missing) = REQUIRED.iter().find(|b| which(b).is_none()) {
            skip(&format!("`{missing}` is not installed"));
            return None;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip("the tests are not running as root (slurmd must run as root here)");
            return None;
        }
        let lock = Lock::take();
        stop_stale_clusters();
        ensure_munge();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("create the cluster's temp dir");
        let conf = write_files(dir.path());
        // From here on, Drop stops whatever started, also when starting fails half-way.
        let slurm = Slurm {
            dir,
            conf,
            _lock: lock,
        };
        slurm.boot();
        Some(slurm)
    }

    /// The cluster's directory (state, spool, logs); commands run in it, so a job's default
    /// `slurm-<id>.out` lands here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `slurm.conf`, for `SLURM_CONF`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The environment a client (thaw) needs to reach this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("SLURM_CONF".into(), self.conf.display().to_string())]
    }

    /// A Slurm client command aimed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env())
            .current_dir(self.dir())
            .stdin(Stdio::null());
        cmd
    }

    /// Submits a batch job (`sbatch --parsable ARGS`); its id.
    pub fn sbatch(&self, args: &[&str]) -> u64 {
        let out = self.ok("sbatch", &[&["--parsable"], args].concat());
        // --parsable prints `ID` or `ID;CLUSTER`.
        let id = out.trim().split(';').next().unwrap_or_default();
        id.parse()
            .unwrap_or_else(|_| panic!("sbatch {args:?} printed no job id: {out:?}"))
    }

    /// Every job the controller knows, finished ones included.
    pub fn jobs(&self) -> Vec<Job> {
        self.try_jobs()
            .unwrap_or_else(|e| panic!("squeue --json: {e}"))
    }

    /// Job `id`, if the controller knows it.
    pub fn job(&self, id: u64) -> Option<Job> {
        self.jobs().into_iter().find(|j| j.id == id)
    }

    /// Waits until `cond` holds for job `id`, or panics after `secs` with the job.
    pub fn wait_job(&self, id: u64, secs: u64, what: &str, cond: impl Fn(&Job) -> bool) -> Job {
        let start = Instant::now();
        loop {
            let job = self.job(id);
            if let Some(job) = &job
                && cond(job)
            {
                return job.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out after {secs}s waiting for job {id}: {what}: {job:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `scancel ARGS`, which must succeed.
    pub fn scancel(&self, args: &[&str]) {
        self.ok("scancel", args);
    }

    /// The last lines of both daemons' logs, for assertion messages (a failing test prints them
    /// anyway, when the cluster drops).
    pub fn logs(&self) -> String {
        ["slurmctld", "slurmd"]
            .iter()
            .map(|d| {
                let path = self.dir().join(format!("log/{d}.log"));
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("--- {} (tail)\n{tail}\n", path.display())
            })
            .collect()
    }

    /// Runs a client that must succeed; its stdout.
    fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    /// `jobs` without panicking, for Drop.
    fn try_jobs(&self) -> Result<Vec<Job>, String> {
        let out = self
            .command("squeue")
            .arg("--json")
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        parse_jobs(&out.stdout)
    }

    /// Starts both daemons (each daemonizes) and waits until the node is idle.
    fn boot(&self) {
        for daemon in ["slurmctld", "slurmd"] {
            let out = self.run(daemon, &["-f", &self.conf.display().to_string()]);
            assert!(
                out.status.success(),
                "{daemon} did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let start = Instant::now();
        loop {
            let out = self.run("sinfo", &["-h", "-o", "%t"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "idle" {
                eprintln!(
                    "Slurm cluster up in {:.1}s in {}",
                    start.elapsed().as_secs_f64(),
                    self.dir().display()
                );
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the node is not idle after 30s (sinfo: {state:?} {}); is another Slurm \
                 holding ports 6817/6818?",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Cancels every job and waits (up to 10 s) until none runs, so that no job's
    /// slurmstepd outlives slurmd.
    fn cancel_all(&self) {
        let Ok(jobs) = self.try_jobs() else { return };
        let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        if ids.is_empty() {
            return;
        }
        let _ = self
            .command("scancel")
            .arg("--full")
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let busy = self.try_jobs().is_ok_and(|jobs| {
                jobs.iter()
                    .any(|j| matches!(j.state.as_str(), "RUNNING" | "COMPLETING" | "SUSPENDED"))
            });
            if !busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Slurm logs of the failed test:\n{}", self.logs());
        }
        let start = Instant::now();
        self.cancel_all();
        stop_cluster(&format!("{}/", self.dir().display()), Some(self.dir()));
        eprintln!(
            "Slurm cluster stopped in {:.1}s",
            start.elapsed().as_secs_f64()
        );
    }
}

/// An exclusive `flock` on LOCK_PATH, released when dropped (the file closes).
struct Lock {
    _file: File,
}

impl Lock {
    /// Blocks until no other test (thread or process) has a cluster.
    fn take() -> Lock {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_PATH)
            .unwrap_or_else(|e| panic!("open {LOCK_PATH}: {e}"));
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            eprintln!("waiting for another test's Slurm cluster to stop ({LOCK_PATH})");
            while !flock(&file, libc::LOCK_EX) {
                let err = std::io::Error::last_os_error();
                assert!(
                    err.kind() == std::io::ErrorKind::Interrupted,
                    "flock {LOCK_PATH}: {err}"
                );
            }
        }
        Lock { _file: file }
    }
}

fn flock(file: &File, op: i32) -> bool {
    // SAFETY: flock on a file descriptor that `file` keeps open.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

/// Says loudly why the Slurm tests do not run, or fails when CI requires them.
fn skip(why: &str) {
    let message = format!(
        "the Slurm tests need a single-node Slurm cluster, but {why}.\n\
         Install Slurm with (as root):\n    {INSTALL}\n\
         and run the tests as root. THAW_REQUIRE_SLURM=1 makes this a failure (CI sets it)."
    );
    if std::env::var("THAW_REQUIRE_SLURM").as_deref() == Ok("1") {
        panic!("THAW_REQUIRE_SLURM=1: {message}");
    }
    let bar = "=".repeat(78);
    eprintln!("\n{bar}\nSKIPPED: {message}\n{bar}\n");
}

/// `program`'s path in PATH or the sbin folders (which a non-login PATH may lack).
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Stops and removes what a test that crashed (killed, so its Drop never ran) left: daemons
/// holding Slurm's ports, job steps, its directory. We hold the lock, so no other test's
/// cluster is running and everything of a `thaw-slurm-` directory is stale. Slurm daemons of
/// other directories (a developer's own cluster) are left alone, unlike with `pkill -x
/// slurmctld`; if they hold the ports, `boot` fails and says so.
fn stop_stale_clusters() {
    for (pid, name) in stop_cluster(&format!("/{DIR_PREFIX}"), None) {
        eprintln!("stopped a stale {name} (pid {pid}) left by an earlier test");
    }
    let stale_dirs = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
        .filter(|e| e.path().is_dir());
    for entry in stale_dirs {
        eprintln!(
            "removing {}, left by an earlier test",
            entry.path().display()
        );
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// Stops the processes of the clusters whose directory's path contains `mark`, and those in
/// `pid_dir`'s pid files: slurmd, then slurmctld (SIGTERM, then SIGKILL), then what is left of
/// their jobs (SIGKILL), which slurmd does not take down with it. What it stopped.
fn stop_cluster(mark: &str, pid_dir: Option<&Path>) -> Vec<(u32, String)> {
    let mut stopped = Vec::new();
    for daemon in ["slurmd", "slurmctld"] {
        let mut pids = processes(|p| p.comm == daemon && p.cmdline.contains(mark));
        let from_file = pid_dir.and_then(|dir| pid_file(&dir.join(format!("{daemon}.pid"))));
        if let Some(pid) = from_file
            && comm(pid).as_deref() == Some(daemon)
            && !pids.contains(&pid)
        {
            pids.push(pid);
        }
        for pid in pids {
            stop(pid);
            stopped.push((pid, daemon.to_string()));
        }
    }
    for pid in processes(|p| is_job_process(p, mark)) {
        let name = comm(pid).unwrap_or_default();
        kill(pid, libc::SIGKILL);
        stopped.push((pid, name));
    }
    stopped
}

/// A job's slurmstepd (its working directory and log are in the cluster's `log/`), or its batch
/// script (run from the cluster's `spool/`).
fn is_job_process(p: &Proc, mark: &str) -> bool {
    (p.comm == "slurmstepd" && p.files.iter().any(|f| f.contains(mark)))
        || (p.cmdline.contains(mark) && p.cmdline.contains("/spool/job"))
}

fn pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What `/proc` says of a process.
struct Proc {
    comm: String,
    /// Arguments joined with spaces.
    cmdline: String,
    /// Its working directory and open files.
    files: Vec<String>,
}

/// The pids of the processes (other than this one) that pass `filter`.
fn processes(filter: impl Fn(&Proc) -> bool) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| read_proc(pid).is_some_and(|p| filter(&p)))
        .collect()
}

fn read_proc(pid: u32) -> Option<Proc> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    let files = std::iter::once(PathBuf::from(format!("/proc/{pid}/cwd")))
        .chain(fds)
        .filter_map(|link| std::fs::read_link(link).ok())
        .map(|target| target.display().to_string())
        .collect();
    Some(Proc {
        comm: comm(pid)?,
        cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
        files,
    })
}

/// A process's name (`/proc/PID/comm`).
fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_string())
}

/// Whether `pid` is running (a zombie is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesized name, which may itself hold spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// SIGTERM, up to 10 s to exit (slurmctld saves its state first), then SIGKILL.
fn stop(pid: u32) {
    kill(pid, libc::SIGTERM);
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        eprintln!("pid {pid} ignored SIGTERM for 10s; killing it");
        kill(pid, libc::SIGKILL);
    }
}

/// Starts munged unless a credential already round-trips (munged is shared, and left running).
fn ensure_munge() {
    if munge_works() {
        return;
    }
    std::fs::create_dir_all("/run/munge").expect("create /run/munge");
    sh("chown", &["munge:munge", "/run/munge"]);
    let munged = which("munged").expect("munged is installed (checked before)");
    sh(
        "runuser",
        &["-u", "munge", "--", &munged.display().to_string()],
    );
    let start = Instant::now();
    while !munge_works() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "munged started but `munge -n | unmunge` still fails"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `munge -n | unmunge` succeeds (by unmunge's own exit status).
fn munge_works() -> bool {
    let Ok(cred) = Command::new("munge")
        .arg("-n")
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    if !cred.status.success() {
        return false;
    }
    let Ok(mut unmunge) = Command::new("unmunge")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let wrote = unmunge
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(&cred.stdout).is_ok());
    unmunge.wait().is_ok_and(|s| s.success()) && wrote
}

/// Runs a setup command that must succeed.
fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lays out the cluster's directory in `dir`; the path of its slurm.conf.
///
/// slurmctld runs as user `slurm`: it must be able to traverse `dir` and write `state` and
/// `log` (else it dies with "open .../log/jobcomp.txt: Permission denied"). slurmd checks the
/// GPUs in gres.conf are character devices, else the node drains ("gres/gpu count reported
/// lower than configured"), hence the two fake /dev/nvidia nodes.
fn write_files(dir: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .expect("make the cluster's dir traversable");
    for sub in ["state", "spool", "log"] {
        std::fs::create_dir(dir.join(sub)).unwrap_or_else(|e| panic!("create {sub}/: {e}"));
    }
    let (state, log) = (dir.join("state"), dir.join("log"));
    sh("chown", &["slurm:slurm", path_str(&state), path_str(&log)]);
    let host = hostname();
    let mut gres = String::new();
    for n in 0..2 {
        let dev = dir.join(format!("fake-nvidia{n}"));
        mknod_char(&dev, 195, n);
        gres += &format!("NodeName={host} Name=gpu File={}\n", dev.display());
    }
    std::fs::write(dir.join("gres.conf"), gres).expect("write gres.conf");
    let conf = dir.join("slurm.conf");
    let text = CONF
        .replace("{host}", &host)
        .replace("{dir}", path_str(dir));
    std::fs::write(&conf, text).expect("write slurm.conf");
    conf
}

/// A character device node like the NVIDIA driver's (major 195).
fn mknod_char(path: &Path, major: u32, minor: u32) {
    let c_path = std::ffi::CString::new(path_str(path)).expect("a path without NUL");
    // SAFETY: mknod with a valid NUL-terminated path; it only creates a file node.
    let rc = unsafe {
        libc::mknod(
            c_path.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    assert!(
        rc == 0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// This machine's short name, which Slurm requires as the node's name.
fn hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("run hostname -s");
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !name.is_empty(),
        "hostname -s failed"
    );
    name
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// The jobs of `squeue --json` (22.05 gives `job_state` as a string; later versions as a list).
fn parse_jobs(json: &[u8]) -> Result<Vec<Job>, String> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let jobs = value["jobs"]
        .as_array()
        .ok_or("no `jobs` in squeue --json")?;
    jobs.iter()
        .map(|j| {
            Ok(Job {
                id: j["job_id"].as_u64().ok_or("a job without job_id")?,
                state: text(&j["job_state"]),
                reason: text(&j["state_reason"]),
                restarts: j["restart_cnt"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}

/// A string, or a list of strings joined with `,`.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}
