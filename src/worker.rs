//! `thaw worker RUN_DIR`: one run, from its directory, to completion.

use std::path::Path;

use anyhow::{Context, Result};

use crate::engine::device;
use crate::engine::trainer::{self, Outcome};
use crate::paths::Paths;
use crate::run::{EventKind, RunDir, RunState, RunStatus, lock, now};
use crate::session::RunSpec;
use crate::signals;

/// Exit status of a worker interrupted by a signal after checkpointing (EX_TEMPFAIL).
pub const EXIT_INTERRUPTED: i32 = 75;

/// The environment variable through which whoever starts a worker gives it its thread budget.
pub const THREADS_ENV: &str = "THAW_THREADS";
/// The device the daemon placed the run on, when the session file left the choice to it.
pub const DEVICE_ENV: &str = "THAW_DEVICE";

/// Runs the run in `root`; returns the process exit status (0 done or stopped, 75
/// interrupted, 1 failed with the reason in `events.jsonl` and `state.json`).
pub fn main(root: &Path) -> i32 {
    signals::install();
    let run = RunDir::new(root);
    // Refused before touching any file: the run belongs to the worker holding the lock.
    let _lock = match lock::lock_for_worker(&run) {
        Ok(lock) => lock,
        Err(err) => {
            eprintln!("thaw worker {}: {err:#}", root.display());
            return 1;
        }
    };
    // LibTorch reports errors such as CUDA running out of memory by panicking inside tch:
    // caught here, they fail the run with their reason like any other error.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&run)))
        .unwrap_or_else(|panic| Err(anyhow::anyhow!(panic_reason(panic.as_ref()))));
    match result {
        Ok(Outcome::Finished | Outcome::Stopped) => 0,
        Ok(Outcome::Interrupted) => EXIT_INTERRUPTED,
        Err(err) => {
            let reason = format!("{err:#}");
            eprintln!("thaw worker {}: {reason}", root.display());
            record_failure(&run, &reason);
            1
        }
    }
}

fn work(run: &RunDir) -> Result<Outcome> {
    if !run.root.is_dir() {
        anyhow::bail!("run directory {} does not exist", run.root.display());
    }
    announce(run)?;
    let mut spec = RunSpec::load(&run.spec())?;
    // The daemon places `gpu` and `auto` runs on a GPU of its choosing.
    if let Ok(placed) = std::env::var(DEVICE_ENV) {
        spec.device = placed
            .parse()
            .with_context(|| format!("{DEVICE_ENV}={placed:?} from the daemon"))?;
    }
    let threads = spec
        .threads
        .or_else(|| std::env::var(THREADS_ENV).ok().and_then(|t| t.parse().ok()))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    device::set_cpu_threads(threads);
    let paths = Paths::from_env()?;
    trainer::train(
        run,
        &spec.train_config(),
        &paths.demo_data(),
        &signals::INTERRUPTED,
    )
}

/// Says in `state.json`, before anything else, that this process now owns the run, keeping
/// what the file knew of its progress.
fn announce(run: &RunDir) -> Result<()> {
    let mut state = run
        .read_state()
        .unwrap_or_else(|_| RunState::before_training(RunStatus::Running, None));
    state.status = RunStatus::Running;
    state.owned_by_this_process();
    state.message = Some("starting".into());
    run.write_state(&state)
}

/// What a panic says, with CUDA running out of memory named as such. A LibTorch error is cut
/// to LibTorch's own message: its C++ backtrace (dozens of frames, kept in `worker.log`) would
/// bury the reason in `state.json`, the dashboard and `thaw status`.
fn panic_reason(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim();
    let said = torch_message(first).unwrap_or(first);
    let out_of_memory = match said.strip_prefix("CUDA out of memory.") {
        // Up to PyTorch's advice on its allocator settings and the link to its documentation,
        // which a thaw user cannot act on as written.
        Some(rest) => Some(cut_at_first(
            rest,
            &["If reserved but unallocated", "See documentation"],
        )),
        None => text.contains("out of memory").then_some(said),
    };
    match out_of_memory {
        Some(what) => format!(
            "CUDA out of memory: {what} (a smaller batch_size, or fewer runs on this GPU, needs less)"
        ),
        None => format!("the worker crashed: {said}"),
    }
}

