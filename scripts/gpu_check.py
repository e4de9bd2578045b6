"""The GPU check: thaw on a GPU machine, driven as a user drives it, with one result file.

1. Two concurrent resnet18 fine-tuning runs (`a`, `b`) at IMAGE_SIZE on DEVICE for SECONDS:
   `a`'s step times with every group trainable, then with stem..layer3 frozen through
   `thaw freeze` (and thawed again with `thaw unfreeze`), each the median of its steps in
   metrics.csv (the step alone, as PyTorch's figure is) beside the wall-clock time a step
   (validation and epoch-end checkpoints included); each run's GPU memory.
2. A run that cannot fit in GPU memory beside a healthy one: it must end `failed` with CUDA's
   out-of-memory reason while the healthy run keeps training.
3. The same model's PyTorch eager step time on the same device (benches/pytorch_step.py,
   run by this machine's python3), trainable and frozen.
4. The step_time bench (built with the binary) on the device: thaw's step split into forward,
   backward and update, alone on the GPU on a fixed batch, beside PyTorch's.

Standard library only: the machine has python3 and PyTorch, no Rust. scripts/gpu-check.sh
sets the environment and calls this; see the README's "GPU check".
"""

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("THAW_GPU_BIN", "gpu-check/thaw")
BENCH = os.environ.get("THAW_GPU_BENCH", "gpu-check/step_time")
DEVICE = os.environ.get("THAW_GPU_DEVICE", "tch:cuda:0")
SIZE = int(os.environ.get("THAW_GPU_IMAGE_SIZE", "224"))
BATCH = int(os.environ.get("THAW_GPU_BATCH", "64"))
SECONDS = float(os.environ.get("THAW_GPU_SECONDS", "60"))
PYTHON = os.environ.get("THAW_GPU_PYTHON", sys.executable)
BODY = ["stem", "layer1", "layer2", "layer3"]
ON_GPU = DEVICE.startswith("tch:cuda") or DEVICE == "gpu"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Thaw:
    """The thaw binary in a private THAW_HOME."""

    def __init__(self, home):
        self.env = dict(os.environ, THAW_HOME=home, NO_COLOR="1")
        self.home = home

    def run(self, *args, check=True):
        out = subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise SystemExit(f"thaw {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out

    def status(self):
        return {f"{r['session']}/{r['name']}": r for r in json.loads(self.run("status", "--json").stdout)}

    def wait(self, what, cond, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            runs = self.status()
            if cond(runs):
                return runs
            time.sleep(0.5)
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}: {json.dumps(self.status(), indent=1)}")

    def events(self, session, run, kind):
        path = os.path.join(self.home, "data/sessions", session, "runs", run, "events.jsonl")
        with open(path) as f:
            return [e for e in map(json.loads, f) if e["kind"] == kind]

    def step_times(self, session, run):
        """(step, ms) of every training row of the run's metrics.csv (log_every_steps = 1)."""
        path = os.path.join(self.home, "data/sessions", session, "runs", run, "metrics.csv")
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if r["split"] == "train" and float(r["samples_per_sec"]) > 0]
        return [(int(r["step"]), 1000.0 * BATCH / float(r["samples_per_sec"])) for r in rows]

    def launch(self, name, text):
        path = os.path.join(self.home, f"{name}.toml")
        with open(path, "w") as f:
            f.write(text)
        return self.run("launch", path).stdout.strip()


def session(name, runs, batch=BATCH, size=SIZE):
    head = f"""name = "{name}"
[defaults]
model = "resnet18"
data = "demo:shapes"
image_size = {size}
batch_size = {batch}
epochs = 1000
lr = 1e-3
optimizer = "adam"
device = "{DEVICE}"
augment = false
log_every_steps = 1
checkpoint_every_steps = 100000
seed = 1
"""
    return head + "".join(f'[[runs]]\nname = "{r}"\n' for r in runs)


