//! Runs as Slurm jobs: `sbatch` a small script that runs `thaw worker RUN_DIR` on the node,
//! `squeue --json` to watch, `scancel` to stop. The script forwards Slurm's warning before the
//! time limit (USR1) and its TERM (preemption, `scancel`) to the worker, which checkpoints
//! and exits; on USR1 the script asks Slurm to requeue the job, and a preempted job is
//! requeued by Slurm itself. Everything else goes through the run directory, which the login
//! node and the compute nodes share.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::protocol::SlurmInfo;
use crate::run::{RunDir, write_atomic};
use crate::session::executor::SlurmSpec;

/// How long sbatch, squeue or scancel may take before thaw gives up on them (they retry for
/// minutes when slurmctld does not answer, and the daemon must go on serving).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What thaw keeps about a run's Slurm job in `RUN_DIR/slurm.json`, so a restarted daemon
/// finds the job again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: u64,
    /// When thaw submitted it (seconds since the Unix epoch).
    pub submitted: f64,
    /// The Slurm state it last had.
    pub state: String,
    /// Set once the job has ended: the daemon stops watching it.
    pub ended: bool,
    /// The node it last ran on.
    #[serde(default)]
    pub node: String,
    /// How many times Slurm requeued it.
    #[serde(default)]
    pub restarts: u64,
}

impl JobRecord {
    /// The job as `status` shows it once the daemon no longer watches it.
    pub fn info(&self) -> SlurmInfo {
        SlurmInfo {
            job_id: self.job_id,
            state: self.state.clone(),
            reason: None,
            node: (!self.node.is_empty()).then(|| self.node.clone()),
            restarts: self.restarts,
        }
    }

    pub fn read(run: &RunDir) -> Option<Self> {
        let text = std::fs::read(run.slurm_record()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn write(&self, run: &RunDir) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("a job record serialises");
        write_atomic(&run.slurm_record(), &text)
            .with_context(|| format!("cannot write {}", run.slurm_record().display()))
    }
}

/// One job as `squeue --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u64,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `FAILED`, `TIMEOUT`, `PREEMPTED`, ...
    pub state: String,
    /// Why it is pending (`Resources`, `Priority`, `BeginTime`, ...); `None` is no reason.
    pub reason: String,
    /// How many times Slurm has requeued it.
    pub restarts: u64,
    /// The node its batch script runs on, once it runs.
    pub node: String,
    /// The batch script's wait status, as squeue gives it (exit status << 8 | signal).
    pub exit_code: i64,
}

impl Job {
    /// Whether Slurm is done with it: it will not run again.
    pub fn ended(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "CANCELLED"
                | "FAILED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "OUT_OF_MEMORY"
                | "SPECIAL_EXIT"
                | "REVOKED"
        )
    }

    pub fn pending(&self) -> bool {
        self.state == "PENDING" || self.state.starts_with("REQUEUE")
    }

    /// Running, or finishing, or held there: the worker may be alive.
    pub fn running(&self) -> bool {
        matches!(
            self.state.as_str(),
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "STOPPED" | "RESIZING"
        )
    }

    /// How the batch script ended, in words.
    pub fn exit(&self) -> String {
        match (self.exit_code >> 8, self.exit_code & 0x7f) {
            (status, 0) => format!("exit status {status}"),
            (_, signal @ 1..32) => format!("killed by signal {signal}"),
            // Not a signal: slurmstepd's own failure before the script ran (0:53 is the
            // familiar one, when the node cannot open the job's --output file).
            (status, code) => format!(
                "Slurm exit code {status}:{code} (the batch script did not start: often the node cannot open its log file)"
            ),
        }
    }

    /// Slurm's reason, when it says one.
    pub fn reason(&self) -> Option<&str> {
        (!self.reason.is_empty() && self.reason != "None").then_some(self.reason.as_str())
    }
}

/// Every job `squeue --json` lists (22.05 ignores `-j` with `--json`, so thaw filters).
pub fn jobs() -> Result<HashMap<u64, Job>> {
    let out = run(Command::new("squeue").arg("--json"), "squeue --json")?;
    parse_jobs(&out)
}

