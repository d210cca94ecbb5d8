"""Quality at equal artifact bytes, on the embedded corpus, on CPU (`bash run.sh bench quality`).

    python3 tests/bench_quality.py [--budgets A,B] [--seeds 1,2] [--steps 150] [--stage main,tune] [--workers 2]

For each artifact budget the dense baseline shape that fits it is run beside every random-map
mode at a larger shape that fits the same budget: adapter on every projection, adapter on the
MLP only, frozen fc, frozen MLP with a learned correction, low-rank substitution, and the
supermask. Every run is a real `train_gpt.py` process with the same token budget (steps x
4,096 tokens, context 128), the same schedule and the same seeds, `--workers` at a time on one
core each. Shapes were chosen with the estimate printed as `est. bytes` (int8 rows, fp16
passthrough, 1 bit a mask weight; before compression) under a CPU compute cap; the table
reports the model bytes each run really wrote plus the size of today's train_gpt.py.
The `tune` stage adds, per budget, a sweep (one seed a row) around the winners and with issue
12's pieces (the full supermask, lzma, the fp16 embedding, a bigram hash, an MLP rank
schedule); the best random-map row within the budget is rerun with every seed beside a dense
control whose estimate is nearest its own (the estimates share their bias), stored the same
way, and a line says whether it wins by 3% or more.

Runs are cached under bench_quality/ (ignored by git) by configuration and seed, so an
interrupted benchmark continues where it stopped; delete the folder to start over.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "records"))
import train_gpt as tg  # noqa: E402
from tools import parse_log, start_run, tool_main  # noqa: E402
from bench import at_least, choose, runs_at_a_time, seeds_of  # noqa: E402

OUT = ROOT / "bench_quality"


def shape(layers: int, dim: int, **extra) -> dict:
    heads = max(1, dim // 64)
    return {"NUM_LAYERS": str(layers), "MODEL_DIM": str(dim), "NUM_HEADS": str(heads), "NUM_KV_HEADS": str(max(1, heads // 2)),
            **{k: str(v) for k, v in extra.items()}}


ADAPTER, FROZEN, LOWRANK, MASK = {"FREEZE_MODE": "adapter"}, {"FREEZE_MODE": "frozen"}, {"FREEZE_MODE": "lowrank"}, {"FREEZE_MODE": "mask"}
MLP, LZMA = {"FREEZE_TARGETS": "mlp"}, {"ARTIFACT_CODEC": "lzma"}
# Issue 12's pieces in the sweep: the full supermask (embedding masked too, per-head and pre-logit scales), its largest shape
# that runs in about 10 minutes on a core (the same run at both budgets); the rows below add lzma, the fp16 embedding, the
# bigram hash and per-group rank schedules. Its artifact codec and fp16 setting pass to the size-matched control.
NEW_PIECES = [("supermask all,emb", shape(8, 384, **MASK, FREEZE_TARGETS="all,emb", BASE_INIT="xavier_he"))]
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
                ("frozen fc, deeper", shape(6, 128, **FROZEN)), *NEW_PIECES,
                ("frozen fc, MLP 4x, lzma", shape(3, 192, **FROZEN, MLP_MULT=4, **LZMA)),
                ("frozen fc, narrower, MLP 4x, lzma", shape(4, 160, **FROZEN, MLP_MULT=4, **LZMA)),
                ("frozen fc + bigram hash", shape(3, 192, **FROZEN, BIGRAM_BUCKETS=1536, BIGRAM_DIM=64)),
                ("adapter mlp, ranks 8..24", shape(4, 192, **ADAPTER, **MLP, LORA_RANKS_MLP="8..24"))],
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
                ("frozen fc,k,v", shape(6, 256, **FROZEN, FREEZE_TARGETS="fc,k,v")), *NEW_PIECES,
                ("frozen fc, MLP 4x, lzma", shape(4, 256, **FROZEN, MLP_MULT=4, **LZMA)),
                ("frozen fc, wider MLP, fp16 embedding", shape(4, 256, **FROZEN, MLP_MULT=3, EMBED_FP16=1)),
                ("frozen fc + bigram hash", shape(4, 256, **FROZEN, MLP_MULT=3, BIGRAM_BUCKETS=2048, BIGRAM_DIM=64)),
                ("adapter mlp, ranks 8..24", shape(6, 256, **ADAPTER, **MLP, LORA_RANKS_MLP="8..24"))],
        "controls": [shape(4, 256), shape(8, 192), shape(6, 192), shape(7, 192), shape(4, 192), shape(3, 256), shape(5, 256)]},
}


def common(steps: int) -> dict:
    return {"TRAIN_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "4096", "GRAD_ACCUM_STEPS": "1", "ITERATIONS": str(steps),
            "WARMUP_STEPS": "0", "WARMDOWN_ITERS": str(steps // 3), "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0",
            "TRAIN_LOG_EVERY": "50", "EVAL_STRIDE": "64", "VAL_BATCH_SIZE": "32768",
            "DATA_PATH": str(ROOT / "data/datasets/shakespeare_sp1024"), "TOKENIZER_PATH": str(ROOT / "data/tokenizers/shakespeare_1024_bpe.model")}


def estimate_bytes(cfg: dict) -> int:
    """int8 rows (1 byte + 2 per row), fp16 passthrough (and an EMBED_FP16 embedding), fp32 control tensors, 1 bit a mask weight;
    before compression, so whatever ARTIFACT_CODEC saves is not counted."""
    total = 0
    for name, t in tg.model_that_fits(tg.Hyperparameters(cfg), "estimate").state_dict().items():  # on the meta device: shapes only
        if name.endswith(".scores"):
            total += t.numel() / 8
        elif cfg.get("EMBED_FP16") == "1" and name.endswith("tok_emb.weight"):
            total += 2 * t.numel()
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
    for var, fmt in (("LORA_RANKS_MLP", " ranks {}"), ("MLP_MULT", " MLP {}x"), ("BIGRAM_BUCKETS", " bigram {}"),
                     ("EMBED_FP16", " fp16 emb"), ("ARTIFACT_CODEC", " {}"), ("BASE_INIT", " {}")):
        text += fmt.format(cfg[var]) if var in cfg else ""
    return text


class Job:
    """One train_gpt.py process: its variables, seed and cache folder under `out` (named by a hash of both)."""
    def __init__(self, env: dict, seed: int, out: Path, teacher: "Job | None" = None):
        self.env, self.seed, self.teacher = env, seed, teacher
        keyed = {**self.env, "DISTILL_TEACHER": teacher.folder.name} if teacher else self.env
        self.folder = out / f"{hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]}_seed{seed}"
        self.log, self.artifact = self.folder / "logs" / "run.txt", self.folder / "final_model.int8.ptz"

    def done(self) -> bool:  # total_eval_time is the log's last line: a run cut off before it is redone
        return self.artifact.exists() and self.log.exists() and "total_eval_time:" in self.log.read_text()

    def run(self, threads: int) -> None:
        if self.done():
            return
        shutil.rmtree(self.folder, ignore_errors=True)  # a run cut off midway starts over
        self.folder.mkdir(parents=True)
        ours = {name for name, *_ in tg.ENV_VARS}
        env = {**{k: v for k, v in os.environ.items() if k not in ours}, **self.env, "SEED": str(self.seed), "RUN_ID": "run",
               "OMP_NUM_THREADS": str(threads)}
        if self.teacher:
            env["DISTILL_TEACHER"] = str(self.teacher.artifact)
        started = time.time()
        run = start_run([sys.executable, str(ROOT / "train_gpt.py")], cwd=self.folder, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
        out, err = run.communicate()
        if run.returncode:
            raise SystemExit(f"run failed in {self.folder}: {(err or out).strip().splitlines()[-1:]}")
        print(f"  {self.folder.name}: {time.time() - started:.0f} s", flush=True)

    def result(self) -> dict:
        """The log's numbers, with bpb (after the round trip) and bytes (the model's artifact as written)."""
        parsed = parse_log(self.log)
        return {**parsed, "bpb": parsed["roundtrip_val_bpb"], "bytes": self.artifact.stat().st_size}


def run_all(jobs: list[Job], workers: int) -> None:
    """Teachers first, then the rest, `workers` processes at a time (one core each when more than one)."""
    unique = list({j.folder: j for j in jobs}.values())  # rows shared by several tables run once
    pending = [j for j in unique if not j.done()]
    print(f"{len(pending)} runs to do, {len(unique) - len(pending)} cached", flush=True)
    for wave in ([j for j in pending if not j.teacher], [j for j in pending if j.teacher]):
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda j: j.run(1 if workers > 1 else os.cpu_count()), wave))


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, torch {tg.torch.__version__}"


def seeded(env: dict, seed: int) -> dict:
    """SEED draws the learned weights' init; a mask has none (its scores start equal), so there the seed picks the random base."""
    return {**env, "BASE_SEED": str(seed)} if env.get("FREEZE_MODE") == "mask" else env


