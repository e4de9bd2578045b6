//! `executor`: where a run's worker runs. `"local"` (the default) is a process on this
//! machine; `{ kind = "slurm", partition, gres, time, account, extra_args, grace }` is a
//! Slurm job on a cluster node that shares the run directory's filesystem.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a run's worker runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExecutorSpec {
    #[default]
    Local,
    Slurm(SlurmSpec),
}

/// How a run is submitted to Slurm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    /// Always `"slurm"` (the table's tag, kept so the table reads back).
    #[serde(default = "slurm_kind")]
    pub kind: String,
    /// The partition (`--partition`); the cluster's default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Generic resources per job (`--gres`), such as `"gpu:1"`; none when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// The time limit (`--time`): `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// More `sbatch` options, one per element (`["--cpus-per-task=8", "--mem=32G"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// Seconds before the time limit at which Slurm warns the worker (`--signal=B:USR1@grace`),
    /// so it checkpoints and is requeued.
    #[serde(default = "default_grace")]
    pub grace: u32,
}

fn slurm_kind() -> String {
    "slurm".into()
}

fn default_grace() -> u32 {
    120
}

/// The options thaw sets itself: one in `extra_args` would fight them.
const OWN_OPTIONS: [&str; 8] = [
    "--parsable",
    "--requeue",
    "--no-requeue",
    "--signal",
    "--chdir",
    "--output",
    "--error",
    "--open-mode",
];

