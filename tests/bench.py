"""CPU benchmarks, printed as markdown tables (`bash run.sh bench`).

    python3 tests/bench.py [--steps 6] [--layers 4 --dim 256 --seq 256 --batch-tokens 8192]

Training: tokens per second of full training steps (forward, backward, Muon + Adam) of the
model train_gpt.py builds, and the FLOP/s they achieve against the fp32 matrix-multiply
peak measured in the same run. FLOPs are counted analytically: 6 per weight per token for
every matrix multiply (forward + backward), 6 x T x head_dim per query position and head
for causal attention (the half of the square that is computed), and the tied output head.
Evaluation: tokens per second of the plain evaluation on the validation split.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import train_gpt as tg  # noqa: E402


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


def step_flops(model: tg.GPT, cfg, tokens: int) -> float:
    """Analytic FLOPs of one training step (forward + backward) over `tokens` tokens."""
    matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    head = cfg.vocab_size * cfg.model_dim
    attention = cfg.num_layers * cfg.num_heads * (cfg.train_seq_len * (cfg.model_dim // cfg.num_heads))
    return 6.0 * tokens * (matmul_weights + head) + 6.0 * tokens * attention


def bench_training(env: dict, steps: int, warmup: int = 2) -> dict:
    cfg = tg.Hyperparameters(env)
    cfg.check_world(1)
    torch.manual_seed(0)
    model = tg.GPT(cfg)
    optimizers = tg.build_optimizers(model, cfg)
    local = cfg.train_batch_tokens // cfg.grad_accum_steps
    x = torch.randint(0, cfg.vocab_size, (local // cfg.train_seq_len, cfg.train_seq_len))
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        for _ in range(cfg.grad_accum_steps):
            (model(x, x).mean() / cfg.grad_accum_steps).backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    return {"cfg": cfg, "model": model, "step_s": step, "tok_s": cfg.train_batch_tokens / step,
            "gflops": step_flops(model, cfg, cfg.train_batch_tokens) / step / 1e9}


def bench_eval(model, cfg, data_path: str, tokenizer_path: str, max_tokens: int = 65_536) -> float:
    import sentencepiece as spm
    val = tg.load_validation_tokens(data_path, cfg.train_seq_len, cfg.vocab_size)[: max_tokens + 1]
    luts = tg.build_byte_luts(spm.SentencePieceProcessor(model_file=tokenizer_path), cfg.vocab_size, "cpu")
    batch = max(1, cfg.val_batch_size // cfg.train_seq_len)
    model.eval()
    tg.evaluate(model, val[: 2 * cfg.train_seq_len + 1], cfg.train_seq_len, cfg.train_seq_len, batch, luts)
    t = time.perf_counter()
    _, _, scored = tg.evaluate(model, val, cfg.train_seq_len, cfg.train_seq_len, batch, luts)
    return scored / (time.perf_counter() - t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--data", default=str(ROOT / "data/datasets/shakespeare_sp1024"))
    p.add_argument("--tokenizer", default=str(ROOT / "data/tokenizers/shakespeare_1024_bpe.model"))
    a = p.parse_args(argv)
    env = {"NUM_LAYERS": str(a.layers), "MODEL_DIM": str(a.dim), "NUM_HEADS": str(max(1, a.dim // 64)),
           "NUM_KV_HEADS": str(max(1, a.dim // 128)), "TRAIN_SEQ_LEN": str(a.seq), "TRAIN_BATCH_TOKENS": str(a.batch_tokens),
           "GRAD_ACCUM_STEPS": "1", "VAL_BATCH_SIZE": str(max(a.seq, 32768 // a.seq * a.seq))}
    print(f"# train_gpt.py benchmark, {datetime.date.today()}, {cpu_name()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    peak = matmul_peak()
    r = bench_training(env, a.steps)
    cfg = r["cfg"]
    eval_tok_s = bench_eval(r["model"], cfg, a.data, a.tokenizer)
    print(f"\nshape: {a.layers} layers x {a.dim}, {cfg.num_heads} heads / {cfg.num_kv_heads} KV, seq {a.seq}, "
          f"{a.batch_tokens} tokens a step, fp32, eager; fp32 matmul peak measured now: {peak:.1f} GFLOP/s\n")
    print("| mode | step (s) | train tokens/s | achieved GFLOP/s | % of matmul peak | eval tokens/s |")
    print("|---|---|---|---|---|---|")
    print(f"| dense | {r['step_s']:.3f} | {r['tok_s']:,.0f} | {r['gflops']:.1f} | {100 * r['gflops'] / peak:.0f}% | {eval_tok_s:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
