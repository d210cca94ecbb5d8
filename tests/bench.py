"""CPU benchmarks, printed as markdown tables (`bash run.sh bench`).

    python3 tests/bench.py [--steps 6] [--layers 4 --dim 256 --seq 256 --batch-tokens 16384 --micro 4]

Every mode runs at the same shape, one fresh process each, one after another in one run:
dense, then each FREEZE_MODE (adapter, frozen, lowrank, mask; frozen also on every projection
with a correction path). For each: the median time of full training steps (forward,
backward, Muon + Adam) on real tokens, tokens per second, and the FLOP/s they achieve
against the fp32 matrix-multiply peak measured in the same run; peak memory (resident set
above the process's size once torch and the data are loaded); evaluation tokens per second;
and what the artifact stores per learned weight (int8 + zlib bytes x 8 / learned
parameters; for masks, zlib-compressed mask bits per masked weight). FLOPs are counted
analytically for the dense model (6 per weight per token for every matrix multiply, 6 x T x
head_dim per query position and head for causal attention, and the tied head) and the same
count is used for every mode, so the FLOP/s column compares modes at equal work.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "records"))
import train_gpt as tg  # noqa: E402
from tools import start_run, tool_main  # noqa: E402  (a signal stops the runs with the benchmark)

MODES = [("dense", {}), ("adapter", {"FREEZE_MODE": "adapter"}), ("frozen fc", {"FREEZE_MODE": "frozen"}),
         ("frozen all + corr 16", {"FREEZE_MODE": "frozen", "FREEZE_TARGETS": "all", "FROZEN_CORRECTION_RANK": "16"}),
         ("lowrank", {"FREEZE_MODE": "lowrank"}), ("mask", {"FREEZE_MODE": "mask"})]
# The GPU benchmarks' --dry-run: a tiny model on the CPU, their whole flow in seconds (what the tests run; its numbers measure nothing)
DRY_RUN = dict(NUM_LAYERS="2", MODEL_DIM="64", NUM_HEADS="4", NUM_KV_HEADS="2", TRAIN_SEQ_LEN="64", WARMUP_STEPS="2", CUDA_VISIBLE_DEVICES="")
DEMO_BATCH_TOKENS, DEMO_MICRO = 16384, 4  # bash run.sh's demo batch (tests/test_recipes.py holds them to run.sh)


def choose(spec: str, accepted, flag: str, prog: str, empty_ok: bool = False) -> list[str]:
    """The names of the comma list `spec` (a benchmark's argument), each one of `accepted`: anything else stops it with one line."""
    names = [n for n in spec.split(",") if n]
    bad = [n for n in names if n not in accepted] or ([] if names or empty_ok else [spec])
    if bad:
        raise SystemExit(f"error: {prog}: {flag} {spec!r}: unknown {bad[0]!r}; accepted, comma-separated: {', '.join(accepted)}")
    return names


def at_least(prog: str, **counts: tuple[int, int]) -> None:
    """Count arguments, each (value, smallest useful): below it a benchmark had nothing to take a median of (a traceback)."""
    flag, (value, low) = next(((f, c) for f, c in counts.items() if c[0] < c[1]), (None, (0, 0)))
    if flag:
        raise SystemExit(f"error: {prog}: --{flag.replace('_', '-')} {value}: accepted {low} or more")


def runs_at_a_time(prog: str, workers: int) -> None:
    """--workers of the benchmarks that run several trainings at once, one core each: past the cores (2 at least) they share cores,
    which their times then measure, and each holds a model and its data (--workers 100000 started every job at once)."""
    most = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers > most:
        raise SystemExit(f"error: {prog}: --workers {workers}: accepted 1 to {most} (runs at a time, one core each: this machine's cores)")


def env_pairs(items: list[str] | None, prog: str, flag: str = "--ours-env") -> dict[str, str]:
    """NAME=VALUE arguments (a benchmark's --ours-env, set for train_gpt.py's runs alone) as a dict; anything else stops it with one line."""
    bad = next((i for i in items or [] if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", i)), None)
    if bad is not None:
        raise SystemExit(f"error: {prog}: {flag} {bad!r}: accepted NAME=VALUE (an environment variable for train_gpt.py's runs alone)")
    return dict(i.split("=", 1) for i in items or [])


def ours_with(env: dict[str, str]) -> str:
    """How a table's header names env_pairs' variables, the ones only train_gpt.py's runs got."""
    return "".join(f"; ours with {k}={v}" for k, v in env.items())


def seeds_of(spec: str, prog: str) -> list[int]:
    if not all(s.isdigit() for s in spec.split(",")):
        raise SystemExit(f"error: {prog}: --seeds {spec!r}: accepted a comma list of whole numbers (1,2)")
    return [int(s) for s in spec.split(",")]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_peak(repeats: int = 10) -> float:
    """Best fp32 GFLOP/s over a few GEMM shapes of the sizes a training step multiplies."""
    best = 0.0
    for m, k, n in [(4096, 256, 1024), (4096, 512, 512), (8192, 256, 256), (2048, 1024, 1024)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * m * k * n * repeats / (time.perf_counter() - t) / 1e9)
    return best


def dense_step_flops(cfg, tokens: int) -> float:
    """Analytic FLOPs of one dense training step (forward + backward) over `tokens` tokens."""
    dims = tg.projection_dims(cfg)
    # each block's projections once a layer ("emb" is the tied embedding, counted once: its lookup is free, the head multiplies)
    matmul_weights = cfg.num_layers * sum(i * o for name, (i, o) in dims.items() if name != "emb") + cfg.vocab_size * cfg.model_dim
    attention = cfg.num_layers * cfg.num_heads * (cfg.train_seq_len * (cfg.model_dim // cfg.num_heads))
    return 6.0 * tokens * (matmul_weights + attention)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / tg.RSS_PER_MIB  # (bytes on macOS, KiB on Linux)


def worker(env: dict, steps: int, data: str, tokenizer: str) -> dict:
    """One mode in this process: timed training steps (GRAD_ACCUM_STEPS micro-steps each, as the demo takes them), memory, eval
    speed, artifact bytes; with the CPU settings train_gpt.py's runtime makes (freed memory kept, denormals flushed)."""
    import sentencepiece as spm
    tg.freed_memory()
    torch.set_flush_denormal(True)
    cfg = tg.Hyperparameters(env)
    cfg.check_world(1)
    micro = cfg.grad_accum_steps
    loader = tg.DistributedTokenLoader(data, cfg.vocab_size, 0, 1, "cpu")
    val = tg.load_validation_tokens(data, cfg.train_seq_len, cfg.vocab_size)[:32768 + 1]
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    base_rss = rss_mib()
    torch.manual_seed(0)
    model = tg.GPT(cfg)
    optimizers = tg.build_optimizers(model, cfg)
    times = []
    for i in range(2 + steps):
        batches = [loader.next_batch(cfg.train_batch_tokens // micro, cfg.train_seq_len) for _ in range(micro)]
        t = time.perf_counter()
        for x, y in batches:
            (model(x, y).mean() / micro).backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    peak = rss_mib() - base_rss
    model.eval()
    batch = tg.eval_batch_seqs(cfg, 1, None, val.numel())  # a run's own plain batch: VAL_BATCH_SIZE / 8 (the house's split)
    t = time.perf_counter()
    _, _, scored = tg.evaluate(model, val, cfg.train_seq_len, cfg.train_seq_len, batch, tg.target_bytes(sp, val, cfg.vocab_size))
    eval_tok_s = scored / (time.perf_counter() - t)
    blob, stats = tg.quantize_state_dict(model.state_dict())
    buf = io.BytesIO()
    torch.save(blob, buf)
    artifact = len(zlib.compress(buf.getvalue(), 9))
    learned = sum(p.numel() for p in model.parameters())
    masked = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".scores"))
    mask_bytes = sum(len(zlib.compress(b.numpy().tobytes(), 9)) for b in blob["bits"].values())
    return {"step_s": step, "tok_s": cfg.train_batch_tokens / step, "gflop_s": dense_step_flops(cfg, cfg.train_batch_tokens) / step / 1e9,
            "peak_mib": peak, "eval_tok_s": eval_tok_s, "learned": learned,
            "frozen": sum(m.base.numel() for m in model.modules() if isinstance(m, tg.FrozenFC)),
            "artifact": artifact, "bits_per_learned": 8 * artifact / learned,
            "mask_bits_per_weight": 8 * mask_bytes / masked if masked else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch-tokens", type=int, default=DEMO_BATCH_TOKENS)
    p.add_argument("--micro", type=int, default=DEMO_MICRO, help="micro-steps a step (the demo's GRAD_ACCUM_STEPS)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each mode, interleaved; the table gives medians (step time: and range)")
    p.add_argument("--modes", default=",".join(name for name, _ in MODES), help="comma list of the modes to run")
    p.add_argument("--data", default=str(ROOT / "data/datasets/shakespeare_sp1024"))
    p.add_argument("--tokenizer", default=str(ROOT / "data/tokenizers/shakespeare_1024_bpe.model"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    shape = {"NUM_LAYERS": str(a.layers), "MODEL_DIM": str(a.dim), "NUM_HEADS": str(max(1, a.dim // 64)),
             "NUM_KV_HEADS": str(max(1, a.dim // 128)), "TRAIN_SEQ_LEN": str(a.seq), "TRAIN_BATCH_TOKENS": str(a.batch_tokens),
             "GRAD_ACCUM_STEPS": str(a.micro), "VAL_BATCH_SIZE": str(max(a.seq, 32768 // a.seq * a.seq))}
    if a.worker:
        print(json.dumps(worker({**shape, **json.loads(a.worker)}, a.steps, a.data, a.tokenizer)))
        return 0
    chosen = [(n, e) for n, e in MODES if n in choose(a.modes, dict(MODES), "--modes", "bench")]
    at_least("bench", steps=(a.steps, 1), repeats=(a.repeats, 1), micro=(a.micro, 1))
    print(f"# train_gpt.py benchmark, {datetime.date.today()}, {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    peak = matmul_peak()
    runs: dict[str, list[dict]] = {}
    passed = sum(([f"--{k}", str(getattr(a, k.replace("-", "_")))] for k in
                  ("steps", "layers", "dim", "seq", "batch-tokens", "micro", "data", "tokenizer")), [])
    for _ in range(a.repeats):  # interleaved: a slow minute on a shared machine touches every mode alike
        for name, env in chosen:
            cmd = [sys.executable, __file__, "--worker", json.dumps(env)] + passed
            proc = start_run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = proc.communicate()
            if proc.returncode:
                print(f"{name}: failed\n{err[-2000:]}", file=sys.stderr)
                return 1
            runs.setdefault(name, []).append(json.loads(out.strip().splitlines()[-1]))
    median = lambda rs, k: statistics.median(x[k] for x in rs) if isinstance(rs[0][k], float) else rs[0][k]
    results = {name: {k: median(rs, k) for k in rs[0]} for name, rs in runs.items()}
    step_range = {name: (min(x["step_s"] for x in rs), max(x["step_s"] for x in rs)) for name, rs in runs.items()}
    dense = results.get("dense")
    cfg = tg.Hyperparameters(shape)
    print(f"\nshape: {a.layers} layers x {a.dim}, {cfg.num_heads} heads / {cfg.num_kv_heads} KV, seq {a.seq}, {a.batch_tokens} tokens "
          f"a step in {a.micro} micro-steps, fp32, eager, rank 16 where a rank applies; fp32 matmul peak measured now: {peak:.1f} "
          f"GFLOP/s; medians of {a.repeats} interleaved runs of each mode (step time: median, then range)\n")
    print("| mode | learned params | regenerated params | step (s) | vs dense | train tokens/s | GFLOP/s (dense-equivalent) | "
          "% of peak | peak memory (MiB) | vs dense | eval tokens/s | artifact bits per learned weight | mask bits per masked weight |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rel = lambda key: f"{r[key] / dense[key]:.2f}x" if dense else "-"
        mask = f"{r['mask_bits_per_weight']:.2f}" if r["mask_bits_per_weight"] is not None else "-"
        lo, hi = step_range[name]
        print(f"| {name} | {r['learned']:,} | {r['frozen']:,} | {r['step_s']:.3f} ({lo:.3f}-{hi:.3f}) | {rel('step_s')} | {r['tok_s']:,.0f} | "
              f"{r['gflop_s']:.1f} | {100 * r['gflop_s'] / peak:.0f}% | {r['peak_mib']:.0f} | {rel('peak_mib')} | {r['eval_tok_s']:,.0f} | "
              f"{r['bits_per_learned']:.2f} | {mask} |")
    return 0


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench"))
