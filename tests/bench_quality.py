"""Quality at equal artifact bytes, on the embedded corpus, on CPU (`bash run.sh bench quality`).

    python3 tests/bench_quality.py [--budgets A,B] [--seeds 1,2] [--steps 150] [--stage main,tune]

For each artifact budget the dense baseline shape that fits it is run beside every random-map
mode at a larger shape that fits the same budget: adapter on every projection, adapter on the
MLP only, frozen fc, frozen MLP with a learned correction, low-rank substitution, and the
supermask. Every run is a real `train_gpt.py` process with the same token budget (steps x
4,096 tokens, context 128), the same schedule and the same seeds. Shapes were chosen with the
estimate printed as `est. bytes` (int8 rows, fp16 passthrough, 1 bit a mask weight) under
a CPU compute cap; the table reports the model bytes each run really wrote plus the size of
today's train_gpt.py. The `tune` stage adds,
per budget, a small sweep around the winners and a dense control whose artifact matches the
best random-map row's size (by the estimate, whose bias both share).

Runs are cached under bench_quality/ (ignored by git) by configuration and seed, so an
interrupted benchmark continues where it stopped; delete the folder to start over.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "records"))
import train_gpt as tg  # noqa: E402
from tools import parse_log  # noqa: E402

OUT = ROOT / "bench_quality"


def shape(layers: int, dim: int, **extra) -> dict:
    heads = max(1, dim // 64)
    return {"NUM_LAYERS": str(layers), "MODEL_DIM": str(dim), "NUM_HEADS": str(heads), "NUM_KV_HEADS": str(max(1, heads // 2)),
            **{k: str(v) for k, v in extra.items()}}


ADAPTER, FROZEN, LOWRANK, MASK = {"FREEZE_MODE": "adapter"}, {"FREEZE_MODE": "frozen"}, {"FREEZE_MODE": "lowrank"}, {"FREEZE_MODE": "mask"}
MLP = {"FREEZE_TARGETS": "mlp"}
# (row label, configuration) per budget; the dense row is the baseline shape that fits the budget.
BUDGETS = {
    "A": {"bytes": 1_150_000, "rows": [
        ("dense", shape(4, 128)),
        ("adapter all", shape(4, 256, **ADAPTER, LORA_RANK=32)),
        ("adapter mlp", shape(4, 192, **ADAPTER, **MLP, LORA_RANK=16)),
        ("frozen fc", shape(3, 192, **FROZEN)),
        ("frozen mlp + corr", shape(4, 192, **FROZEN, **MLP, FROZEN_CORRECTION_RANK=32)),
        ("lowrank", shape(4, 256, **LOWRANK, LORA_RANK=32)),
        ("mask", shape(6, 256, **MASK)),
    ], "tune": [("frozen fc, wider MLP", shape(3, 192, **FROZEN, MLP_MULT=3)), ("frozen fc,k,v", shape(4, 192, **FROZEN, FREEZE_TARGETS="fc,k,v")),
                ("frozen fc, deeper", shape(6, 128, **FROZEN))],
        "controls": [shape(3, 192), shape(4, 128), shape(3, 128), shape(2, 192), shape(5, 128), shape(2, 256)]},
    "B": {"bytes": 3_000_000, "rows": [
        ("dense", shape(4, 256)),
        ("adapter all", shape(6, 256, **ADAPTER, LORA_RANK=64)),
        ("adapter mlp", shape(6, 256, **ADAPTER, **MLP, LORA_RANK=16)),
        ("frozen fc", shape(8, 192, **FROZEN)),
        ("frozen mlp + corr", shape(6, 256, **FROZEN, **MLP, FROZEN_CORRECTION_RANK=32)),
        ("lowrank", shape(6, 256, **LOWRANK, LORA_RANK=64)),
        ("mask", shape(8, 256, **MASK)),
    ], "tune": [("frozen fc, deeper", shape(5, 256, **FROZEN)), ("frozen fc, wider MLP", shape(4, 256, **FROZEN, MLP_MULT=3)),
                ("frozen fc,k,v", shape(6, 256, **FROZEN, FREEZE_TARGETS="fc,k,v"))],
        "controls": [shape(4, 256), shape(8, 192), shape(6, 192), shape(7, 192), shape(4, 192), shape(3, 256), shape(5, 256)]},
}


def common(steps: int) -> dict:
    return {"TRAIN_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "4096", "GRAD_ACCUM_STEPS": "1", "ITERATIONS": str(steps),
            "WARMUP_STEPS": "0", "WARMDOWN_ITERS": str(steps // 3), "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0",
            "TRAIN_LOG_EVERY": "50", "EVAL_STRIDE": "64", "VAL_BATCH_SIZE": "32768",
            "DATA_PATH": str(ROOT / "data/datasets/shakespeare_sp1024"), "TOKENIZER_PATH": str(ROOT / "data/tokenizers/shakespeare_1024_bpe.model")}


def estimate_bytes(cfg: dict) -> int:
    """int8 rows (1 byte + 2 per row), fp16 passthrough, fp32 control tensors, 1 bit a mask weight."""
    total = 0
    for name, t in tg.model_that_fits(tg.Hyperparameters(cfg), "estimate").state_dict().items():  # on the meta device: shapes only
        if name.endswith(".scores"):
            total += t.numel() / 8
        elif t.numel() <= tg.KEEP_FLOAT_MAX_NUMEL:
            total += (4 if any(c in name for c in tg.CONTROL_TENSOR_NAMES) else 2) * t.numel()
        else:
            total += t.numel() + 2 * t.shape[0]
    return int(total)


def describe(cfg: dict) -> str:
    text = f"{cfg['NUM_LAYERS']}x{cfg['MODEL_DIM']}"
    if "LORA_RANK" in cfg:
        text += f" r{cfg['LORA_RANK']}"
    if "FROZEN_CORRECTION_RANK" in cfg:
        text += f" corr{cfg['FROZEN_CORRECTION_RANK']}"
    if cfg.get("LORA_RANKS"):
        text += f" ranks {cfg['LORA_RANKS']}"
    if cfg.get("FREEZE_TARGETS"):
        text += f" {cfg['FREEZE_TARGETS']}"
    return text


def run(cfg: dict, seed: int, steps: int) -> dict:
    """One train_gpt.py process, cached by configuration and seed."""
    env = {**common(steps), **cfg, "SEED": str(seed)}
    key = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:12]
    folder = OUT / f"{key}_seed{seed}"
    log = folder / "logs" / "run.txt"
    if not (log.exists() and "final_int8_zlib_roundtrip_sliding_exact" in log.read_text()):
        folder.mkdir(parents=True, exist_ok=True)
        ours = {name for name, *_ in tg.ENV_VARS}
        base = {k: v for k, v in os.environ.items() if k not in ours}
        print(f"  running {describe(cfg)} {cfg.get('FREEZE_MODE', 'none')} seed {seed}", flush=True)
        r = subprocess.run([sys.executable, str(ROOT / "train_gpt.py")], cwd=folder, env={**base, **env, "RUN_ID": "run"},
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"run failed: {describe(cfg)} seed {seed}: {r.stderr.strip().splitlines()[-1:]}")
    result = parse_log(log)
    result["tok_s"] = 4096 / (result["step_avg_ms"] / 1000.0)
    # the artifact is the compressed model plus the script: count today's script, so that runs
    # cached under an earlier revision of train_gpt.py (same model bytes) compare fairly
    result["bytes_total"] += (ROOT / "train_gpt.py").stat().st_size - result["bytes_code"]
    return result


def row(label: str, cfg: dict, seeds: list[int], steps: int) -> dict:
    runs = [run(cfg, s, steps) for s in seeds]
    mean = lambda k: statistics.mean(r[k] for r in runs)
    spread = lambda k: (max(r[k] for r in runs) - min(r[k] for r in runs)) / 2
    model = tg.build_model(tg.Hyperparameters(cfg))
    return {"label": label, "cfg": cfg, "shape": describe(cfg), "learned": sum(p.numel() for p in model.parameters()),
            "regenerated": sum(m.base.numel() for m in model.modules() if isinstance(m, tg.FrozenFC)), "est": estimate_bytes(cfg),
            "bytes": int(mean("bytes_total")), "rt": mean("roundtrip_val_bpb"), "rt_spread": spread("roundtrip_val_bpb"), "sl": mean("sliding_val_bpb"),
            "sl_spread": spread("sliding_val_bpb"), "tok_s": mean("tok_s"), "seeds": len(runs)}


def table(rows: list[dict], budget: str) -> list[str]:
    out = [f"| budget | row | shape | learned params | regenerated params | est. bytes | artifact bytes | round-trip val_bpb | "
           "sliding val_bpb | train tokens/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {budget} | {r['label']} | {r['shape']} | {r['learned']:,} | {r['regenerated']:,} | {r['est']:,} | {r['bytes']:,} | "
                   f"{r['rt']:.4f} ± {r['rt_spread']:.4f} | {r['sl']:.4f} ± {r['sl_spread']:.4f} | {r['tok_s']:,.0f} |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", default="A,B")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--stage", default="main,tune")
    a = p.parse_args(argv)
    seeds, stages = [int(s) for s in a.seeds.split(",")], a.stage.split(",")
    lines = [f"# Quality at equal artifact bytes: {datetime.date.today()}, torch {tg.torch.__version__}, "
             f"{a.steps} steps x 4,096 tokens, context 128, seeds {a.seeds}; val_bpb: mean ± half the spread of the seeds", ""]
    for name in a.budgets.split(","):
        budget = BUDGETS[name]
        print(f"budget {name} ({budget['bytes']:,} bytes)", flush=True)
        rows = [row(label, cfg, seeds, a.steps) for label, cfg in budget["rows"]] if "main" in stages else []
        if "tune" in stages:
            for label, cfg in budget["tune"]:  # the sweep: one seed each, the best gets every seed
                rows.append(row(f"sweep: {label}", cfg, seeds[:1], a.steps))
            candidates = [r for r in rows if r["cfg"].get("FREEZE_MODE", "none") != "none"]
            if candidates:
                best = min(candidates, key=lambda r: r["sl"])
                tuned = row(f"tuned: {best['label'].removeprefix('sweep: ')}", best["cfg"], seeds, a.steps)
                control_cfg = min(budget["controls"], key=lambda c: abs(estimate_bytes(c) - tuned["est"]))  # estimates share their bias
                rows += [tuned, row("size-matched dense control", control_cfg, seeds, a.steps)]
        lines += table(rows, name) + [""]
        print("\n".join(table(rows, name)), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
