"""GPU step time per mode at the baseline shape, printed as a markdown table (`bash run.sh bench gpu`).

    python3 tests/bench_gpu.py [--steps 100] [--batch-tokens 65536] [--modes dense,adapter,...]

Each mode is a real train_gpt.py process on one GPU with the defaults of the CUDA path (bf16
autocast, torch.compile(fullgraph=True), compiled Newton-Schulz) at the baseline shape (9 x 512,
8 heads / 4 KV, MLP x2, vocabulary 1,024, context 1,024). A step is 65,536 tokens: one GPU's
share of the baseline's 524,288-token step on 8 GPUs, so the step time here is what each of the
eight GPUs spends on compute in a challenge step (the all-reduce comes on top). The data is the
embedded corpus (same vocabulary size as FineWeb sp1024; the step time does not depend on the
text). The modes run one after another, alone on the GPU, and the table reads their own log
lines: step_avg at the last step, peak memory, artifact bytes, val_bpb and sliding-eval time;
the process's wall time shows what start-up and compilation cost on top (outside the timer).
--dry-run takes the same flow on the CPU at a tiny shape (2 x 64, context 64): what the tests run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "records"))
from bench import DRY_RUN, MODES, at_least, choose  # noqa: E402  (the same modes as the CPU benchmark)
from tools import parse_log, start_run, tool_main  # noqa: E402


def mode_env(env: dict, steps: int, batch_tokens: int, run_id: str) -> dict:
    ours = {"DATA_PATH": str(ROOT / "data/datasets/shakespeare_sp1024"),
            "TOKENIZER_PATH": str(ROOT / "data/tokenizers/shakespeare_1024_bpe.model"),
            "TRAIN_BATCH_TOKENS": str(batch_tokens), "GRAD_ACCUM_STEPS": "1", "ITERATIONS": str(steps), "WARMUP_STEPS": "10",
            "WARMDOWN_ITERS": str(max(1, steps // 5)), "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0",
            "TRAIN_LOG_EVERY": str(steps), "EVAL_STRIDE": "64",
            "VAL_BATCH_SIZE": str(batch_tokens), "EVAL_BATCH_SEQS": str(batch_tokens // 1024), "RUN_ID": run_id}
    return {**os.environ, **ours, **env}


def launch(env: dict, folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    return start_run([sys.executable, str(ROOT / "train_gpt.py")], cwd=folder, env=env,
                     stdout=subprocess.DEVNULL, stderr=open(folder / "stderr.txt", "w"))


def read_log(path: Path) -> dict:
    """The run's numbers (records/tools.py parse_log) plus what only this benchmark reads."""
    r = parse_log(path)
    lines = path.read_text().split("=" * 100 + "\n", 1)[1].splitlines()
    last = lambda prefix: [l for l in lines if l.startswith(prefix)][-1]
    value = lambda line, key: line.split(f"{key}:", 1)[1].split()[0].removesuffix("ms")
    return {"step_ms": r["step_avg_ms"], "params": r["model_params"], "artifact": r["bytes_total"],
            "sliding_bpb": r["sliding_val_bpb"], "frozen": int(value(last("frozen_params:"), "frozen_params")),
            "peak_mib": int(last("peak memory ").split(":", 1)[1].split()[0]),  # allocated on a GPU, rss on a CPU (--dry-run)
            "sliding_ms": float(value(last("final_int8_zlib_roundtrip_sliding "), "eval_time")),
            "device": last("Running Python").split("device:", 1)[1]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-tokens", type=int, default=65536)
    p.add_argument("--modes", default=",".join(name for name, _ in MODES))
    p.add_argument("--out", default=None, help="folder for the runs' logs (default: a temporary folder)")
    p.add_argument("--dry-run", action="store_true", help="the whole flow on this CPU at a tiny shape (what the tests run); no measurement")
    a = p.parse_args(argv)
    import torch
    if not torch.cuda.is_available() and not a.dry_run:
        print("error: bench gpu: no CUDA device visible (this benchmark measures the GPU path; `bash run.sh bench` is the CPU one)",
              file=sys.stderr)
        return 2
    chosen = [(n, e) for n, e in MODES if n in choose(a.modes, dict(MODES), "--modes", "bench gpu")]
    at_least("bench gpu", steps=(a.steps, 1), batch_tokens=(a.batch_tokens, 1))
    root = Path(a.out or tempfile.mkdtemp(prefix="bench_gpu_"))
    slug = lambda name: name.replace(" ", "_").replace("+", "plus")
    print(f"runs in {root}", file=sys.stderr)
    results = {}
    for name, env in chosen:
        folder = root / slug(name)
        t = time.perf_counter()
        proc = launch({**mode_env(env, a.steps, a.batch_tokens, "timed"), **(DRY_RUN if a.dry_run else {})}, folder)
        if proc.wait():
            said = (folder / "stderr.txt").read_text(errors="replace").strip().splitlines()[-1:] if (folder / "stderr.txt").exists() else []
            print(f"error: bench gpu: {name} failed ({said[0] if said else 'no message'}); its log and stderr are in {folder}", file=sys.stderr)
            return 1
        results[name] = {**read_log(folder / "logs" / "timed.txt"), "wall_s": time.perf_counter() - t}
    dense = results.get("dense")
    device = next(iter(results.values()))["device"]
    print(f"# train_gpt.py GPU benchmark, {datetime.date.today()}, {device}, torch {torch.__version__}"
          + (" (a dry run: 2 x 64, context 64, not the shape below)" if a.dry_run else "") + "\n")
    print(f"baseline shape (9 x 512, 8 heads / 4 KV, MLP x2, vocab 1,024, context 1,024), {a.batch_tokens:,} tokens a step "
          f"(one GPU's share of an 8-GPU baseline step), bf16 autocast, torch.compile(fullgraph=True), {a.steps} steps after "
          f"10 compile warm-up steps; default ranks; val_bpb on the embedded corpus's validation split, sliding at stride 64\n")
    print("| mode | learned params | regenerated params | step_avg (ms) | vs dense | train tokens/s | peak memory (MiB) | vs dense | "
          "artifact int8+zlib (bytes) | val_bpb after the step budget | sliding eval (ms) | process wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rel = lambda key: f"{r[key] / dense[key]:.2f}x" if dense else "-"
        print(f"| {name} | {r['params']:,} | {r['frozen']:,} | {r['step_ms']:.1f} | {rel('step_ms')} | "
              f"{a.batch_tokens / r['step_ms'] * 1000:,.0f} | {r['peak_mib']:,} | {rel('peak_mib')} | {r['artifact']:,} | "
              f"{r['sliding_bpb']:.4f} | {r['sliding_ms']:,.0f} | {r['wall_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench gpu"))