def jobs(cfg: dict, seeds: list[int], steps: int) -> list[Job]:
    return [Job(seeded({**common(steps), **cfg}, s), s, OUT) for s in seeds]


def row(label: str, cfg: dict, seeds: list[int], steps: int) -> dict:
    runs = [j.result() for j in jobs(cfg, seeds, steps)]
    code = (ROOT / "train_gpt.py").stat().st_size  # today's script: runs cached under an earlier revision (same model bytes) compare fairly
    mean = lambda k: statistics.mean(r[k] for r in runs)
    spread = lambda k: (max(r[k] for r in runs) - min(r[k] for r in runs)) / 2
    model = tg.build_model(tg.Hyperparameters(cfg))
    return {"label": label, "cfg": cfg, "shape": describe(cfg), "learned": sum(p.numel() for p in model.parameters()),
            "regenerated": sum(m.base.numel() for m in model.modules() if isinstance(m, tg.FrozenFC)), "est": estimate_bytes(cfg),
            "bytes": int(mean("bytes")) + code, "rt": mean("bpb"), "rt_spread": spread("bpb"), "sl": mean("sliding_val_bpb"),
            "sl_spread": spread("sliding_val_bpb"), "tok_s": statistics.mean(4096 / (r["step_avg_ms"] / 1000.0) for r in runs), "seeds": len(runs)}


