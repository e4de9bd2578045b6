//! What `/proc` says of a process: whether it runs, and since when. A worker's pid and start
//! time in `state.json` say which process owns a run; these tell whether that one still lives.

/// The fields of `/proc/PID/stat` thaw reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter: `R`, `S`, `D`, ... `Z` for a zombie, `X` for dead.
    pub state: char,
    /// Clock ticks since boot when the process started.
    pub start: u64,
}

impl ProcStat {
    /// `/proc/PID/stat` of a process, `None` when there is none.
    pub fn of(pid: u32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// The fields of a `stat` line.
    pub fn parse(stat: &str) -> Option<Self> {
        // The command name may hold spaces and parentheses: count fields after the last ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let start = fields.nth(18)?.parse().ok()?;
        Some(Self { state, start })
    }

    /// Whether it runs (a zombie or a dead process does not).
    pub fn runs(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`), 0 where
/// unknown.
pub fn start_time(pid: u32) -> u64 {
    ProcStat::of(pid).map_or(0, |stat| stat.start)
}

/// Whether process `pid` exists and is not a zombie.
pub fn runs(pid: u32) -> bool {
    ProcStat::of(pid).is_some_and(|stat| stat.runs())
}

/// Whether process `pid` runs and is the one that started at `start` (clock ticks since
/// boot); a zombie does not run.
pub fn alive(pid: u32, start: u64) -> bool {
    start != 0 && ProcStat::of(pid).is_some_and(|stat| stat.runs() && stat.start == start)
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (thaw (worker) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 9 0 \
                    987654 1000 200 18446744073709551615";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                state: 'S',
                start: 987654
            })
        );
        let zombie = ProcStat::parse(&line.replace(") S ", ") Z ")).unwrap();
        assert!(!zombie.runs());
        assert_eq!(ProcStat::parse("4242 (thaw) S 1 2"), None);
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn this_process_runs_and_is_told_apart_from_one_that_started_at_another_time() {
        let pid = std::process::id();
        let start = start_time(pid);
        assert!(start > 0 && runs(pid));
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
        assert!(!alive(pid, 0));
    }
}