/// The jobs of `squeue --json`'s output: 22.05's plain values, or 23.02 and later's
/// (`job_state` a list of the state and its flags, numbers as `{"set", "number"}`, the exit
/// code as `{"return_code", "signal"}`).
pub fn parse_jobs(text: &str) -> Result<HashMap<u64, Job>> {
    use serde_json::Value;
    #[derive(Deserialize)]
    struct Listing {
        jobs: Vec<Raw>,
    }
    #[derive(Deserialize)]
    struct Raw {
        job_id: Value,
        job_state: Value,
        #[serde(default)]
        state_reason: String,
        #[serde(default)]
        restart_cnt: Value,
        #[serde(default)]
        batch_host: String,
        #[serde(default)]
        exit_code: Value,
    }
    /// A number, or 23.02's `{"set": true, "number": N}`.
    fn number(v: &Value) -> Option<i64> {
        match v {
            Value::Object(o) if o.get("set") != Some(&Value::Bool(false)) => {
                number(o.get("number")?)
            }
            v => v.as_i64(),
        }
    }
    /// The state, or the first of 23.02's list (the rest are flags such as `COMPLETING`).
    fn state(v: &Value) -> Option<String> {
        match v {
            Value::Array(a) => a.first()?.as_str().map(String::from),
            v => v.as_str().map(String::from),
        }
    }
    /// A wait status (`status << 8 | signal`) from 22.05's number or 23.02's object.
    fn wait_status(v: &Value) -> i64 {
        match v {
            Value::Object(o) => {
                let status = o.get("return_code").and_then(number).unwrap_or(0);
                let signal = o
                    .get("signal")
                    .and_then(|s| s.get("id"))
                    .and_then(number)
                    .unwrap_or(0);
                (status << 8) | (signal & 0x7f)
            }
            v => number(v).unwrap_or(0),
        }
    }
    let listing: Listing = serde_json::from_str(text)
        .context("squeue --json printed something that is not its job listing")?;
    listing
        .jobs
        .into_iter()
        .map(|j| {
            let id = number(&j.job_id)
                .and_then(|id| u64::try_from(id).ok())
                .with_context(|| format!("squeue --json listed a job id {}", j.job_id))?;
            let state = state(&j.job_state).with_context(|| {
                format!("squeue --json listed job {id} in state {}", j.job_state)
            })?;
            let job = Job {
                id,
                state,
                reason: j.state_reason,
                restarts: number(&j.restart_cnt).map_or(0, |n| n.max(0) as u64),
                node: j.batch_host,
                exit_code: wait_status(&j.exit_code),
            };
            Ok((id, job))
        })
        .collect()
}

/// Writes the run's batch script and submits it; returns the job id.
pub fn submit(dir: &RunDir, name: &str, spec: &SlurmSpec) -> Result<u64> {
    let exe = crate::paths::executable()?;
    let dir = RunDir::new(std::path::absolute(&dir.root).unwrap_or_else(|_| dir.root.clone()));
    let script = dir.slurm_script();
    write_atomic(&script, batch_script(&exe, &dir.root).as_bytes())
        .with_context(|| format!("cannot write {}", script.display()))?;
    let mut command = Command::new("sbatch");
    command.args(sbatch_args(&dir, name, spec)).arg(&script);
    let out = run(&mut command, "sbatch")?;
    parse_job_id(&out)
}

/// `sbatch`'s options for a run: requeueable, warned `grace` seconds before its time limit,
/// working in and logging to the run directory.
pub fn sbatch_args(dir: &RunDir, name: &str, spec: &SlurmSpec) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        "--requeue".into(),
        format!("--signal=B:USR1@{}", spec.grace),
        format!("--job-name=thaw:{name}"),
        format!("--chdir={}", dir.root.display()),
        format!("--output={}", dir.slurm_log_pattern()),
        // A requeued job appends to its log rather than replacing it.
        "--open-mode=append".into(),
    ];
    let mut option = |flag: &str, value: &Option<String>| {
        if let Some(value) = value {
            args.push(format!("--{flag}={value}"));
        }
    };
    option("partition", &spec.partition);
    option("gres", &spec.gres);
    option("time", &spec.time);
    option("account", &spec.account);
    args.extend(spec.extra_args.iter().cloned());
    args
}

/// The script Slurm runs: the worker in the background, so that the shell can pass Slurm's
/// signals on (`--signal=B:` reaches only this shell) and requeue after a time-limit warning.
pub fn batch_script(exe: &Path, root: &Path) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    format!(
        r#"#!/bin/bash
# Written by thaw: runs the worker of the run in this directory on the node Slurm chose.
# USR1 (before the time limit) and TERM (preemption, scancel) reach the worker, which
# checkpoints and exits 75; after USR1 the job asks to be requeued, and resumes from there.
unset THAW_DEVICE THAW_THREADS
if [ -n "$SLURM_CPUS_PER_TASK" ]; then export THAW_THREADS="$SLURM_CPUS_PER_TASK"; fi
{exe} worker {root} &
worker=$!
warned=
trap 'warned=1; kill -USR1 "$worker" 2>/dev/null' USR1
trap 'kill -TERM "$worker" 2>/dev/null' TERM
while kill -0 "$worker" 2>/dev/null; do wait "$worker"; done
wait "$worker"
status=$?
if [ "$status" = 75 ] && [ -n "$warned" ]; then
  echo "thaw: checkpointed before the time limit; requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
"#,
        exe = quote(exe),
        root = quote(root),
    )
}

/// The job id `sbatch --parsable` printed (`ID` or `ID;CLUSTER`).
pub fn parse_job_id(out: &str) -> Result<u64> {
    let line = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let id = line.split(';').next().unwrap_or("").trim();
    id.parse()
        .with_context(|| format!("sbatch --parsable printed {:?}, not a job id", out.trim()))
}