def table(rows: list[dict], budget: str) -> list[str]:
    out = ["| budget | row | shape | learned params | regenerated params | est. bytes | artifact bytes | round-trip val_bpb | "
           "sliding val_bpb | train tokens/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {budget} | {r['label']} | {r['shape']} | {r['learned']:,} | {r['regenerated']:,} | {r['est']:,} | {r['bytes']:,} | "
                   f"{r['rt']:.4f} ± {r['rt_spread']:.4f} | {r['sl']:.4f} ± {r['sl_spread']:.4f} | {r['tok_s']:,.0f} |")
    return out


def size_matched_control(controls: list[dict], cfg: dict) -> dict:
    """The dense control whose estimate is nearest cfg's (estimates share their bias), stored the same way (codec, fp16 embedding)."""
    same_export = {k: cfg[k] for k in ("ARTIFACT_CODEC", "EMBED_FP16") if k in cfg}
    return {**min(controls, key=lambda c: abs(estimate_bytes({**c, **same_export}) - estimate_bytes(cfg))), **same_export}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", default="A,B")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--stage", default="main,tune")
    p.add_argument("--workers", type=int, default=2, help="runs at a time, one core each")
    a = p.parse_args(argv)
    seeds, stages, started = seeds_of(a.seeds, "bench quality"), choose(a.stage, ("main", "tune"), "--stage", "bench quality"), time.time()
    choose(a.budgets, BUDGETS, "--budgets", "bench quality")
    at_least("bench quality", steps=(a.steps, 1), workers=(a.workers, 1))
    runs_at_a_time("bench quality", a.workers)
    lines = [f"# Quality at equal artifact bytes: {datetime.date.today()}, {machine()}, {a.workers} runs at a time, "
             f"{a.steps} steps x 4,096 tokens, context 128, seeds {a.seeds}; val_bpb: mean ± half the spread of the seeds", ""]
    for name in a.budgets.split(","):
        budget = BUDGETS[name]
        print(f"budget {name} ({budget['bytes']:,} bytes)", flush=True)
        main_rows = budget["rows"] if "main" in stages else []
        sweep = [(f"sweep: {label}", cfg) for label, cfg in budget["tune"]] if "tune" in stages else []
        # the sweep: one seed each; the best random-map row that fits the budget then gets every seed, beside its dense control
        run_all([j for _, cfg in main_rows for j in jobs(cfg, seeds, a.steps)] + [j for _, cfg in sweep for j in jobs(cfg, seeds[:1], a.steps)],
                a.workers)
        rows = [row(label, cfg, seeds, a.steps) for label, cfg in main_rows] + [row(label, cfg, seeds[:1], a.steps) for label, cfg in sweep]
        candidates = [r for r in rows if r["cfg"].get("FREEZE_MODE", "none") != "none" and r["bytes"] <= budget["bytes"]]
        verdict = []
        if sweep and candidates:
            best = min(candidates, key=lambda r: r["sl"])
            control = size_matched_control(budget["controls"], best["cfg"])
            run_all(jobs(best["cfg"], seeds, a.steps) + jobs(control, seeds, a.steps), a.workers)
            tuned, dense = row(f"tuned: {best['label'].removeprefix('sweep: ')}", best["cfg"], seeds, a.steps), \
                row("size-matched dense control", control, seeds, a.steps)
            rows += [tuned, dense]
            gap = (dense["sl"] - tuned["sl"]) / dense["sl"]
            verdict = [f"Budget {name}: the tuned row ({tuned['bytes']:,} bytes) scores {gap:+.2%} against the size-matched dense control "
                       f"({dense['bytes']:,} bytes) in sliding val_bpb: {'at least' if gap >= 0.03 else 'less than'} the 3% asked for.", ""]
        lines += table(rows, name) + [""] + verdict
        print("\n".join(table(rows, name) + verdict), flush=True)
    lines.append(f"(this invocation took {time.time() - started:.0f} s)")
    OUT.mkdir(exist_ok=True)
    (OUT / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench quality"))
