"""The public write-ups' findings, tested by small runs on the embedded corpus on CPU (`bash run.sh bench claims`).

    python3 tests/bench_claims.py [--quick] [--seeds 1,2] [--workers 2] [--only NAME,NAME] [--fresh NAME,NAME]

Each claim is a scaled-down experiment: real `train_gpt.py` processes (context 128, 4,096 tokens a step), two seeds, and
a verdict from the seeds' means: "holds", "does not hold", or "within the seed spread" when the difference that decides
it is no larger than the two rows' half-spreads added. "At a fixed time" claims cap every run at the same wallclock
(MAX_WALLCLOCK_SECONDS, each run on one core, two at a time); the others give every run the same steps. Sizes are the
artifact's model bytes as written. Mask rows add the mask's compressed bits per masked weight and the supermask's
artifact split (mask bits, scales, everything else), each part compressed alone with the run's codec.

Runs are cached under bench_claims/ (ignored by git), keyed by their variables and seed: an interrupted benchmark goes
on where it stopped, a rerun prints the table from the cache, and --fresh NAME reruns one claim's runs from scratch.
--quick runs 40 steps or 12 s a run (full: 150 steps or 45 s) and scores a 65,536-token slice of the validation split (under
20 minutes on 2 cores); the full run also trains each mask configuration at the README demo's shape for 300 steps.
"""

from __future__ import annotations

import argparse
import datetime
import io
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "records"))
import train_gpt as tg  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from bench import at_least, runs_at_a_time, seeds_of  # noqa: E402
from bench_quality import Job, estimate_bytes, machine, run_all, seeded, shape  # noqa: E402
from tools import tool_main  # noqa: E402

OUT = ROOT / "bench_claims"
ADAPTERS, SELECTIVE, LOWRANK = "adapters write-up (5x512, rank 16)", "selective-freeze write-up", "low-rank substitution study"


def untrained(cfg: dict) -> dict:
    """The same model after one step at learning rate 0: where training starts."""
    return {**cfg, "ITERATIONS": "1", "MAX_WALLCLOCK_SECONDS": "0", **{v: "0" for v in ("MATRIX_LR", "SCALAR_LR", "TIED_EMBED_LR", "MASK_LR")}}


DENSE = shape(4, 128)
ADAPTER5 = shape(5, 128, FREEZE_MODE="adapter", FREEZE_TARGETS="all", LORA_RANK=16)
FROZEN_FC = shape(6, 192, MLP_MULT=4, FREEZE_MODE="frozen", FREEZE_TARGETS="fc")
SUPERMASK = shape(4, 128, FREEZE_MODE="mask", FREEZE_TARGETS="all,emb", BASE_INIT="xavier_he")
MASK_CONFIGS = {"mask all": shape(4, 128, FREEZE_MODE="mask", FREEZE_TARGETS="all"), "mask mlp": shape(4, 128, FREEZE_MODE="mask",
                FREEZE_TARGETS="mlp"), "supermask (all,emb)": SUPERMASK}


def size_matched(cfg: dict) -> dict:
    """The dense shape (layers, width, MLP multiple) whose estimated artifact is nearest cfg's."""
    target = estimate_bytes(cfg)
    candidates = [shape(n, d, MLP_MULT=m) for d in (128, 192, 256) for n in range(2, 13) for m in (2, 3, 4)]
    return min(candidates, key=lambda c: abs(estimate_bytes(c) - target))


def bigram_matched() -> dict:
    """3 x 128 plus a hashed bigram embedding, its buckets chosen so the estimated artifact matches 4 x 128 dense."""
    target = estimate_bytes(DENSE)
    return min((shape(3, 128, BIGRAM_BUCKETS=b, BIGRAM_DIM=64) for b in range(256, 8193, 256)), key=lambda c: abs(estimate_bytes(c) - target))