impl SlurmSpec {
    /// Checks what sbatch would otherwise refuse late, or what would break thaw's control of
    /// the job; the message says what is accepted.
    pub fn check(&self) -> Result<(), String> {
        if self.kind != "slurm" {
            return Err(format!(
                "kind {:?}: expected \"slurm\" (or executor = \"local\")",
                self.kind
            ));
        }
        let word = |key: &str, value: &Option<String>| match value {
            Some(v) if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                Err(format!(
                    "{key} {v:?} must be one word without spaces, as sbatch takes it"
                ))
            }
            _ => Ok(()),
        };
        word("partition", &self.partition)?;
        word("gres", &self.gres)?;
        word("account", &self.account)?;
        let limit = match &self.time {
            Some(time) => Some(time_limit_secs(time).ok_or_else(|| {
                format!(
                    "time {time:?} is not a Slurm time limit: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (\"08:00:00\")"
                )
            })?),
            None => None,
        };
        for arg in &self.extra_args {
            let name = arg.split('=').next().unwrap_or(arg);
            if OWN_OPTIONS.contains(&name) || ["-o", "-e", "-D"].contains(&name) {
                return Err(format!(
                    "extra_args: thaw sets {name} itself (it needs the job requeueable, signalled before its time limit, and writing into the run directory); leave it out"
                ));
            }
            if !arg.starts_with('-') {
                return Err(format!(
                    "extra_args: {arg:?} is not an sbatch option: give each option as one element, such as \"--mem=32G\""
                ));
            }
        }
        if self.grace == 0 {
            return Err(
                "grace must be at least 1 second: the worker needs time to checkpoint".into(),
            );
        }
        if self.grace > MAX_GRACE {
            return Err(format!(
                "grace {} s is more than sbatch's --signal takes ({MAX_GRACE} s)",
                self.grace
            ));
        }
        if let Some(limit) = limit
            && u64::from(self.grace) >= limit
        {
            return Err(format!(
                "grace {} s is not less than the time limit {:?} ({limit} s): the job would be told to checkpoint and requeue as soon as it starts; give a grace shorter than the limit",
                self.grace,
                self.time.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// Whether the job asks Slurm for a GPU.
    pub fn wants_gpu(&self) -> bool {
        self.gres.as_deref().is_some_and(|g| g.starts_with("gpu"))
    }
}

/// The most seconds `--signal=B:USR1@SECS` takes.
const MAX_GRACE: u32 = 65535;

/// The seconds of a Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
/// `D-HH:MM:SS`, or `UNLIMITED`/`INFINITE` (`u64::MAX`); `None` when it is none of these.
fn time_limit_secs(time: &str) -> Option<u64> {
    if matches!(time, "UNLIMITED" | "INFINITE" | "unlimited" | "infinite") {
        return Some(u64::MAX);
    }
    let numbers = |s: &str| -> Option<Vec<u64>> {
        s.split(':')
            .map(|p| {
                (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect()
    };
    let secs = match time.split_once('-') {
        Some((days, rest)) => {
            let days: u64 = numbers(days).filter(|d| d.len() == 1)?[0];
            let [h, m, s] = match numbers(rest)?[..] {
                [h] => [h, 0, 0],
                [h, m] => [h, m, 0],
                [h, m, s] => [h, m, s],
                _ => return None,
            };
            days * 86400 + h * 3600 + m * 60 + s
        }
        None => match numbers(time)?[..] {
            [m] => m * 60,
            [m, s] => m * 60 + s,
            [h, m, s] => h * 3600 + m * 60 + s,
            _ => return None,
        },
    };
    Some(secs)
}

impl ExecutorSpec {
    pub fn slurm(&self) -> Option<&SlurmSpec> {
        match self {
            Self::Local => None,
            Self::Slurm(spec) => Some(spec),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.slurm().map_or(Ok(()), SlurmSpec::check)
    }
}

impl fmt::Display for ExecutorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Slurm(spec) => match &spec.partition {
                Some(p) => write!(f, "slurm ({p})"),
                None => f.write_str("slurm"),
            },
        }
    }
}

impl Serialize for ExecutorSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Local => s.serialize_str("local"),
            Self::Slurm(spec) => spec.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ExecutorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = toml::Value::deserialize(d)?;
        match value {
            toml::Value::String(s) if s == "local" => Ok(Self::Local),
            toml::Value::String(s) if s == "slurm" => Err(D::Error::custom(
                "executor \"slurm\" needs its settings: executor = { kind = \"slurm\", partition = \"gpu\", gres = \"gpu:1\", time = \"08:00:00\" }",
            )),
            toml::Value::String(s) => Err(D::Error::custom(format!(
                "unknown executor {s:?}: expected \"local\" or a table {{ kind = \"slurm\", ... }}"
            ))),
            toml::Value::Table(table) => {
                match table.get("kind").and_then(|k| k.as_str()) {
                    Some("slurm") => {}
                    Some("local") if table.len() == 1 => return Ok(Self::Local),
                    Some(other) => {
                        return Err(D::Error::custom(format!(
                            "unknown executor kind {other:?}: expected \"slurm\" (or executor = \"local\")"
                        )));
                    }
                    None => {
                        return Err(D::Error::custom("an executor table needs kind = \"slurm\""));
                    }
                }
                let spec = SlurmSpec::deserialize(toml::Value::Table(table))
                    .map_err(|e| D::Error::custom(format!("executor: {}", e.message())))?;
                Ok(Self::Slurm(spec))
            }
            other => Err(D::Error::custom(format!(
                "executor must be \"local\" or a table {{ kind = \"slurm\", ... }}, not a {}",
                other.type_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ExecutorSpec, String> {
        #[derive(Deserialize)]
        struct Holder {
            executor: ExecutorSpec,
        }
        toml::from_str::<Holder>(text)
            .map(|h| h.executor)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn local_and_slurm_tables_parse_and_read_back() {
        assert_eq!(parse("executor = \"local\"").unwrap(), ExecutorSpec::Local);
        let slurm = parse(
            "executor = { kind = \"slurm\", partition = \"gpu\", gres = \"gpu:1\", time = \"1-00:00:00\", extra_args = [\"--mem=8G\"] }",
        )
        .unwrap();
        let spec = slurm.slurm().expect("slurm").clone();
        assert_eq!(spec.partition.as_deref(), Some("gpu"));
        assert_eq!(spec.grace, 120);
        assert!(spec.wants_gpu());
        spec.check().unwrap();
        #[derive(Serialize, Deserialize)]
        struct Holder {
            executor: ExecutorSpec,
        }
        let text = toml::to_string(&Holder {
            executor: slurm.clone(),
        })
        .unwrap();
        assert_eq!(parse(&text).unwrap(), slurm, "{text}");
    }

    #[test]
    fn bad_executors_say_what_is_accepted() {
        let err = parse("executor = \"kubernetes\"").unwrap_err();
        assert!(err.contains("\"local\" or a table"), "{err}");
        let err = parse("executor = \"slurm\"").unwrap_err();
        assert!(err.contains("partition = \"gpu\""), "{err}");
        let err = parse("executor = { kind = \"slurm\", partiton = \"gpu\" }").unwrap_err();
        assert!(
            err.contains("partiton") && err.contains("partition"),
            "{err}"
        );
        let err = parse("executor = { partition = \"gpu\" }").unwrap_err();
        assert!(err.contains("kind = \"slurm\""), "{err}");
        let bad = |table: &str| {
            parse(&format!("executor = {{ kind = \"slurm\", {table} }}"))
                .unwrap()
                .check()
                .unwrap_err()
        };
        assert!(bad("time = \"8h\"").contains("HH:MM:SS"));
        assert!(bad("extra_args = [\"--output=x\"]").contains("thaw sets --output"));
        assert!(bad("extra_args = [\"mem=8G\"]").contains("not an sbatch option"));
        assert!(bad("partition = \"gpu a100\"").contains("one word"));
        assert!(bad("grace = 0").contains("at least 1"));
        assert!(bad("grace = 70000").contains("65535"));
        let err = bad("time = \"2\", grace = 120");
        assert!(
            err.contains("not less than the time limit \"2\" (120 s)"),
            "{err}"
        );
        for (time, secs) in [
            ("30", 1800),
            ("30:10", 1810),
            ("08:00:00", 28800),
            ("2-12", 216000),
            ("2-12:30", 217800),
            ("2-12:30:05", 217805),
            ("UNLIMITED", u64::MAX),
        ] {
            assert_eq!(time_limit_secs(time), Some(secs), "{time}");
        }
        for bad in ["", "1:2:3:4", "a", "1-", "-1", "1-2-3", "1:", "1-1:2:3:4"] {
            assert_eq!(time_limit_secs(bad), None, "{bad:?}");
        }
    }
}