/// LibTorch's message in a tch error unwrapped by burn-tch (`called `Result::unwrap()` on an
/// `Err` value: Torch("..."), its newlines escaped), without the C++ backtrace that follows it.
fn torch_message(line: &str) -> Option<&str> {
    let start = line.find("Torch(\"")? + "Torch(\"".len();
    Some(cut_at_first(
        &line[start..],
        &["\\n", "Exception raised from", "\")"],
    ))
}

/// `text` up to the earliest of `stops` (all of it when none is there), trimmed.
fn cut_at_first<'a>(text: &'a str, stops: &[&str]) -> &'a str {
    let end = stops
        .iter()
        .filter_map(|stop| text.find(stop))
        .min()
        .unwrap_or(text.len());
    text[..end].trim()
}

/// Marks the run failed in `state.json` (keeping what it knew) and says why in `events.jsonl`.
fn record_failure(run: &RunDir, reason: &str) {
    let mut state = run
        .read_state()
        .unwrap_or_else(|_| RunState::before_training(RunStatus::Failed, None));
    state.status = RunStatus::Failed;
    state.message = Some(reason.to_string());
    state.updated = now();
    let event = state.event(EventKind::Error, reason);
    // The run directory may itself be what is broken; the exit status still says failed.
    let _ = run.append_event(&event);
    let _ = run.write_state(&state);
}

#[cfg(test)]
mod tests {
    /// The start of the panic a real CUDA out-of-memory error raised in a worker on an H200
    /// (the GPU check), with its backtrace cut to three of its 46 frames.
    const H200_OOM: &str = r#"called `Result::unwrap()` on an `Err` value: Torch("CUDA out of memory. Tried to allocate 8.00 GiB. GPU 0 has a total capacity of 139.80 GiB of which 65.50 MiB is free. Process 523 has 3.61 GiB memory in use. Including non-PyTorch memory, this process has 136.11 GiB memory in use. Of the allocated memory 134.00 GiB is allocated by PyTorch, and 1.50 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://docs.pytorch.org/docs/stable/notes/cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf)\nException raised from malloc at /pytorch/c10/cuda/CUDACachingAllocator.cpp:1574 (most recent call first):\nframe #0: c10::Error::Error(c10::SourceLocation, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >) + 0x9d (0x7fd0b79c305d in /opt/torch/.venv/lib/python3.12/site-packages/torch/lib/libc10.so)\nframe #1: <unknown function> + 0x4434a (0x7fd09f7ab34a in /opt/torch/.venv/lib/python3.12/site-packages/torch/lib/libc10_cuda.so)\nframe #45: <unknown function> + 0x4fe6b1 (0x557073f426b1 in /work/main/gpu-check/thaw)\n")"#;

    fn reason(text: &str) -> String {
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from(text));
        super::panic_reason(payload.as_ref())
    }

    #[test]
    fn a_cuda_out_of_memory_panic_says_libtorch_s_reason_without_its_backtrace() {
        assert_eq!(
            reason(H200_OOM),
            "CUDA out of memory: Tried to allocate 8.00 GiB. GPU 0 has a total capacity of \
             139.80 GiB of which 65.50 MiB is free. Process 523 has 3.61 GiB memory in use. \
             Including non-PyTorch memory, this process has 136.11 GiB memory in use. Of the \
             allocated memory 134.00 GiB is allocated by PyTorch, and 1.50 GiB is reserved by \
             PyTorch but unallocated. (a smaller batch_size, or fewer runs on this GPU, needs less)"
        );
    }

    #[test]
    fn other_panics_say_their_first_line_and_libtorch_errors_lose_their_backtrace() {
        let other: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert_eq!(
            super::panic_reason(other.as_ref()),
            "the worker crashed: index out of bounds"
        );
        assert_eq!(
            reason(
                "called `Result::unwrap()` on an `Err` value: Torch(\"shape '[2, 3]' is invalid for input of size 5\\nException raised from infer_size_impl\\nframe #0: c10::Error\")"
            ),
            "the worker crashed: shape '[2, 3]' is invalid for input of size 5"
        );
        // A message in some other form that still says it ran out of memory is named too.
        assert_eq!(
            reason("CUDA error: out of memory\nbacktrace"),
            "CUDA out of memory: CUDA error: out of memory (a smaller batch_size, or fewer runs on this GPU, needs less)"
        );
    }
}