# A claim: name, the claim, its source, rows {label: (configuration, fixed time?)}, and a verdict function of the rows' results.
def claims(q: bool) -> list[dict]:
    adapters_by_depth = {f"adapter r16, {n} layers": (shape(n, 128, FREEZE_MODE="adapter", FREEZE_TARGETS="all", LORA_RANK=16), True)
                         for n in (2, 4, 5, 8, 20)}
    ensemble_member = shape(3, 128)
    ensemble = {**ensemble_member, "NUM_MODELS": "2"}
    steps = 40 if q else 150
    return [
        dict(name="depth", claim="adapters: depth 4-5 is best at a fixed time; 20 layers learn nothing", source=ADAPTERS,
             rows={**adapters_by_depth, "untrained, 20 layers": (untrained(adapters_by_depth["adapter r16, 20 layers"][0]), False)},
             verdict=verdict_depth),
        dict(name="rank", claim="adapters: rank 16 beats 32 and 64 at a fixed time", source=ADAPTERS,
             rows={f"adapter 5x128, rank {r}": ({**ADAPTER5, "LORA_RANK": str(r)}, True) for r in (16, 32, 64)},
             verdict=lambda r: best_of(r, "adapter 5x128, rank 16")),
        dict(name="ema", claim="adapters: an EMA from step 0 hurts, a late one does not", source=ADAPTERS,
             rows={"no EMA": (ADAPTER5, False), "EMA from step 0": ({**ADAPTER5, "EMA_DECAY": "0.95"}, False),
                   "EMA from 3/4 of the run": ({**ADAPTER5, "EMA_DECAY": "0.95", "EMA_START_STEP": str(3 * steps // 4)}, False)},
             verdict=lambda r: both(worse(r, "EMA from step 0", "no EMA"), not_worse(r, "EMA from 3/4 of the run", "no EMA"))),
        dict(name="selective", claim="selective freeze at a larger shape beats a size-matched dense model", source=SELECTIVE,
             rows={"frozen fc 6x192 MLP 4x": (FROZEN_FC, False), "size-matched dense": (size_matched(FROZEN_FC), False)},
             verdict=lambda r: better(r, "frozen fc 6x192 MLP 4x", "size-matched dense")),
        dict(name="progressive", claim="progressive freeze beats freezing at the random init", source=SELECTIVE,
             rows={"progressive freeze fc at 1/2": ({k: v for k, v in FROZEN_FC.items() if k != "FREEZE_MODE"} |
                                                   {"PROGRESSIVE_FREEZE_FRAC": "0.5"}, False),
                   "frozen fc from the start": (FROZEN_FC, False)},
             verdict=lambda r: better(r, "progressive freeze fc at 1/2", "frozen fc from the start")),
        dict(name="freeze_all", claim="freezing everything with rank-16 adapters is far worse than dense (>5%)", source=SELECTIVE,
             rows={"adapter all r16 5x128": (ADAPTER5, False), "dense 5x128": (shape(5, 128), False)},
             verdict=lambda r: both(worse(r, "adapter all r16 5x128", "dense 5x128", margin=0.05))),
        dict(name="correction", claim="a frozen MLP plus a low-rank correction approaches dense as the rank grows", source=SELECTIVE,
             rows={**{f"frozen MLP + rank {k}": ({**DENSE, "FREEZE_MODE": "frozen", "FREEZE_TARGETS": "mlp", "FROZEN_CORRECTION_RANK": str(k)}, False)
                      for k in (8, 32, 128)}, "dense 4x128": (DENSE, False)},
             verdict=verdict_correction),
        dict(name="distill", claim="distillation from a larger shape hurts", source="issue 12's list of public findings",
             rows={"teacher dense 4x256": (shape(4, 256), False),
                   "student 4x128 distilled": ({**DENSE, "DISTILL_TEACHER": "@teacher dense 4x256"}, False),
                   "dense 4x128": (DENSE, False)},
             verdict=lambda r: worse(r, "student 4x128 distilled", "dense 4x128")),
        dict(name="ensemble", claim="a two-model ensemble beats its members but loses to one larger model of the same bytes",
             source="issue 12's list of public findings",
             rows={"ensemble of two 3x128": (ensemble, False), "one member 3x128": (ensemble_member, False),
                   "one model of the same bytes": (size_matched(ensemble), False)},
             verdict=lambda r: both(better(r, "ensemble of two 3x128", "one member 3x128"),
                                    worse(r, "ensemble of two 3x128", "one model of the same bytes"))),
        dict(name="supermask", claim="a supermask alone learns (every weight frozen, only masks and scales learned)", source="supermask write-up",
             rows={**{k: (v, False) for k, v in MASK_CONFIGS.items()}, "untrained supermask": (untrained(SUPERMASK), False)},
             verdict=lambda r: better(r, "supermask (all,emb)", "untrained supermask", margin=0.05)),
        dict(name="bigram", claim="a hashed bigram embedding helps at equal bytes", source="7-layer bigram-hash run",
             rows={"3x128 + bigram hash": (bigram_matched(), False), "dense 4x128": (DENSE, False)},
             verdict=lambda r: better(r, "3x128 + bigram hash", "dense 4x128")),
        dict(name="fp16", claim="an fp16 embedding in the artifact scores better than int8, for more bytes",
             source="MLP-adapter and bigram runs (fp16 embedding)",
             rows={"dense 4x128 (zlib)": (DENSE, False), "EMBED_FP16=1": ({**DENSE, "EMBED_FP16": "1"}, False)}, verdict=verdict_fp16),
        dict(name="codecs", claim="lzma and zstd store the same model in fewer bytes than zlib, at the same score",
             source="the best random-map run (zstd 22); top records (lzma)",
             rows={"dense 4x128 (zlib)": (DENSE, False), "ARTIFACT_CODEC=lzma": ({**DENSE, "ARTIFACT_CODEC": "lzma"}, False),
                   "ARTIFACT_CODEC=zstd": ({**DENSE, "ARTIFACT_CODEC": "zstd"}, False)}, verdict=verdict_codecs),
        dict(name="lowrank", claim="low-rank substitution: a large rank matches dense, a medium one loses, doubling the layers does not recover it",
             source=LOWRANK,
             rows={"dense 4x128": (DENSE, False),
                   "lowrank r64 (large)": ({**DENSE, "FREEZE_MODE": "lowrank", "FREEZE_TARGETS": "all", "LORA_RANK": "64"}, False),
                   "lowrank r16 (medium)": ({**DENSE, "FREEZE_MODE": "lowrank", "FREEZE_TARGETS": "all", "LORA_RANK": "16"}, False),
                   "lowrank r16, 8 layers": (shape(8, 128, FREEZE_MODE="lowrank", FREEZE_TARGETS="all", LORA_RANK=16), False)},
             verdict=lambda r: both(not_worse(r, "lowrank r64 (large)", "dense 4x128"), worse(r, "lowrank r16 (medium)", "dense 4x128"),
                                    worse(r, "lowrank r16, 8 layers", "dense 4x128"))),
    ]


# ---- verdicts: each returns (measurement text, verdict); a row result has "bpb", "spread" (half the seeds' range), "bytes"

def diff(r: dict, a: str, b: str) -> tuple[float, float]:
    """(bpb of a minus bpb of b, the seed spread that difference must exceed)."""
    return r[a]["bpb"] - r[b]["bpb"], r[a]["spread"] + r[b]["spread"]


def compare(r, a, b, margin: float = 0.0, want: int = -1):
    """Does row a score lower (want -1) or higher (want +1) than row b, beyond the seeds' spread and `margin` (a fraction of b)?"""
    d, s = diff(r, a, b)
    text = f"{a} {r[a]['bpb']:.4f} vs {b} {r[b]['bpb']:.4f} ({d:+.4f}" + (f", {d / r[b]['bpb']:+.1%})" if margin else ")")
    return text, "holds" if want * d > max(s, margin * r[b]["bpb"]) else "within the seed spread" if abs(d) <= s else "does not hold"


better = compare
worse = lambda r, a, b, margin=0.0: compare(r, a, b, margin, want=+1)


def not_worse(r, a, b):
    d, s = diff(r, a, b)
    return f"{a} {r[a]['bpb']:.4f} vs {b} {r[b]['bpb']:.4f} ({d:+.4f})", "holds" if d <= s else "does not hold"


def both(*parts):
    """All parts must hold; one that does not hold decides; otherwise a part within the spread makes the whole so."""
    verdicts = [v for _, v in parts]
    whole = "does not hold" if "does not hold" in verdicts else "within the seed spread" if "within the seed spread" in verdicts else "holds"
    return "; ".join(t for t, _ in parts if t), whole


def best_of(r, winner):
    others = [k for k in r if k != winner]
    return both(*(better(r, winner, k) for k in others))


def verdict_depth(r):
    """The best depth is 4 or 5 (beyond the spread of every other depth), and 20 layers gain under a tenth of what the best gains."""
    depths = [k for k in r if k.startswith("adapter")]
    best = min(depths, key=lambda k: r[k]["bpb"])
    band = lambda k: k.endswith((" 4 layers", " 5 layers"))
    rivals = [k for k in depths if band(k) != band(best)]
    tie = any(abs(r[k]["bpb"] - r[best]["bpb"]) <= r[k]["spread"] + r[best]["spread"] for k in rivals)
    start, deep = r["untrained, 20 layers"]["bpb"], r["adapter r16, 20 layers"]["bpb"]
    learned = (start - deep) / max(start - r[best]["bpb"], 1e-9)
    text = (f"best {best.split(', ')[1]}; " + ", ".join(f"{k.split(', ')[1]} {r[k]['bpb']:.4f}" for k in depths)
            + f"; untrained {start:.4f}, so 20 layers made {learned:.0%} of the best's gain")
    depth_verdict = "within the seed spread" if tie else "holds" if band(best) else "does not hold"
    return both((text, depth_verdict), ("", "holds" if learned < 0.1 else "does not hold"))


def verdict_correction(r):
    ranks = [k for k in r if k.startswith("frozen")]
    gaps = [r[k]["bpb"] - r["dense 4x128"]["bpb"] for k in ranks]
    text = "gap to dense " + ", ".join(f"{k.split('rank ')[1]}: {g:+.4f}" for k, g in zip(ranks, gaps))
    shrinks = all(b <= a + r[k]["spread"] for a, b, k in zip(gaps, gaps[1:], ranks[1:]))
    s = r[ranks[0]]["spread"] + r[ranks[-1]]["spread"]
    return text, "holds" if shrinks and gaps[0] - gaps[-1] > s else "within the seed spread" if abs(gaps[0] - gaps[-1]) <= s else "does not hold"


def verdict_fp16(r):
    base, fp16 = r["dense 4x128 (zlib)"], r["EMBED_FP16=1"]
    text, verdict = better(r, "EMBED_FP16=1", "dense 4x128 (zlib)")
    return text + f", {fp16['bytes'] - base['bytes']:+,} bytes", verdict if fp16["bytes"] > base["bytes"] else "does not hold"


def verdict_codecs(r):
    """Lossless: the very same round-trip scores, in fewer bytes."""
    base, parts = r["dense 4x128 (zlib)"], []
    for codec in ("lzma", "zstd"):
        c = r[f"ARTIFACT_CODEC={codec}"]
        same = c["bpbs"] == base["bpbs"]
        parts.append((f"{codec} {c['bytes'] - base['bytes']:+,} bytes ({(c['bytes'] - base['bytes']) / base['bytes']:+.1%}), score "
                      + ("identical" if same else f"{c['bpb']:.4f}"), "holds" if same and c["bytes"] < base["bytes"] else "does not hold"))
    return both(*parts)


# ---- runs

DATA = ROOT / "data/datasets/shakespeare_sp1024"
QUICK_VAL_TOKENS = 65_536


def quick_data() -> Path:
    """OUT/data_quick: the embedded corpus with its validation split cut to its first QUICK_VAL_TOKENS + 1 tokens (a real shard)."""
    folder = OUT / "data_quick"
    if not (folder / "val_done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for shard in DATA.glob("*_train_*.bin"):
            (folder / shard.name).unlink(missing_ok=True)
            (folder / shard.name).symlink_to(shard)
        tokens = tg.load_data_shard(str(next(DATA.glob("*_val_*.bin"))))[:QUICK_VAL_TOKENS + 1]
        header = tg.np.zeros(tg.HEADER_INTS, dtype="<i4")
        header[:3] = tg.SHARD_MAGIC, tg.SHARD_VERSION, tokens.size
        (folder / "shakespeare_val_000000.bin").write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())
        (folder / "val_done").touch()
    return folder


def common(q: bool, timed: bool) -> dict:
    steps = 40 if q else 150
    fixed = {"ITERATIONS": "1000000", "MAX_WALLCLOCK_SECONDS": "12" if q else "45", "WARMDOWN_ITERS": "0"} if timed else \
        {"ITERATIONS": str(steps), "MAX_WALLCLOCK_SECONDS": "0", "WARMDOWN_ITERS": str(steps // 3)}
    return {"TRAIN_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "4096", "GRAD_ACCUM_STEPS": "1", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0",
            "TRAIN_LOG_EVERY": "50", "EVAL_STRIDE": "0", "VAL_BATCH_SIZE": "32768", **fixed,
            "DATA_PATH": str(OUT / "data_quick" if q else DATA), "TOKENIZER_PATH": str(ROOT / "data/tokenizers/shakespeare_1024_bpe.model")}


DEMO = {**shape(4, 256), "TRAIN_SEQ_LEN": "256", "TRAIN_BATCH_TOKENS": "8192", "GRAD_ACCUM_STEPS": "2", "ITERATIONS": "300",
        "WARMDOWN_ITERS": "60", "MAX_WALLCLOCK_SECONDS": "0"}  # the README demo's shape (bash run.sh), 300 steps: about its length


def jobs_of(claim: dict, q: bool, seeds: list[int]) -> dict[str, list[Job]]:
    """Each row's jobs, one per seed; a teacher named '@row' is that row's job of the same seed."""
    out = {}
    for label, (cfg, timed) in claim["rows"].items():
        env = {**common(q, timed), **cfg}
        teacher = env.pop("DISTILL_TEACHER", "")
        out[label] = [Job(seeded(env, s), s, OUT, out[teacher[1:]][i] if teacher else None) for i, s in enumerate(seeds)]
    return out


def summarise(jobs: list[Job]) -> dict:
    results = [j.result() for j in jobs]
    bpbs = [r["bpb"] for r in results]
    return {"bpb": statistics.mean(bpbs), "spread": (max(bpbs) - min(bpbs)) / 2, "bpbs": bpbs,
            "bytes": int(statistics.mean(r["bytes"] for r in results)), "steps": int(statistics.mean(r["steps"] for r in results))}


# ---- artifacts: each codec's bytes and time, mask bits, the supermask's split

def load_blob(path: Path) -> tuple[bytes, dict]:
    raw, _ = tg.inflate(path.read_bytes(), 1 << 34, str(path))
    return raw, tg.torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


def codec_row(label: str, path: Path) -> str:
    raw, _ = load_blob(path)
    cells = []
    for name, (_, compress) in tg.CODECS.items():
        t0 = time.perf_counter()
        packed = compress(raw)
        t1 = time.perf_counter()
        assert tg.inflate(packed, len(raw), name)[0] == raw
        cells.append(f"{len(packed):,} | {1000 * (t1 - t0):,.0f} / {1000 * (time.perf_counter() - t1):,.0f}")
    return f"| {label} | {len(raw):,} | " + " | ".join(cells) + " |"


def mask_row(label: str, path: Path) -> str:
    """Compressed bits per masked weight (each codec, the mask bits alone), and the share of weights kept."""
    _, blob = load_blob(path)
    weights = sum(int(tg.np.prod(s)) for s in blob["shape"].values())
    ones = sum(int(tg.np.unpackbits(b.numpy(), count=int(tg.np.prod(blob["shape"][n]))).sum()) for n, b in blob["bits"].items())
    bits = tg.saved_bytes({"bits": blob["bits"], "shape": blob["shape"]})
    cells = " | ".join(f"{8 * len(c(bits)) / weights:.3f}" for _, c in tg.CODECS.values())
    p = ones / weights
    entropy = -(p * tg.math.log2(p) + (1 - p) * tg.math.log2(1 - p)) if 0 < p < 1 else 0.0
    return f"| {label} | {weights:,} | {p:.1%} | {entropy:.3f} | {cells} |"


def split_rows(path: Path) -> list[str]:
    """The artifact's parts, each compressed alone with its codec: mask bits, scales (the kept float tensors), everything else."""
    raw, blob = load_blob(path)
    codec = blob["meta"]["codec"]
    compress = tg.CODECS[codec][1]
    parts = {"mask bits": {"bits": blob["bits"], "shape": blob["shape"]}, "scales and other kept tensors": {"keep": blob["keep"]},
             "int8 tensors": {k: blob[k] for k in ("q", "scale", "dtype")},
             "everything else (meta: configuration, checksums; pickle framing)": {k: v for k, v in blob.items() if k not in tg.ARTIFACT_SECTIONS}}
    count = lambda part: sum(t.numel() for t in tg.torch.utils._pytree.tree_leaves(part) if isinstance(t, tg.torch.Tensor))
    sizes = {name: sum(int(tg.np.prod(v)) for v in part["shape"].values())
             if name == "mask bits" else count(part) for name, part in parts.items()}  # mask bits: weights, not packed bytes
    rows = [f"| {name} | {sizes[name]:,} | {len(compress(tg.saved_bytes(part))):,} |" for name, part in parts.items()]
    return rows + [f"| the artifact ({codec}) | | {path.stat().st_size:,} |"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="40 steps or 12 s a run, a slice of the validation split")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--workers", type=int, default=2, help="runs at a time, one core each")
    p.add_argument("--only", default="", help="comma list of claim names")
    p.add_argument("--fresh", default="", help="comma list of claim names whose cached runs are deleted first")
    a = p.parse_args(argv)
    seeds, chosen = seeds_of(a.seeds, "bench claims"), claims(a.quick)
    at_least("bench claims", workers=(a.workers, 1))
    runs_at_a_time("bench claims", a.workers)
    names = [c["name"] for c in chosen]
    for arg in (a.only, a.fresh):
        bad = [n for n in arg.split(",") if n and n not in names]
        if bad:
            raise SystemExit(f"error: unknown claim {bad[0]!r}; accepted: {', '.join(names)}")
    chosen = [c for c in chosen if not a.only or c["name"] in a.only.split(",")]
    by_claim = {c["name"]: jobs_of(c, a.quick, seeds) for c in chosen}
    demo = {label: [Job({**common(a.quick, False), **cfg, **DEMO}, s, OUT) for s in seeds[:1]] for label, cfg in MASK_CONFIGS.items()}
    for name in filter(None, a.fresh.split(",")):
        for job in (j for js in by_claim.get(name, {}).values() for j in js):
            shutil.rmtree(job.folder, ignore_errors=True)
    everything = [j for rows in by_claim.values() for js in rows.values() for j in js] + ([] if a.quick else [j for js in demo.values() for j in js])
    started = time.time()
    quick_data() if a.quick else None
    run_all(everything, a.workers)
    lines = [f"# Published findings, measured small: {datetime.date.today()}, {machine()}; seeds {a.seeds}; "
             f"{'quick' if a.quick else 'full'} ({common(a.quick, False)['ITERATIONS']} steps or {common(a.quick, True)['MAX_WALLCLOCK_SECONDS']} s "
             f"a run, 4,096 tokens a step, context 128); val_bpb after the int8 round trip, mean of the seeds", "",
             "| claim | source | measured | verdict |", "|---|---|---|---|"]
    details = ["", "| claim | row | steps | model bytes | val_bpb (± half the seeds' spread) |", "|---|---|---|---|---|"]
    for claim in chosen:
        rows = {label: summarise(js) for label, js in by_claim[claim["name"]].items()}
        text, verdict = claim["verdict"](rows)
        lines.append(f"| {claim['claim']} | {claim['source']} | {text} | **{verdict}** |")
        details += [f"| {claim['name']} | {label} | {r['steps']} | {r['bytes']:,} | {r['bpb']:.4f} ± {r['spread']:.4f} |"
                    for label, r in rows.items()]
    lines += details
    trained = {label: js[0].artifact for c in by_claim.values() for label, js in c.items() if not label.startswith(("untrained", "teacher"))}
    kinds = {}  # one trained artifact of each kind for the codec table
    for c in chosen:
        for label, (cfg, _) in c["rows"].items():
            kind = (cfg.get("FREEZE_MODE", "none"), "emb" in cfg.get("FREEZE_TARGETS", ""), *(k for k in ("PROGRESSIVE_FREEZE_FRAC", "BIGRAM_BUCKETS",
                    "EMBED_FP16", "NUM_MODELS", "FROZEN_CORRECTION_RANK") if k in cfg))
            if label in trained and "ARTIFACT_CODEC" not in cfg:
                kinds.setdefault(kind, label)
    if trained:
        lines += ["", "Each codec on trained artifacts (the same raw torch.save bytes; compress / decompress ms on one core):", "",
                  "| artifact | raw bytes | zlib bytes | zlib ms | lzma bytes | lzma ms | zstd bytes | zstd ms |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [codec_row(label, trained[label]) for label in kinds.values()]
    masks = {f"{k}, demo shape 300 steps": js[0].artifact for k, js in demo.items() if js[0].done()} or \
        {k: trained[k] for k in MASK_CONFIGS if k in trained}
    if masks:
        lines += ["", "Mask bits after training (compressed alone; the kept share's entropy is what independent bits would need):", "",
                  "| mask configuration | masked weights | kept | entropy (bits) | zlib bits/weight | lzma bits/weight | zstd bits/weight |",
                  "|---|---|---|---|---|---|---|"] + [mask_row(k, v) for k, v in masks.items()]
        full = next(v for k, v in masks.items() if k.startswith("supermask"))
        lines += ["", "The full supermask's artifact, part by part:", "", "| part | elements | bytes compressed alone |", "|---|---|---|"]
        lines += split_rows(full)
    lines += ["", f"({len({j.folder for j in everything})} runs; this invocation took {time.time() - started:.0f} s)"]
    OUT.mkdir(exist_ok=True)
    (OUT / ("claims_quick.md" if a.quick else "claims.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench claims"))