def step_ms(thaw, run, seconds):
    """Run `run` for `seconds`; its median step time in milliseconds from `metrics.csv` (a row
    a step: batch over samples per second, the step alone), and its wall-clock time a step
    from the step counter (validation and epoch-end checkpoints included)."""
    start_step, start = thaw.status()[run]["step"], time.time()
    time.sleep(seconds)
    end_step, elapsed = thaw.status()[run]["step"], time.time() - start
    session, name = run.split("/")
    steps = [ms for step, ms in thaw.step_times(session, name) if start_step < step <= end_step]
    return {
        "median_ms": statistics.median(steps) if steps else None,
        "steps": len(steps),
        "wall_ms_per_step": None if end_step <= start_step else 1000.0 * elapsed / (end_step - start_step),
    }


def nvidia_smi_memory():
    """Each GPU process's memory as nvidia-smi sees it (MiB, by pid): a second opinion beside
    NVML's per-run figure, which a container's pid namespace can leave empty."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], capture_output=True, text=True
        )
    except FileNotFoundError:
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def concurrent_runs(thaw, result):
    log(thaw.launch("pair", session("pair", ["a", "b"])))
    thaw.wait(
        "both runs training", lambda r: all(r[n]["status"] == "running" and r[n]["step"] >= 5 for n in ("pair/a", "pair/b")), 240
    )
    third = SECONDS / 3
    b_start = thaw.status()["pair/b"]["step"]
    trainable = step_ms(thaw, "pair/a", third)
    log(f"trainable: a {trainable}")
    thaw.run("freeze", "pair/a", *BODY)
    thaw.wait("a's stem..layer3 frozen", lambda r: all(g["frozen"] for g in r["pair/a"]["groups"] if g["name"] in BODY), 60)
    frozen_at = thaw.events("pair", "a", "freeze")[-1]["step"]
    frozen = step_ms(thaw, "pair/a", third)
    log(f"frozen at step {frozen_at}: a {frozen}")
    memory = {n: thaw.status()[n].get("gpu_memory") for n in ("pair/a", "pair/b")}
    smi = nvidia_smi_memory()
    thaw.run("unfreeze", "pair/a", *BODY)
    thaw.wait("a thawed", lambda r: not any(g["frozen"] for g in r["pair/a"]["groups"]), 60)
    thawed_at = thaw.events("pair", "a", "unfreeze")[-1]["step"]
    thawed = step_ms(thaw, "pair/a", third)
    log(f"thawed at step {thawed_at}: a {thawed}")
    runs = thaw.status()
    result["concurrent"] = {
        "runs": 2,
        "image_size": SIZE,
        "batch_size": BATCH,
        "a_trainable": trainable,
        "a_frozen": frozen,
        "a_thawed": thawed,
        "frozen_over_trainable": (
            None if not (frozen["median_ms"] and trainable["median_ms"]) else frozen["median_ms"] / trainable["median_ms"]
        ),
        "frozen_at_step": frozen_at,
        "thawed_at_step": thawed_at,
        "b_steps_meanwhile": runs["pair/b"]["step"] - b_start,
        "gpu_memory_bytes": memory,
        "pids": {n: runs[n]["pid"] for n in ("pair/a", "pair/b")},
        "nvidia_smi_pid_mib": smi,
        "samples_per_sec": {n: runs[n]["samples_per_sec"] for n in ("pair/a", "pair/b")},
    }
    thaw.run("stop", "pair/a")
    thaw.wait("a stopped", lambda r: r["pair/a"]["status"] == "stopped", 120)


def out_of_memory(thaw, result):
    if not ON_GPU:
        result["out_of_memory"] = {"skipped": f"{DEVICE} is not a GPU"}
        return
    # Far more activations than a GPU holds: 512 images at 1024x1024 through resnet18 (conv1's
    # output alone is 34 GB in f32, and the stem keeps three of its size for the backward).
    # The batch stays under demo:shapes' 960 training images, or the run fails for that.
    log(thaw.launch("oom", session("oom", ["huge"], batch=512, size=1024)))
    runs = thaw.wait("the huge run to end", lambda r: r["oom/huge"]["status"] in ("failed", "finished", "stopped"), 240)
    healthy_before = runs["pair/b"]["step"]
    time.sleep(3)
    runs = thaw.status()
    result["out_of_memory"] = {
        "status": runs["oom/huge"]["status"],
        "message": runs["oom/huge"]["message"],
        "named_out_of_memory": "out of memory" in (runs["oom/huge"]["message"] or "").lower(),
        "healthy_run_status": runs["pair/b"]["status"],
        "healthy_run_advanced": runs["pair/b"]["step"] - healthy_before,
    }


def pytorch(result):
    device = "cuda" if ON_GPU else "cpu"
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches", "pytorch_step.py")
    threads = str(os.cpu_count() or 1)
    out = subprocess.run(
        [PYTHON, script, "--device", device, "--threads", threads, "--batch", str(BATCH), "--image-size", str(SIZE), "--steps", "20", "--warmup", "5"],
        capture_output=True,
        text=True,
    )
    try:
        figures = json.loads(out.stdout)
    except json.JSONDecodeError:
        figures = {"error": out.stderr.strip()[-2000:] or out.stdout.strip()[-2000:]}
    result["pytorch_eager"] = {k: v for k, v in figures.items() if not k.endswith("steps_ms")}


def step_time_bench(result):
    """thaw's step alone on the device, in phases, beside PyTorch's (benches/step_time.rs)."""
    if not os.path.exists(BENCH):
        result["step_time_bench"] = {"skipped": f"no {BENCH}: scripts/build-gpu-check.sh builds it"}
        return
    env = dict(
        os.environ,
        THAW_BENCH_DEVICE=DEVICE,
        THAW_BENCH_IMAGE_SIZE=str(SIZE),
        THAW_BENCH_BATCH=str(BATCH),
        THAW_BENCH_PYTHON=PYTHON,
        THAW_BENCH_STEPS="20",
        THAW_BENCH_WARMUP="5",
    )
    out = subprocess.run([BENCH, "--bench"], env=env, capture_output=True, text=True)
    result["step_time_bench"] = {"status": out.returncode, "stdout": out.stdout.splitlines(), "stderr": out.stderr[-2000:]}
    log("\n".join(out.stdout.splitlines()))


def gpus():
    """nvidia-smi's view, when there is one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        return out.stdout.strip().splitlines()
    except FileNotFoundError:
        return []


