"""Where a training step's time goes, by torch.profiler (`bash run.sh bench profile`).

    python3 tests/bench_profile.py [--modes dense,adapter,...] [--steps 5] [--top 12] [--peer PATH] [--ours-env NAME=VALUE ...]
                                   [--shape demo|9x512] [--clock] [--out DIR] [--trace] [--dry-run]

Each row is a real process of train_gpt.py (and, with --peer, of the challenge's script, the CPU
copy on a CPU and the CUDA one on a GPU) at one shape: on a GPU the side-by-side benchmark's
(`bash run.sh bench gpu --peer`: 9 x 512, context 1,024, 65,536 tokens a step in 8 micro-steps,
bf16 autocast, torch.compile), on a CPU the demo's (`bash run.sh`: 4 x 256, context 256, 16,384
tokens a step, fp32, no compile; ours in its 4 micro-steps, the peer in its 8). The process runs
the script itself (runpy, as `python3 script` would), with one addition from outside it: a global
optimizer hook (torch.optim.optimizer.register_optimizer_step_post_hook) counts steps by the
first optimizer that steps, so neither script is edited and both are profiled alike. After the
compile warm-up and the 10 logged steps that follow it (each a host sync), the profiler records
`--steps` steps, bracketed by a synchronize, and the process stops there: nothing is exported.

Printed per run: the wall time of a profiled step; the device's busy time in it (on a GPU the
sum of every kernel, memcpy and memset; on a CPU the sum of every operator's self time on the
main thread); the matrix work in that (GEMM and attention kernels; on a CPU mm, addmm, bmm and
the attention operators); how many kernels (operators on a CPU) a step launches, which CUDA
graphs would replay as one launch; and the top entries by self time, a step's share each. Wall
minus busy on a GPU is the time the GPU waits for the host (launch overhead, syncs); busy minus
matrix is what the issue asks to remove (elementwise, copies, optimizer kernels). The profiler
adds host work of its own, so the wall time here is above the run's unprofiled step_avg.
On a CPU, --clock replaces the profiler by a clock around every operator (a TorchDispatchMode on
the main thread: busy is then the sum of those clocks, each operator's time with whatever it calls
inside), and --shape 9x512 profiles bench --peer's second row (9 x 512 at the demo's batch, ours in the peer's 8
micro-steps there, as that row runs it).
--dry-run takes the same flow on the CPU at a tiny shape (what the tests run); no measurement.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from bench import DEMO_BATCH_TOKENS, DRY_RUN, MODES, choose, env_pairs, ours_with  # noqa: E402
from bench_peer import DATA, DEMO, MICRO, SHAPES, TOKENIZER, peer_data, peer_refusal  # noqa: E402
from tools import start_run, tool_main  # noqa: E402  (bench_peer put records/ on the path)

# GEMMs (cuBLAS: sm90_xmma_gemm_*, nvjet_*, cutlass_*; inductor's matmul templates: triton_tem_*), attention (flash, fmha,
# efficient attention, cuDNN's *sdpa*) and on a CPU the ATen operators that do that work themselves
MATRIX = re.compile(r"gemm|nvjet|cutlass|xmma|_tem_fused|flash|fmha|sdpa|attention|^aten::(mm|addmm|bmm|baddbmm)$", re.I)
LOGGED_STEPS = 10  # both scripts log (and sync on) each of their first 10 steps; the profile starts after them


class ProfileDone(Exception):
    """Raised from the optimizer hook once the profiled steps are recorded: the run stops there."""


def operator_clock():
    """A TorchDispatchMode that times every operator on the calling thread (on a CPU the call returns when its work is done):
    name -> [ms, calls]. torch.profiler misled on CPU (a step 1.5 to 2.3 times as long, small elementwise operators 10 to 20
    times theirs); this adds only a Python call an operator, so the step stays near its unprofiled time."""
    import collections
    from torch.utils._python_dispatch import TorchDispatchMode

    class OperatorClock(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.totals = collections.defaultdict(lambda: [0.0, 0])

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            started = time.perf_counter()
            result = func(*args, **(kwargs or {}))
            entry = self.totals[func.name().split(".")[0]]  # the profiler's names (aten::mm, no overload): MATRIX reads both alike
            entry[0] += 1000 * (time.perf_counter() - started)
            entry[1] += 1
            return result
    return OperatorClock()


def profile_child(script: Path, start: int, steps: int, top: int, out: Path, trace: bool, clock: bool) -> int:
    """In the run's own process: run `script` as __main__ with the hook that profiles steps start+1 .. start+steps."""
    import torch
    from torch.autograd import DeviceType
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    prof = operator_clock() if clock else profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else []))
    seen = {"first": None, "steps": 0, "t0": 0.0}

    def totals() -> dict:
        """name -> (ms, calls) over the recorded steps: the device's own time on a GPU, self time on the main thread on a CPU."""
        if clock:
            return {name: tuple(entry) for name, entry in prof.totals.items()}
        events = [e for e in prof.key_averages() if not cuda or e.device_type == DeviceType.CUDA]
        return {e.key: ((e.self_device_time_total if cuda else e.self_cpu_time_total) / 1000, e.count) for e in events}

    def after_optimizer_step(opt, args, kwargs):
        seen["first"] = seen["first"] or opt
        if opt is not seen["first"]:
            return
        seen["steps"] += 1  # a step's work runs from here to the same point of the next step
        if seen["steps"] == start:
            sync()
            prof.__enter__()
            seen["t0"] = time.perf_counter()
        elif seen["steps"] == start + steps:
            sync()
            wall_ms = 1000 * (time.perf_counter() - seen["t0"]) / steps
            prof.__exit__(None, None, None)
            ms = totals()
            busy, matrix = sum(t for t, _ in ms.values()), sum(t for name, (t, _) in ms.items() if MATRIX.search(name))
            ranked = sorted(ms, key=lambda name: ms[name][0], reverse=True)[:top]
            out.write_text(json.dumps({
                "device": torch.cuda.get_device_name(0) if cuda else "CPU", "steps": steps, "wall_ms": wall_ms,
                "busy_ms": busy / steps, "matrix_ms": matrix / steps, "calls": sum(n for _, n in ms.values()) / steps,
                "top": [{"name": name, "ms": ms[name][0] / steps, "calls": ms[name][1] / steps, "matrix": bool(MATRIX.search(name))}
                        for name in ranked]}, indent=1))
            if trace and not clock:
                prof.export_chrome_trace(str(out.with_name("trace.json")))
            raise ProfileDone

    register_optimizer_step_post_hook(after_optimizer_step)
    sys.argv = [str(script)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except ProfileDone:
        return 0
    except SystemExit as e:
        print(f"{script.name} ended (exit status {e.code}) after {seen['steps']} steps, before step {start + steps}", file=sys.stderr)
        return 1
    print(f"{script.name} returned after {seen['steps']} steps, before step {start + steps}", file=sys.stderr)
    return 1


def run_env(cuda: bool, dry_run: bool, steps: int, shape: str) -> tuple[dict, int, str]:
    """The shape both scripts run at, the hook's first profiled step (the warm-up's steps count too) and the shape in words."""
    if cuda and not dry_run:  # bench_peer --gpu's configuration at one GPU's share of the baseline step
        env = dict(SHAPES["9x512"], TRAIN_SEQ_LEN="1024", TRAIN_BATCH_TOKENS="65536", WARMUP_STEPS="10", VAL_BATCH_SIZE="65536")
        words = "9 x 512, context 1,024, 65,536 tokens a step in 8 micro-steps, bf16 autocast, torch.compile"
    else:
        env = dict(SHAPES[shape], **DEMO)  # run.sh's demo batch (DEMO_BATCH_TOKENS), at the demo's shape or bench --peer's other
        words = (f"{'the CPU demo: 4 x 256' if shape == 'demo' else '9 x 512'}, context 256, {DEMO_BATCH_TOKENS:,} tokens a step "
                 f"(ours in {MICRO[shape]} micro-steps, the peer in its 8), fp32, eager")
        if dry_run:
            env.update(DRY_RUN, TRAIN_BATCH_TOKENS="1024", VAL_BATCH_SIZE="16384")
            words = "a dry run: 2 x 64, context 64, 1,024 tokens a step, on the CPU (the flow, not a measurement)"
    start = int(env["WARMUP_STEPS"]) + LOGGED_STEPS + 2
    env.update(ITERATIONS=str(start + steps + 5), WARMDOWN_ITERS="1", MAX_WALLCLOCK_SECONDS="0", VAL_LOSS_EVERY="0",
               TRAIN_LOG_EVERY="1000000", TOKENIZER_PATH=str(TOKENIZER))
    return env, start, words


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", default="dense", help="comma list of bench.py's mode names (dense, adapter, frozen fc, ...)")
    p.add_argument("--steps", type=int, default=5, help="steps recorded by the profiler")
    p.add_argument("--top", type=int, default=12, help="entries listed per run")
    p.add_argument("--peer", type=Path, default=None, help="the challenge's script, profiled first at the same shape (dense)")
    p.add_argument("--out", type=lambda s: Path(s).absolute(), default=None,  # the runs start in folders of their own
                   help="folder kept for every run's log, stderr and profile.json (default: a new temporary one)")
    p.add_argument("--ours-env", action="append", metavar="NAME=VALUE", help="set for train_gpt.py's runs alone, not the peer's "
                   "(e.g. TORCHINDUCTOR_CUDAGRAPHS=1); repeatable")
    p.add_argument("--shape", choices=sorted(SHAPES), default=None, help="on a CPU: the demo's 4 x 256 (default) or 9 x 512, both at "
                   "the demo's batch (bench --peer's two rows); a GPU runs its side-by-side shape")
    p.add_argument("--clock", action="store_true", help="on a CPU: time each operator with a clock around it instead of "
                   "torch.profiler, which inflates small operators there")
    p.add_argument("--trace", action="store_true", help="also write each run's Chrome trace (trace.json; large on a GPU)")
    p.add_argument("--dry-run", action="store_true", help="the whole flow on this CPU at a tiny shape (what the tests run); no measurement")
    p.add_argument("--child", nargs=3, metavar=("SCRIPT", "START", "JSON"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return profile_child(Path(a.child[0]), int(a.child[1]), a.steps, a.top, Path(a.child[2]), a.trace, a.clock)
    if a.steps < 1 or a.top < 1:
        sys.exit(f"error: bench profile: --steps {a.steps} --top {a.top}: accepted whole numbers of 1 or more")
    if a.peer and not a.peer.is_file():
        sys.exit(f"error: bench profile: --peer {a.peer}: not a file; accepted the challenge's train_gpt.py (its CPU copy on a CPU)")
    if a.out and a.out.exists() and any(a.out.iterdir()):
        sys.exit(f"error: bench profile: --out {a.out}: not empty; accepted a new or empty folder (its runs would be mixed with these)")
    modes, ours_env = dict(MODES), env_pairs(a.ours_env, "bench profile")
    chosen = choose(a.modes, modes, "--modes", "bench profile")
    import torch

    cuda = torch.cuda.is_available() and not a.dry_run
    if a.peer and (refused := peer_refusal(a.peer.read_text(errors="replace"), cuda)):
        sys.exit(f"error: bench profile: --peer {a.peer}: {refused}")
    if cuda and (a.clock or a.shape == "demo"):  # a GPU's operators return before their kernels run: a host clock times launches
        sys.exit(f"error: bench profile: {'--clock' if a.clock else '--shape demo'}: CPU only; on a GPU the profiler's device "
                 "times are the kernels' own, at the side-by-side shape (9x512)")
    shape = a.shape or ("9x512" if cuda else "demo")
    base, start, words = run_env(cuda, a.dry_run, a.steps, shape)
    root = a.out or Path(tempfile.mkdtemp(prefix="bench_profile_"))
    print(f"runs in {root}", file=sys.stderr)
    runs = ([("peer: dense", a.peer.resolve(), {"DATA_PATH": str(peer_data(root / "peer_data"))})] if a.peer else []) + [
        (name, ROOT / "train_gpt.py", {"DATA_PATH": str(DATA), **({} if cuda else {"GRAD_ACCUM_STEPS": str(MICRO[shape])}), **modes[name], **ours_env})
        for name in chosen]
    results = {}
    for name, script, env in runs:
        folder = root / re.sub(r"[^a-z0-9]+", "_", name)
        folder.mkdir(parents=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--steps", str(a.steps), "--top", str(a.top),
                   *(["--trace"] if a.trace else []), *(["--clock"] if a.clock else []), "--child", str(script), str(start), str(folder / "profile.json")]
        started = time.time()
        with open(folder / "stderr.txt", "w") as stderr:
            status = start_run(command, cwd=folder, env={**os.environ, **base, **env, "RUN_ID": "profiled"},
                               stdout=subprocess.DEVNULL, stderr=stderr).wait()
        if status:
            tail = (folder / "stderr.txt").read_text().strip().splitlines()[-1:]
            print(f"error: bench profile: {name} failed: {tail[0] if tail else f'exit status {status}'}; its log and stderr are in {folder}",
                  file=sys.stderr)
            return 1
        results[name] = json.loads((folder / "profile.json").read_text())
        print(f"bench profile: {name}: {time.time() - started:.0f} s (its profile.json is kept)", file=sys.stderr, flush=True)
    device = next(iter(results.values()))["device"]
    print(f"# Profile of a training step, {datetime.date.today()}, {device}, torch {torch.__version__}\n\n{words}; "
          f"{a.steps} step{'s' * (a.steps != 1)} recorded after {start} steps (compile warm-up and the logged steps); times are per step, "
          f"{'a clock around each operator' if a.clock else 'torch.profiler'}"
          + ours_with(ours_env) + "\n")
    print(f"| run | wall (ms) | busy (ms) | busy / wall | matrix work (ms) | matrix / busy | {'kernels' if cuda else 'operators'} a step |"
          "\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['wall_ms']:.1f} | {r['busy_ms']:.1f} | {r['busy_ms'] / r['wall_ms']:.0%} | {r['matrix_ms']:.1f} | "
              f"{r['matrix_ms'] / max(r['busy_ms'], 1e-9):.0%} | {r['calls']:,.0f} |")
    for name, r in results.items():
        print(f"\n## {name}: top {len(r['top'])} by self time\n\n| entry | ms a step | % of busy | calls a step | matrix |\n|---|---|---|---|---|")
        for e in r["top"]:
            short = e["name"] if len(e["name"]) <= 90 else e["name"][:87] + "..."
            print(f"| `{short.replace('|', '/')}` | {e['ms']:.2f} | {e['ms'] / max(r['busy_ms'], 1e-9):.1%} | {e['calls']:g} | "
                  f"{'yes' if e['matrix'] else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench profile"))