/// The last line the job wrote to its log (`slurm-JOB.log` in the run directory), which
/// says why a job failed before thaw's worker could.
pub fn last_log_line(dir: &RunDir, job: u64) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(dir.slurm_log(job)).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().chars().take(300).collect())
}

/// Cancels a job; `signal` sends that signal to the batch shell instead.
pub fn cancel(job: u64, signal: Option<&str>) -> Result<()> {
    let mut command = Command::new("scancel");
    if let Some(signal) = signal {
        command.args(["--batch", &format!("--signal={signal}")]);
    }
    run(command.arg(job.to_string()), "scancel").map(drop)
}

/// Runs a Slurm command to its end (or [`COMMAND_TIMEOUT`]); its stdout, or an error with
/// what it said.
fn run(command: &mut Command, what: &str) -> Result<String> {
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is not installed or not on the daemon's PATH: the Slurm executor needs Slurm's client commands (sbatch, squeue, scancel) where the daemon runs",
            command.get_program().to_string_lossy()
        ),
        Err(e) => bail!("cannot run {what}: {e}"),
    };
    // Read both pipes on threads, so a chatty command cannot block on a full pipe.
    let pipe = |mut p: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = p.read_to_string(&mut text);
            text
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = pipe(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} did not answer within {} s: is slurmctld reachable from here?",
                COMMAND_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let said = stderr.trim();
        let said = if said.is_empty() { stdout.trim() } else { said };
        bail!(
            "{what} failed ({status}): {}",
            if said.is_empty() {
                "it said nothing"
            } else {
                said
            }
        );
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_gets_requeue_signal_and_the_run_directory() {
        let spec = SlurmSpec {
            kind: "slurm".into(),
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            time: Some("01:00:00".into()),
            account: None,
            extra_args: vec!["--mem=8G".into()],
            grace: 90,
        };
        let args = sbatch_args(&RunDir::new("/shared/runs/a"), "s/a", &spec);
        for want in [
            "--parsable",
            "--requeue",
            "--signal=B:USR1@90",
            "--chdir=/shared/runs/a",
            "--output=/shared/runs/a/slurm-%j.log",
            "--partition=gpu",
            "--gres=gpu:1",
            "--time=01:00:00",
            "--mem=8G",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a.starts_with("--account")));
    }

    #[test]
    fn the_script_quotes_paths_and_forwards_signals() {
        let script = batch_script(Path::new("/opt/thaw"), Path::new("/runs/it's"));
        assert!(script.contains(r"'/runs/it'\''s'"), "{script}");
        assert!(script.contains("kill -USR1") && script.contains("scontrol requeue"));
        let out = Command::new("bash")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn job_ids_and_listings_parse() {
        assert_eq!(parse_job_id("42\n").unwrap(), 42);
        assert_eq!(parse_job_id("42;cluster\n").unwrap(), 42);
        assert!(parse_job_id("Submitted batch job 42").is_err());
        let listing = r#"{"meta":{},"errors":[],"jobs":[
            {"job_id":7,"job_state":"PENDING","state_reason":"Resources","restart_cnt":1,"batch_host":"","exit_code":0},
            {"job_id":8,"job_state":"RUNNING","state_reason":"None","restart_cnt":0,"batch_host":"n1","exit_code":0}]}"#;
        let jobs = parse_jobs(listing).unwrap();
        assert!(jobs[&7].pending() && jobs[&7].reason() == Some("Resources"));
        assert!(jobs[&8].running() && jobs[&8].reason().is_none() && jobs[&8].node == "n1");
        assert!(parse_jobs("squeue: error").is_err());
        // 23.02 and later: states as lists, numbers and exit codes as objects.
        let listing = r#"{"jobs":[
            {"job_id":9,"job_state":["RUNNING","COMPLETING"],"state_reason":"None","restart_cnt":2,"batch_host":"n2",
             "exit_code":{"status":["SUCCESS"],"return_code":{"set":true,"infinite":false,"number":0},"signal":{"id":{"set":false,"infinite":false,"number":0},"name":""}}},
            {"job_id":10,"job_state":["FAILED"],"restart_cnt":{"set":true,"number":0},
             "exit_code":{"status":["ERROR"],"return_code":{"set":true,"number":127},"signal":{"id":{"set":true,"number":0}}}}]}"#;
        let jobs = parse_jobs(listing).unwrap();
        assert!(jobs[&9].running() && jobs[&9].restarts == 2 && jobs[&9].node == "n2");
        assert!(jobs[&10].ended() && jobs[&10].exit() == "exit status 127");
        let failed = |exit_code| Job {
            exit_code,
            ..jobs[&10].clone()
        };
        assert_eq!(failed(9).exit(), "killed by signal 9");
        assert!(failed(53).exit().starts_with("Slurm exit code 0:53"));
        assert!(parse_jobs(r#"{"jobs":[{"job_id":"x","job_state":"RUNNING"}]}"#).is_err());
    }
}