def save(out_dir, result, home=None):
    """Writes what is known so far, so that a check cut short by a time limit still leaves its
    figures (and, with `home`, the daemon's and workers' logs, for a failure's cause)."""
    path = os.path.join(out_dir, "gpu-check.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    if home is None:
        return path
    sessions = os.path.join(home, "data", "sessions")
    logs = [os.path.join(home, "data", "daemon.log")]
    for root, _, files in os.walk(sessions):
        logs += [os.path.join(root, f) for f in files if f in ("worker.log", "events.jsonl")]
    for log_path in logs:
        if os.path.exists(log_path):
            name = os.path.relpath(log_path, os.path.join(home, "data")).replace(os.sep, "__")
            with open(log_path, "rb") as src, open(os.path.join(out_dir, "logs-" + name), "wb") as dst:
                dst.write(src.read()[-200_000:])
    return path


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "gpu-check-result"
    os.makedirs(out_dir, exist_ok=True)
    result = {"device": DEVICE, "gpus": gpus(), "thaw": None, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    home = tempfile.mkdtemp(prefix="thaw-gpu-check-")
    os.makedirs(os.path.join(home, "config"))
    with open(os.path.join(home, "config", "config.toml"), "w") as f:
        f.write("runs_per_gpu = 3\ncpu_slots = 3\n")
    thaw = Thaw(home)
    result["thaw"] = thaw.run("--version").stdout.strip()
    began = time.time()
    try:
        thaw.run("up")
        concurrent_runs(thaw, result)
        save(out_dir, result, home)
        out_of_memory(thaw, result)
    except SystemExit as failure:
        result["error"] = str(failure)
    finally:
        thaw.run("down", check=False)
        with open(os.path.join(home, "data", "daemon.log")) as f:
            result["daemon_log_tail"] = f.read()[-4000:]
        save(out_dir, result, home)
    pytorch(result)
    save(out_dir, result)
    step_time_bench(result)
    result["seconds"] = round(time.time() - began, 1)
    path = save(out_dir, result)
    log(f"result written to {path}")
    print(json.dumps({k: v for k, v in result.items() if k != "daemon_log_tail"}, indent=1))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
