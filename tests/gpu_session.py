"""One lent GPU session, prepared (`bash run.sh bench gpu-session --out DIR`): what is still unmeasured on a GPU, in order of
importance, each stage a command of its own under one deadline, with everything it prints and every run's folder kept under --out
as it goes. A lent machine gives a session 15 minutes in all and 10 a command, and a run there took 54-98 s, most of it compiling
(H100, 2026-11-23): so a stage that would not end in the time left is skipped and said so, a stage the deadline cuts short is
stopped (its process group) and keeps what it made, and the stages not reached are named for a second command.

    python3 tests/gpu_session.py --out DIR [--budget 540] [--peer .peer/official_train_gpt.py] [--dry-run] [STAGE ...]

Stages (default: all, in this order; name some to run only those):
  machine     nvidia-smi, torch, CPU count and date
  dense       bench gpu --peer: dense at 65,536 tokens a step, 3 interleaved pairs (the target: at most 0.9x the peer's step)
  cuda        tests/test_cuda.py but its per-mode end-to-end runs: golden bits, compiled steps, training steps, evaluation and
              loader without syncs, the non-finite loss that stops a run with nothing written, more processes than GPUs
  modes       bench gpu --peer: every FREEZE_MODE at 65,536 against the peer's dense step (target 1.0x), 1 pair
  dense524k   bench gpu --peer: dense at 524,288 tokens (8 micro-steps, the baseline's single-GPU run), 1 pair, 50 steps
  profile     bench profile --peer: the kernels of a dense step of each script, busy and idle time, the matrix share
  cudagraphs  the dense row again with TORCHINDUCTOR_CUDAGRAPHS=1 for train_gpt.py alone, 1 pair
  e2e         tests/test_cuda.py's per-mode end-to-end runs (a real run of each mode, its artifact evaluated again on CPU)

Files under --out: session.txt (what ran, when, how long, its exit status, what was skipped), <stage>.md (its stdout: the
table), <stage>.err (its stderr), <stage>/ (its runs' folders: logs, stderr). --dry-run takes every stage's flow on this CPU
(the benchmarks' own --dry-run; the CUDA tests skip themselves), which is what the tests run: the plumbing is checked here, not on
a lent GPU. On a lent machine the peer must be copied into the working tree first (`mkdir -p .peer && cp
../shared/peers/official_train_gpt.py .peer/`, carried with the tree), with the embedded corpus (`bash run.sh data`) carried too.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "records"))
from tools import start_run, tool_main  # noqa: E402  (a signal to the session reaches its stage, and the stage's runs)
PY = sys.executable
CUDA_TESTS = [PY, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/test_cuda.py"]  # -v: each result as it ends (a cut stage keeps them)


def stages(a) -> dict[str, tuple[int, list[list[str]]]]:
    """{name: (seconds it is expected to take on a GPU, its commands)}: the machine stage names the code it measured (its sha256)."""
    peer, out, dry = str(a.peer), a.out, ["--dry-run"] if a.dry_run else []
    steps = ["--gpu-steps", "20"] if a.dry_run else []  # a dry run's runs: the fewest steps a GPU run takes (and last: they win)
    bench = lambda name, *args: [PY, "tests/bench_peer.py", "--gpu", "--peer", peer, "--out", str(out / name), *args, *dry, *steps]
    return {
        "machine": (10, [["nvidia-smi"], [PY, "-c", "import hashlib, os, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, "
                                               "'cpus', os.cpu_count(), 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name(0)); "
                                               "print('train_gpt.py sha256', hashlib.sha256(open('train_gpt.py', 'rb').read()).hexdigest())"]]),
        "dense": (300, [bench("dense", "--gpu-tokens", "65536", "--gpu-modes", "", "--pairs", "1" if a.dry_run else "3")]),
        "cuda": (240, [CUDA_TESTS + ["-k", "not every_mode_trains"]]),
        "modes": (360, [bench("modes", "--gpu-tokens", "", "--pairs", "1")]),
        "dense524k": (200, [bench("dense524k", "--gpu-tokens", "524288", "--gpu-modes", "", "--pairs", "1", "--gpu-steps", "50")]),
        "profile": (180, [[PY, "tests/bench_profile.py", "--peer", peer, "--out", str(out / "profile"), *dry]]),
        "cudagraphs": (120, [bench("cudagraphs", "--gpu-tokens", "65536", "--gpu-modes", "", "--pairs", "1",
                                   "--ours-env", "TORCHINDUCTOR_CUDAGRAPHS=1")]),
        "e2e": (420, [CUDA_TESTS + ["-k", "every_mode_trains"]]),
    }


def run_stage(cmds: list[list[str]], out: Path, name: str, deadline: float) -> str:
    """The stage's commands one after another, stdout to <name>.md, stderr to <name>.err; at the deadline the running one's
    process group (the benchmark and its runs) is stopped. Returns how it ended, for session.txt."""
    with open(out / f"{name}.md", "w") as stdout, open(out / f"{name}.err", "w") as stderr:
        for cmd in cmds:
            if not shutil.which(cmd[0]):
                stdout.write(f"({cmd[0]}: not found on this machine)\n")
                stdout.flush()  # before the next command writes to the same file
                continue
            proc = start_run(cmd, cwd=ROOT, stdout=stdout, stderr=stderr)  # a group of its own: the deadline stops the stage whole
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                return "stopped at the deadline (what it made is kept)"
            if rc:
                return f"exit status {rc}"
    return "exit status 0"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="a new or empty folder for everything the session makes")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole session (a lent command's 600, less a margin)")
    p.add_argument("--peer", type=Path, default=ROOT / ".peer" / "official_train_gpt.py", help="the challenge's CUDA script")
    p.add_argument("--dry-run", action="store_true", help="every stage's flow on this CPU (what the tests run); no measurement")
    p.add_argument("stages", nargs="*", help="the stages to run, in the given order (default: all)")
    a = p.parse_args(argv)
    a.out, a.peer = a.out.resolve(), a.peer.resolve()
    plan = stages(a)
    unknown = [s for s in a.stages if s not in plan]
    refusal = (f"stage {unknown[0]!r}: unknown; accepted: {', '.join(plan)}" if unknown else
               f"--budget {a.budget:g}: accepted a positive number of seconds" if not a.budget > 0 else
               f"--peer {a.peer}: not a file; copy the challenge's CUDA script in first (mkdir -p .peer && cp "
               "../shared/peers/official_train_gpt.py .peer/)" if not a.peer.is_file() else
               f"--out {a.out}: not empty; give a new or empty folder" if a.out.is_dir() and any(a.out.iterdir()) else None)
    try:
        if not refusal:
            a.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file there, or no permission
        refusal = f"--out {a.out}: cannot be made ({e.strerror or e}); give a new or empty folder"
    if refusal:
        print(f"error: gpu_session: {refusal}", file=sys.stderr)
        return 2
    start, deadline, names = time.time(), time.time() + a.budget, a.stages or list(plan)
    def log(msg: str) -> None:  # on stderr as it happens, and in session.txt
        print(msg, file=sys.stderr, flush=True)
        with open(a.out / "session.txt", "a") as f:
            f.write(msg + "\n")
    log(f"gpu_session {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, budget {a.budget:.0f} s"
        + (" (dry run on this CPU: the flow, not a measurement)" if a.dry_run else "") + f": {' '.join(names)}")
    skipped = []
    for name in names:
        expected, cmds = plan[name]
        left = deadline - time.time()
        if left < expected:
            skipped.append(name)
            log(f"{name}: skipped, expected to take about {expected} s and {left:.0f} s are left")
            continue
        t0 = time.time()
        log(f"{name}: started at +{t0 - start:.0f} s")
        ended = run_stage(cmds, a.out, name, deadline)
        log(f"{name}: {ended} after {time.time() - t0:.0f} s")
    if skipped:
        log(f"not run, for the next command: {' '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(tool_main(main, "gpu_session", grace=40.0))  # its stage, a benchmark, gives its runs 20 s
