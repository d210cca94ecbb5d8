"""train_gpt.py beside the challenge's own script on this CPU (`bash run.sh bench --peer PATH`).

    python3 tests/bench_peer.py --peer ../shared/peers/official_train_gpt_cpu.py [--pairs 3] [--steps 12]
                                [--shapes demo,9x512] [--micro 4,8] [--equal-time 300] [--equal-pairs 1] [--out DIR]

Both scripts run as real processes on the embedded Shakespeare shards (the peer reads them
through a folder of `fineweb_*` links, the names it globs for), one after the other and
interleaved (peer, ours, peer, ours, ...), at the same configuration: the same model, the same
tokens a step, the same optimizer settings. The peer always takes 8 micro-steps a step on one
process; ours takes the demo's 4 at the demo's shape (as `bash run.sh`: the same tokens in fewer,
larger micro-batches) and the peer's own 8 at 9 x 512 (`MICRO`), or each of `--micro`'s splits
(GRAD_ACCUM_STEPS; a comma list: every pair then runs the peer and ours at each, a row each).
A run is stopped once it has logged `--steps` steps; its step time is the median of the
differences of the logged `train_time` after the first two steps. The table gives, per shape,
the median over the pairs of each script's step time, their range, and the ratio ours/peer.
Every run's folder (its log, its stderr, anything it wrote) is kept under `--out` (by default a new
temporary folder, named on stderr): the raw output behind each figure.

First, the same arithmetic: both scripts train `--exact-steps` steps at the demo's shape with 8
micro-steps (ours with GRAD_ACCUM_STEPS=8) and write final_model.pt; the two state dicts are
compared tensor by tensor (the peer's c_q, c_k, c_v and attn.proj are our q, k, v and o). Where
they differ, a second pair runs, and each script's two runs are compared too: on 2026-12-03 4 of
52 runs of the peer on the Intel Xeon ended a few last bits away from its others, each time on the
same other weights (round-trip val_loss 6.40534891 against 6.40534892), while every run of ours
(over 40) was bit-identical.

Last, the equal-time pair: the peer with the CPU demo's settings and `bash run.sh`'s own
configuration, each trained for `--equal-time` seconds and evaluated by its own round trip;
the table gives steps done and the final round-trip val_bpb of each.

With `--gpu` (`bash run.sh bench gpu --peer ../shared/peers/official_train_gpt.py`), on one GPU
with both scripts' CUDA defaults (bf16 autocast, torch.compile), at the baseline's shape (9 x 512,
context 1,024): dense at 65,536 tokens a step (one GPU's share of the 8-GPU step), dense at the
baseline's own single-GPU 524,288 tokens (8 micro-steps), and every FREEZE_MODE at 65,536 against
the peer's dense step (`--gpu-modes` picks some, `--gpu-tokens` the dense rows; with no dense row at
65,536 the first mode's row runs the peer's dense step itself, so a GPU session's time limits can
split the table over several commands). Both take 8 micro-steps (GRAD_ACCUM_STEPS=0 means 8 / world size, as in
the peer). Each run: 10 compile warm-up steps, then `--gpu-steps` steps, logged at steps 1-10 and
every 10th after (so the steps between make no host sync in either script); a step's time is the
median over the 10-step spans from step 10 on. A run goes on past its last step's validation to
its `peak memory allocated` line, and is stopped there (no export). Besides the step time: tokens/s,
peak memory (that line of each script) and the achieved TFLOP/s against the GPU's dense bf16
peak, with a step's FLOPs counted from the shapes as in tests/bench.py: 6 per weight per token
for every matrix multiply (forward 2, backward 4), the tied head included, plus 6 x context x
head_dim per token, head and layer for causal attention (the full square, as the kernels compute
it, masked half and all). `--gpu --dry-run` runs that whole flow on the CPU at a tiny shape
(2 x 64, context 64, 1/64 of the tokens a step: 1,024 and 8,192), so the tests check the making of the GPU
table without a GPU; its numbers measure nothing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "datasets" / "shakespeare_sp1024"
TOKENIZER = ROOT / "data" / "tokenizers" / "shakespeare_1024_bpe.model"
SHAPES = {"demo": dict(NUM_LAYERS="4", MODEL_DIM="256", NUM_HEADS="4", NUM_KV_HEADS="2"),
          "9x512": dict(NUM_LAYERS="9", MODEL_DIM="512", NUM_HEADS="8", NUM_KV_HEADS="4")}
# the CPU demo's settings (run.sh cpu_defaults), shared by both scripts
DEMO = dict(TRAIN_SEQ_LEN="256", TRAIN_BATCH_TOKENS="16384", WARMUP_STEPS="0", WARMDOWN_ITERS="60", VAL_LOSS_EVERY="0", TRAIN_LOG_EVERY="1",
            VAL_BATCH_SIZE="32768", ITERATIONS="2000")
OURS = dict(GRAD_ACCUM_STEPS="4", EVAL_STRIDE="128")  # the rest of run.sh's demo, which the peer has no variable for
# ours' micro-steps per shape: the demo's as run.sh; at 9 x 512, which no run.sh command trains, the peer's own 8: the same micro-batches,
# so that the row compares the two scripts' work alone (on the AMD EPYC in 8 it also stepped faster than in 4 on 2026-12-07: README)
MICRO = {"demo": int(OURS["GRAD_ACCUM_STEPS"]), "9x512": 8}
STEP = re.compile(r"^step:(\d+)/\d+ train_loss:\S+ train_time:([\d.]+)ms", re.M)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def peer_data(folder: Path) -> Path:
    """The Shakespeare shards under the names the peer globs for (fineweb_train_*.bin, fineweb_val_*.bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in sorted(DATA.glob("*.bin")):
        link = folder / ("fineweb_" + shard.name.split("_", 1)[1])
        if not link.exists():
            link.symlink_to(shard)
    return folder


def run(script: Path, env: dict, work: Path, run_id: str, stop_at: str | None, timeout: float) -> str:
    """One real process in its own folder; stopped (SIGTERM) once its log has a line that matches the regex `stop_at`. Returns its log.
    Its stderr goes to a file, never a pipe: a compiler's warnings would fill a pipe and stall the run."""
    work.mkdir(parents=True, exist_ok=True)
    log, err = work / "logs" / f"{run_id}.txt", work / "stderr.txt"
    env = {**os.environ, **env, "RUN_ID": run_id}
    with open(err, "w") as stderr:
        proc = start_run([sys.executable, str(script)], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        started = time.time()
        while proc.poll() is None and time.time() < started + timeout:
            if stop_at and log.exists() and re.search(stop_at, log.read_text(), re.M):
                break
            time.sleep(0.2)
        ended = proc.poll() is not None  # on its own; else it is stopped here (at its line, or at the timeout)
        if not ended:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    # each run's wall time, as it ends: what a time-limited session (a lent GPU) plans its next command by
    print(f"bench_peer: {work.name}: {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    text = log.read_text() if log.exists() else ""
    failed = ended and proc.returncode and not (stop_at and re.search(stop_at, text, re.M))  # it ended on its own, short of its line
    if not text or failed:  # its stderr says why; the steps it logged, if any, would only mislead the table
        sys.exit(f"error: bench_peer: {script} {f'exited with status {proc.returncode}' if failed else 'wrote no log'} in {work}; "
                 f"its stderr ({err}) ends:\n{err.read_text()[-2000:]}")
    return text


def at_step(step: int) -> str:
    """The regex of step `step`'s train_loss line (both scripts log `step:S/T train_loss:...`)."""
    return rf"^step:{step}/\d+ train_loss"


def step_ms(log: str, first: int = 3) -> float:
    """Median time of a step from the logged train_time of steps `first` and after: each difference between two logged
    steps divided by the steps between them (logging every step: the step times themselves)."""
    points = [(int(s), float(t)) for s, t in STEP.findall(log) if int(s) >= first]
    per_step = [(tb - ta) / (sb - sa) for (sa, ta), (sb, tb) in zip(points, points[1:])]
    if not per_step:
        sys.exit(f"error: bench_peer: a run logged fewer than two steps from step {first} on")
    return statistics.median(per_step)


def final(log: str) -> tuple[int, float]:
    stopped = re.search(r"^stopping_early: wallclock_cap train_time:\S+ step:(\d+)/", log, re.M)
    steps = int(stopped.group(1)) if stopped else max(int(s) for s, _ in STEP.findall(log))
    bpb = float(re.search(r"^final_int8_zlib_roundtrip_exact val_loss:\S+ val_bpb:([\d.]+)", log, re.M).group(1))
    return steps, bpb


sys.path.insert(0, str(ROOT / "records"))
from tools import house_name, start_run, tool_main  # noqa: E402  (the house's names of q, k, v and o as ours; runs stop with us)


def same_weights(peer_pt: Path, ours_pt: Path) -> str:
    """Tensor by tensor, each file's names as ours (house_name leaves ours as they are: two runs of one script compare too)."""
    import torch

    theirs, ours = ({house_name(k): v for k, v in torch.load(f, weights_only=True).items()} for f in (peer_pt, ours_pt))
    if theirs.keys() != ours.keys():
        return f"different names: {sorted(set(theirs) ^ set(ours))[:4]}"
    differ = [k for k in ours if not torch.equal(theirs[k].float(), ours[k].float())]
    return "yes, every tensor" if not differ else f"no: {len(differ)} of {len(ours)} tensors differ (first: {differ[0]})"


def export_difference(peer: Path, ours: Path) -> str:
    """The two round trips of the same weights: each script's logged score, and the peer's int8 rows (its artifact, the house's
    format) against this script's quantizer on the peer's final_model.pt: fp16 scales equal, int8 values apart by how many levels."""
    import io
    import zlib

    import torch
    sys.path.insert(0, str(ROOT))
    from train_gpt import quantize_rows_int8

    scores = [re.search(r"^final_int8_zlib_roundtrip_exact val_loss:(\S+)", (d / "logs" / f"{d.name}.txt").read_text(), re.M).group(1)
              for d in (peer, ours)]
    blob = torch.load(io.BytesIO(zlib.decompress((peer / "final_model.int8.ptz").read_bytes())), weights_only=True)
    if not isinstance(blob, dict) or "quantized" not in blob:
        return f"round-trip val_loss peer {scores[0]}, ours {scores[1]} (the peer's artifact is not in the house's format)"
    weights, rows, same_scales, values, apart = torch.load(peer / "final_model.pt", weights_only=True), 0, 0, 0, {}
    for name, q in blob["quantized"].items():
        w = weights[name]
        our_q, our_scale = quantize_rows_int8(w if w.ndim == 2 else w.reshape(1, -1))
        rows, same_scales = rows + our_scale.numel(), same_scales + int((our_scale == blob["scales"][name]).sum())
        diff = (our_q.reshape(q.shape).int() - q.int()).abs()
        values += q.numel()
        for level in diff.unique().tolist():
            apart[level] = apart.get(level, 0) + int((diff == level).sum())
    say = lambda level, n: f"{n:,} equal" if level == 0 else f"{n:,} {level} level{'s' * (level > 1)} apart"
    return (f"round-trip val_loss peer {scores[0]}, ours {scores[1]}; fp16 scales equal in {same_scales:,} of {rows:,} rows; of "
            f"{values:,} int8 values " + ", ".join(say(level, n) for level, n in sorted(apart.items())))


def spread(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def peer_refusal(source: str, gpu: bool) -> str | None:
    """Why a --peer's source is not what this run needs, by what the challenge's script and its CPU copy hold; None if it is."""
    if "class Hyperparameters" not in source or "val_bpb" not in source:  # (this project's train_gpt.py stands in for it in the tests)
        return "not the challenge's train_gpt.py (no Hyperparameters class, no val_bpb); accepted its CPU copy (its CUDA one with --gpu)"
    if not gpu and 'raise RuntimeError("CUDA is required")' in source:
        return "the challenge's CUDA script, which refuses to start without a GPU; the CPU benchmark runs its CPU copy, official_train_gpt_cpu.py"
    if gpu and 'device = torch.device("cpu")' in source:
        return "the challenge's script forced onto the CPU; --gpu runs the original, official_train_gpt.py"
    return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", type=Path, required=True, help="the challenge's script forced onto the CPU")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="steps logged by each timed run (the first two are not timed)")
    ap.add_argument("--shapes", default="demo,9x512")
    ap.add_argument("--micro", default=None, help="our GRAD_ACCUM_STEPS, a comma list run in each pair (default: MICRO's, per shape; "
                    "the peer always takes 8)")
    ap.add_argument("--exact-steps", type=int, default=4, help="steps of the bit-identity check; 0 = skip it")
    ap.add_argument("--equal-time", type=float, default=300.0, help="seconds of training in the equal-time pair; 0 = skip it")
    ap.add_argument("--equal-pairs", type=int, default=1)
    ap.add_argument("--gpu", action="store_true", help="the GPU side by side (needs CUDA and the peer's CUDA script)")
    ap.add_argument("--gpu-steps", type=int, default=100, help="timed steps of a GPU run (a multiple of 10)")
    ap.add_argument("--gpu-modes", default=None, help="with --gpu: the FREEZE_MODE rows, comma-separated as bench.py names them; default all")
    ap.add_argument("--gpu-tokens", default="65536,524288", help="with --gpu: the dense rows' tokens a step (multiples of 8,192; '' = none)")
    ap.add_argument("--dry-run", action="store_true", help="with --gpu: its whole flow on this CPU at a tiny shape (what the tests run)")
    ap.add_argument("--out", type=lambda s: Path(s).absolute(), default=None,  # the runs start in folders of their own
                    help="folder kept for every run's log and stderr (default: a new temporary folder)")
    ap.add_argument("--ours-env", action="append", metavar="NAME=VALUE", help="set for train_gpt.py's timed runs alone, not the peer's "
                    "(to try an option beside the unchanged peer, e.g. TORCHINDUCTOR_CUDAGRAPHS=1); repeatable")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from bench import at_least, choose, env_pairs
    a.ours_env = env_pairs(a.ours_env, "bench_peer")
    choose(a.shapes, SHAPES, "--shapes", "bench_peer", empty_ok=True)  # '' skips the step times
    at_least("bench_peer", pairs=(a.pairs, 1), steps=(a.steps, 4), exact_steps=(a.exact_steps, 0), equal_pairs=(a.equal_pairs, 1))
    if a.micro is not None and not re.fullmatch(r"[1-9]\d{0,3}(,[1-9]\d{0,3})*", a.micro):
        sys.exit(f"error: bench_peer: --micro {a.micro!r}: accepted a comma list of micro-steps a step, 1 to 9999 each (e.g. 4,8)")
    splits = [int(m) for m in a.micro.split(",")] if a.micro else None
    if not a.peer.is_file():
        sys.exit(f"error: bench_peer: --peer {a.peer}: not a file; accepted the challenge's train_gpt.py (its CPU copy; its CUDA one with --gpu)")
    if refused := peer_refusal(a.peer.read_text(errors="replace"), a.gpu and not a.dry_run):  # /etc/passwd ran, and failed as a SyntaxError
        sys.exit(f"error: bench_peer: --peer {a.peer}: {refused}")
    if a.out and a.out.is_dir() and any(a.out.iterdir()):  # the peer appends to its logs: a second run there would read the first's steps
        sys.exit(f"error: bench_peer: --out {a.out}: not empty; give a new or empty folder (the runs already there are left as they are)")
    rows = gpu_rows(a) if a.gpu else None
    tmp = a.out or Path(tempfile.mkdtemp(prefix="bench_peer_gpu_" if a.gpu else "bench_peer_"))
    print(f"bench_peer: each run's folder (log, stderr) is kept under {tmp}", file=sys.stderr)
    if a.gpu:
        return gpu_side_by_side(a, tmp, *rows)
    data = {"peer": str(peer_data(tmp / "peer_data")), "ours": str(DATA)}
    scripts = {"peer": a.peer.resolve(), "ours": ROOT / "train_gpt.py"}
    extra = {"peer": {}, "ours": {"EVAL_STRIDE": "0", **a.ours_env}}
    print(f"# train_gpt.py beside {a.peer.name}: {cpu_name()}, {os.cpu_count()} cores, {datetime.date.today()}, fp32, eager\n")
    if a.exact_steps:
        def exact_pair(suffix: str) -> str:
            for who in ("peer", "ours"):
                env = {**DEMO, **SHAPES["demo"], "ITERATIONS": str(a.exact_steps), "MAX_WALLCLOCK_SECONDS": "0", "DATA_PATH": data[who],
                       "TOKENIZER_PATH": str(TOKENIZER), **({"GRAD_ACCUM_STEPS": "8", "EVAL_STRIDE": "0"} if who == "ours" else {})}
                run(scripts[who], env, tmp / f"exact_{who}{suffix}", f"exact_{who}{suffix}", None, 1800)
            return same_weights(tmp / f"exact_peer{suffix}" / "final_model.pt", tmp / f"exact_ours{suffix}" / "final_model.pt")

        verdict = exact_pair("")
        if not verdict.startswith("yes"):  # a second pair tells the scripts' difference from a run's own noise on this CPU
            again = exact_pair("_2")
            itself = {who: same_weights(*(tmp / f"exact_{who}{s}" / "final_model.pt" for s in ("", "_2"))) for who in ("peer", "ours")}
            verdict += (f"; a second pair: {again}; each script's second run against its first: peer {itself['peer']}, ours "
                        f"{itself['ours']}" + ("" if all(v.startswith("yes") for v in itself.values()) else
                                               " (a script unlike itself: this CPU's run-to-run noise, not a difference of the scripts)"))
        print(f"Bit-identical weights after {a.exact_steps} steps at the demo's shape, 8 micro-steps each: {verdict}")
        print(f"Their artifacts: {export_difference(tmp / 'exact_peer', tmp / 'exact_ours')}\n")
    shapes = [shape for shape in a.shapes.split(",") if shape]  # --shapes '' skips the step times
    if shapes:
        print(f"Step time (ms), median of {a.pairs} interleaved pairs (range); {a.steps} logged steps a run, the first two not timed; "
              f"peer: 8 micro-steps{''.join(f'; ours with {k}={v}' for k, v in a.ours_env.items())}\n")
        print("| shape | tokens/step | ours' micro-steps | peer | train_gpt.py | ratio |\n|---|---|---|---|---|---|")
    for shape in shapes:
        runs = {"peer": (scripts["peer"], {"DATA_PATH": data["peer"]})} | {
            f"ours{micro}": (scripts["ours"], {**extra["ours"], "GRAD_ACCUM_STEPS": str(micro), "DATA_PATH": data["ours"]})
            for micro in splits or [MICRO[shape]]}
        times = {name: [] for name in runs}
        for pair in range(a.pairs):
            for name, (script, own) in runs.items():  # the peer, then ours at each split
                env = {**DEMO, **SHAPES[shape], **own, "MAX_WALLCLOCK_SECONDS": "0", "TOKENIZER_PATH": str(TOKENIZER)}
                times[name].append(step_ms(run(script, env, tmp / f"{shape}_{name}_{pair}", f"{name}_{pair}", at_step(a.steps), 1800)))
        for name in list(runs)[1:]:
            ratios, ratio = [o / p for o, p in zip(times[name], times["peer"])], statistics.median(times[name]) / statistics.median(times["peer"])
            print(f"| {shape} | {DEMO['TRAIN_BATCH_TOKENS']} | {name[4:]} | {spread(times['peer'], '.0f')} | {spread(times[name], '.0f')} | "
                  f"{ratio:.3f} (pairs {min(ratios):.3f}-{max(ratios):.3f}) |", flush=True)
    if a.equal_time > 0:
        print(f"\nEqual time: {a.equal_time:.0f} s of training each, the CPU demo's shape and settings; ours as `bash run.sh` runs it\n")
        print("| pair | peer steps | peer val_bpb | train_gpt.py steps | train_gpt.py val_bpb |\n|---|---|---|---|---|")
        for pair in range(a.equal_pairs):
            row = []
            for who in ("peer", "ours"):
                env = {**DEMO, **SHAPES["demo"], **extra[who], "MAX_WALLCLOCK_SECONDS": str(a.equal_time), "TRAIN_LOG_EVERY": "25",
                       "DATA_PATH": data[who], "TOKENIZER_PATH": str(TOKENIZER)}
                if who == "ours":  # run.sh's own demo: its micro-steps, and the sliding evaluation after the plain one
                    env.update(OURS)
                row.extend(final(run(scripts[who], env, tmp / f"equal_{who}_{pair}", f"eq_{who}_{pair}", None, a.equal_time + 900)))
            print(f"| {pair + 1} | {row[0]} | {row[1]:.4f} | {row[2]} | {row[3]:.4f} |", flush=True)


GPU_LOG_EVERY = 10  # both scripts log steps 1-10, then every 10th: the steps between do not wait for the GPU (no host sync)
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}  # dense, no sparsity


def gpu_rows(a) -> tuple[list[str], dict]:
    """--gpu's arguments checked before anything runs or is made: the dense rows' tokens and the modes {name: env} to run."""
    import torch
    from bench import MODES, choose  # (main put tests/ on the path)

    if not torch.cuda.is_available() and not a.dry_run:
        sys.exit("error: bench_peer: --gpu needs a CUDA device")
    if a.gpu_steps < 2 * GPU_LOG_EVERY:
        sys.exit(f"error: bench_peer: --gpu-steps {a.gpu_steps}: too few; accepted {2 * GPU_LOG_EVERY} or more (a 10-step span at least)")
    dense = [t for t in a.gpu_tokens.split(",") if t]
    if not all(t.isdigit() and int(t) > 0 and int(t) % 8192 == 0 for t in dense):
        sys.exit(f"error: bench_peer: --gpu-tokens {a.gpu_tokens!r}: accepted a comma list of multiples of 8,192 (8 micro-steps of context 1,024)")
    modes = dict(MODES[1:])
    names = list(modes) if a.gpu_modes is None else choose(a.gpu_modes, modes, "--gpu-modes", "bench_peer", empty_ok=True)
    return dense, {name: env for name, env in modes.items() if name in names}


def gpu_side_by_side(a, tmp: Path, dense: list[str], modes: dict) -> None:
    import torch
    from bench import DRY_RUN, dense_step_flops, ours_with

    sys.path.insert(0, str(ROOT))
    import train_gpt

    gpu = "CPU (a dry run: the flow, not a measurement)" if a.dry_run else torch.cuda.get_device_name(0)
    peak = next((v for k, v in BF16_PEAK.items() if k in gpu), None)
    data, scripts = {"peer": str(peer_data(tmp / "peer_data")), "ours": str(DATA)}, {"peer": a.peer.resolve(), "ours": ROOT / "train_gpt.py"}
    base = dict(SHAPES["9x512"], TRAIN_SEQ_LEN="1024", WARMUP_STEPS="10", ITERATIONS=str(a.gpu_steps), WARMDOWN_ITERS=str(a.gpu_steps // 5),
                MAX_WALLCLOCK_SECONDS="0", VAL_LOSS_EVERY="0", TRAIN_LOG_EVERY=str(GPU_LOG_EVERY), VAL_BATCH_SIZE="65536",
                TOKENIZER_PATH=str(TOKENIZER))
    shrink = 64 if a.dry_run else 1  # a dry run: a tiny model on the CPU at 1/64 the tokens (context 64), every line of the table in seconds
    if a.dry_run:
        base.update(DRY_RUN, VAL_BATCH_SIZE="16384")
    runs = [("dense", {}, t) for t in dense] + [(name, env, "65536") for name, env in modes.items()]  # modes: at one GPU's share
    configs = [(f"{name} {int(tokens) // shrink:,}", str(int(tokens) // shrink), env) for name, env, tokens in runs]
    print(f"# train_gpt.py beside {a.peer.name} on {gpu}, torch {torch.__version__}, {datetime.date.today()}; bf16 peak "
          f"{peak / 1e12 if peak else float('nan'):.0f} TFLOP/s; median of {a.pairs} interleaved pairs (range)"
          + ours_with(a.ours_env) + "\n")
    print("| configuration | peer step (ms) | train_gpt.py step (ms) | ratio | tokens/s ours | peak MiB peer | peak MiB ours | TFLOP/s ours | "
          "% of bf16 peak |\n|---|---|---|---|---|---|---|---|---|")
    peer_dense: dict[str, tuple] = {}
    for name, tokens, mode in configs:
        times, mem = {"peer": [], "ours": []}, {"peer": [], "ours": []}
        for pair in range(a.pairs):
            for who in ("peer", "ours"):
                if who == "peer" and tokens in peer_dense:  # every mode against the peer's dense step at the same tokens
                    times["peer"], mem["peer"] = peer_dense[tokens]
                    continue  # (without a dense row at these tokens, the first mode's row runs the peer's dense step itself)
                ours = {**mode, "EVAL_STRIDE": "0", **a.ours_env} if who == "ours" else {}
                env = {**base, "TRAIN_BATCH_TOKENS": tokens, "DATA_PATH": data[who], **ours}
                # on to the line after training, the peak memory (past the last step's validation); then stopped, no export
                log = run(scripts[who], env, tmp / f"{name.replace(' ', '_')}_{who}_{pair}", f"{who}_{pair}", r"^peak memory", 3600)
                times[who].append(step_ms(log, first=GPU_LOG_EVERY))
                found = re.search(r"^peak memory (?:allocated|rss): (\d+) MiB", log, re.M)  # rss: the dry run's CPU
                mem[who].append(int(found.group(1)) if found else float("nan"))
        peer_dense.setdefault(tokens, (times["peer"], mem["peer"]))
        ours_ms = statistics.median(times["ours"])
        flops = dense_step_flops(train_gpt.Hyperparameters({**base, "TRAIN_BATCH_TOKENS": tokens}), int(tokens)) / (ours_ms / 1000)
        print(f"| {name} | {spread(times['peer'], '.1f')} | {spread(times['ours'], '.1f')} | {ours_ms / statistics.median(times['peer']):.3f} | "
              f"{int(tokens) / ours_ms * 1000:,.0f} | {statistics.median(mem['peer']):,.0f} | {statistics.median(mem['ours']):,.0f} | "
              f"{flops / 1e12:.0f} | {100 * flops / peak if peak else float('nan'):.0f}% |", flush=True)


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench_peer"))
