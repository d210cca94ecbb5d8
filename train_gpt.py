"""
train_gpt.py: learned adapters on random linear maps, for OpenAI's Parameter Golf. One self-contained script: with no variable set it
trains the challenge's naive baseline; every variant is chosen by an environment variable (README.md lists them; --env-help prints them).

    torchrun --standalone --nproc_per_node=8 train_gpt.py    # the challenge run, 8 GPUs
    python train_gpt.py                                       # one process, GPU or CPU
"""

import collections
import contextlib
import copy
import ctypes
import difflib
import fcntl
import gc
import glob
import hashlib
import io
import json
import lzma
import math
import os
import random
import re
import resource
import shlex
import signal
import stat
import sys
import time
import uuid
import warnings
import weakref
import zlib
from pathlib import Path
from types import SimpleNamespace

if sys.version_info < (3, 10):  # `bytes | None` in a signature is 3.10's: an older Python (RHEL 9's 3.9) failed at import, in a TypeError
    sys.stderr.write(f"error: Python {sys.version.split()[0]}: too old for train_gpt.py; accepted 3.10 or newer\n"), sys.exit(2)
import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils._python_dispatch import TorchDispatchMode

# -----------------------------------------------------------------------------
# HYPERPARAMETERS
# -----------------------------------------------------------------------------

class ConfigError(ValueError): """Bad input (a variable, a file): reported as one line that names it, exit status 2."""

@contextlib.contextmanager
def refused_as(what: str, *kinds, error=ConfigError, quiet=False):  # the errors that checking untrusted input can raise, as one line starting `what`
    try:
        with warnings.catch_warnings() if quiet else contextlib.nullcontext():  # quiet: torch's loaders warn before refusing some input
            warnings.simplefilter("ignore") if quiet else None  # (a pickle protocol, a bare tensor as a state): the refusal is the one line
            yield
    except (kinds or (ConfigError, RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError, ArithmeticError)) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.rstrip().endswith(":")] or [str(e).strip()]  # not a preamble
        why = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {next((ln for ln in lines if 'nsupported' in ln), lines[0])[:160]}"
        raise error(f"{what} ({why})") from None

def refuse_first(*checks, error=ConfigError) -> None:  # raises the message of the first (condition, message) whose condition holds
    if message := next((message for failed, message in checks if failed), None):
        raise error(message)

def check_torch(version: str, floor=(2, 5)) -> None:  # attention's enable_gqa (grouped KV heads) is 2.5's: older fails late, as a TypeError
    refuse_first((tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < floor, f"PyTorch {version}: too old for train_gpt.py; accepted "
                  f"{'.'.join(map(str, floor))} or newer (pip install -U torch; a CPU-only machine: torch==2.13.0, as run.sh installs)"))

def check_finite(tensors: dict, where: str) -> None:
    bad = [name for name, t in tensors.items() if isinstance(t, Tensor) and t.is_floating_point() and not torch.isfinite(t).all()]
    refuse_first((bad, f"{where}: tensor {bad[:1] and bad[0]} holds non-finite values (NaN or infinity)"))

# Published configurations (RECIPE=<name>; the environment wins). Sources, and values the write-ups leave unstated: README "Recipes".
RECIPES = {"baseline": "",
    "adapters_5x512": "NUM_LAYERS=5 FREEZE_MODE=adapter FREEZE_TARGETS=all LORA_RANK=16",
    "selective_freeze_12x384": "NUM_LAYERS=12 MODEL_DIM=384 NUM_HEADS=6 NUM_KV_HEADS=3 MLP_MULT=4 FREEZE_MODE=frozen FREEZE_TARGETS=fc",
    "progressive_freeze_12x384": "NUM_LAYERS=12 MODEL_DIM=384 NUM_HEADS=6 NUM_KV_HEADS=3 MLP_MULT=4 FREEZE_TARGETS=fc PROGRESSIVE_FREEZE_FRAC=0.5",
    "supermask": "FREEZE_MODE=mask FREEZE_TARGETS=all,emb BASE_INIT=xavier_he",
    "bigram_hash_7l": "NUM_LAYERS=7 MLP_MULT=4 BIGRAM_BUCKETS=8192 BIGRAM_DIM=128 ROPE_BASE=50000 MUON_WD=0.025 ADAM_WD=0.025 "
                      "TRAIN_BATCH_TOKENS=131072 TRAIN_SEQ_LEN=2048 EVAL_STRIDE=512 EMBED_FP16=1",
    "mlp_adapter_12l_r160": "NUM_LAYERS=12 MLP_MULT=3 FREEZE_MODE=adapter FREEZE_TARGETS=mlp LORA_RANK=160 TRAIN_SEQ_LEN=2048 EMBED_FP16=1 "
                            "INT6_LAYERS=5,6,7 MATRIX_LR=0.02 SCALAR_LR=0.02 TIED_EMBED_LR=0.03 EVAL_STRIDE=512",
    "lowrank_large": "FREEZE_MODE=lowrank FREEZE_TARGETS=all LORA_RANK=256",
    "lowrank_medium": "FREEZE_MODE=lowrank FREEZE_TARGETS=all LORA_RANK=64",
    "lowrank_medium_deep": "NUM_LAYERS=18 FREEZE_MODE=lowrank FREEZE_TARGETS=all LORA_RANK=64",
    "lowrank_increasing": "FREEZE_MODE=lowrank FREEZE_TARGETS=all LORA_RANKS=32..256",
    "lowrank_decreasing": "FREEZE_MODE=lowrank FREEZE_TARGETS=all LORA_RANKS=256..32",
    "lowrank_decsa_fullmlp": "FREEZE_MODE=lowrank FREEZE_TARGETS=attn LORA_RANKS_ATTN=256..32",
    "lowrank_medsa_lgmlp": "FREEZE_MODE=lowrank FREEZE_TARGETS=all LORA_RANKS_ATTN=64 LORA_RANKS_MLP=256"}

LR_MAX = 1e30  # far beyond any useful rate; above ~1e37 Adam's bias-corrected step overflows float32
# (variable, default, kind, accepted: (low, high) inclusive or a tuple of choices, meaning)
ENV_VARS = [
    # data and run
    ("DATA_PATH", "./data/datasets/fineweb10B_sp1024", "str", None, "folder holding the `*_train_*.bin` and `*_val_*.bin` shards"),
    ("TOKENIZER_PATH", "./data/tokenizers/fineweb_1024_bpe.model", "str", None, "the shards' tokenizer (val_bpb's bytes): SentencePiece or JSON"),
    ("RUN_ID", "", "str", None, "log `logs/<RUN_ID>.txt`; empty = a random id"), ("SEED", 1337, "int", (0, 2**31 - 1), "seed of the initialisation"),
    ("RECIPE", "", "str", tuple(RECIPES), "a published configuration by name (README \"Recipes\"); variables set in the environment win"),
    # model
    ("VOCAB_SIZE", 1024, "int", (2, 65536), "must equal the tokenizer's vocabulary"),
    ("NUM_LAYERS", 9, "int", (1, 1024), "transformer blocks"), ("MODEL_DIM", 512, "int", (2, 65536), "residual width"),
    ("NUM_HEADS", 8, "int", (1, 4096), "query heads; MODEL_DIM / NUM_HEADS must be even (RoPE)"),
    ("NUM_KV_HEADS", 4, "int", (1, 4096), "key/value heads; must divide NUM_HEADS"),
    ("MLP_MULT", 2.0, "float", (0.01, 64.0), "MLP hidden width = round(MLP_MULT x MODEL_DIM)"),
    ("TIE_EMBEDDINGS", 1, "int", (0, 1), "1 = the output head is the token embedding"),
    ("TIED_EMBED_INIT_STD", 0.005, "float", (0.0, 1e3), "init std of the (tied) embedding"),
    ("ROPE_BASE", 10000.0, "float", (1.0, 1e12), "RoPE frequency base"),
    ("LOGIT_SOFTCAP", 30.0, "float", (1e-3, 1e6), "logits = cap * tanh(logits / cap)"),
    ("QK_GAIN_INIT", 1.5, "float", (0.0, 1e3), "initial per-head gain on the normalised queries"),
    ("BIGRAM_BUCKETS", 0, "int", (0, 1 << 24), "hashed bigram embedding: buckets of (previous, current) token pairs; 0 = off"),
    ("BIGRAM_DIM", 128, "int", (1, 65536), "width of a bigram bucket's embedding, projected to MODEL_DIM by a zero-initialised matrix"),
    ("NUM_MODELS", 1, "int", (1, 2), "2 = train two models in one run and artifact; evaluation averages their probabilities"),
    # schedule
    ("ITERATIONS", 20000, "int", (1, 10**9), "training steps (the wallclock cap may stop earlier)"),
    ("TRAIN_BATCH_TOKENS", 524288, "int", (1, 10**10), "tokens per step, all ranks and micro-steps together"),
    ("TRAIN_SEQ_LEN", 1024, "int", (2, 1 << 20), "context length of training and evaluation"),
    ("GRAD_ACCUM_STEPS", 0, "int", (0, 4096), "micro-steps per step; 0 = 8 / world size (world size must divide 8)"),
    ("WARMUP_STEPS", 20, "int", (0, 10**6), "compile-warmup steps, run then rolled back (weights, optimizer, data)"),
    ("WARMDOWN_ITERS", 1200, "int", (0, 10**9), "linear LR warmdown over the last N steps (in wallclock terms when capped)"),
    ("MAX_WALLCLOCK_SECONDS", 600.0, "float", (0.0, 1e9), "training-time cap, synchronised across ranks; 0 = none"),
    ("TRAIN_LOG_EVERY", 200, "int", (1, 10**9), "log train_loss every N steps (and the first 10)"),
    ("VAL_LOSS_EVERY", 1000, "int", (0, 10**9), "validate every N steps; 0 = only at the end"),
    ("VAL_BATCH_SIZE", 524288, "int", (1, 10**10), "validation tokens a batch, all ranks: each forward 1/8 of it (past 8 ranks 1/world size)"),
    ("EVAL_STRIDE", 0, "int", (0, 1 << 20), "sliding-window stride of the final evaluation; 0 = off"),
    ("EVAL_BATCH_SEQS", 0, "int", (0, 1 << 20), "windows per forward pass in sliding evaluation; 0 = as plain evaluation"),
    # optimizer
    ("MATRIX_LR", 0.04, "float", (0.0, LR_MAX), "Muon learning rate of the block matrices"),
    ("SCALAR_LR", 0.04, "float", (0.0, LR_MAX), "Adam learning rate of vectors and scalars"),
    ("TIED_EMBED_LR", 0.05, "float", (0.0, LR_MAX), "Adam learning rate of the tied embedding"),
    ("EMBED_LR", 0.6, "float", (0.0, LR_MAX), "Adam learning rate of the embedding when untied"),
    ("HEAD_LR", 0.008, "float", (0.0, LR_MAX), "Adam learning rate of the output head when untied"),
    ("MUON_MOMENTUM", 0.95, "float", (0.0, 1.0), "Muon momentum after warmup"),
    ("MUON_MOMENTUM_WARMUP_START", 0.85, "float", (0.0, 1.0), "Muon momentum at step 0"),
    ("MUON_MOMENTUM_WARMUP_STEPS", 500, "int", (0, 10**9), "steps of linear momentum warmup"),
    ("MUON_BACKEND_STEPS", 5, "int", (1, 100), "Newton-Schulz iterations"),
    ("BETA1", 0.9, "float", (0.0, 0.999999), "Adam beta1"), ("BETA2", 0.95, "float", (0.0, 0.999999), "Adam beta2"),
    ("ADAM_EPS", 1e-8, "float", (0.0, 1.0), "Adam epsilon"), ("GRAD_CLIP_NORM", 0.0, "float", (0.0, 1e30), "clip the global grad norm; 0 = off"),
    ("MUON_WD", 0.0, "float", (0.0, 1e3), "decoupled weight decay of Muon's matrices: p -= lr * wd * p"),
    ("ADAM_WD", 0.0, "float", (0.0, 1e3), "decoupled weight decay of the embeddings and head (not of vectors and scalars)"),
    ("EMA_DECAY", 0.0, "float", (0.0, 0.999999), "EMA of the weights, used for the artifact and the final evaluation; 0 = off"),
    ("EMA_START_STEP", 0, "int", (0, 10**9), "step at which the EMA starts from a copy of the weights"),
    ("DISTILL_TEACHER", "", "str", None, "artifact of a trained teacher (its configuration comes from the artifact); empty = off"),
    ("DISTILL_ALPHA", 0.5, "float", (0.0, 1.0), "loss = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T)"),
    ("DISTILL_TEMP", 2.0, "float", (1e-3, 1e3), "distillation softening temperature T"),
    # random linear maps (README: "Random linear maps")
    ("FREEZE_MODE", "none", "str", ("none", "adapter", "frozen", "lowrank", "mask"),
     "what a targeted projection is: dense, random base + adapter, frozen random, low-rank, supermask"),
    ("FREEZE_TARGETS", "", "str", None, "comma list of q,k,v,o,fc,proj (attn, mlp, all), in mask mode emb; empty = all (frozen, progressive: fc)"),
    ("LORA_RANK", 16, "int", (1, 65536), "rank of adapters and low-rank factors"),
    ("LORA_RANKS", "", "str", None, "ranks through depth, overriding LORA_RANK: one per layer (4,8,16), one for all, or A..B (linear, rounded)"),
    ("LORA_RANKS_ATTN", "", "str", None, "the same for the attention projections (q, k, v, o) alone, overriding LORA_RANKS"),
    ("LORA_RANKS_MLP", "", "str", None, "the same for the MLP projections (fc, proj) alone, overriding LORA_RANKS"),
    ("BASE_SEED", 0, "int", (0, 2**32 - 1), "seed of every regenerated matrix (each projection derives its own)"),
    ("BASE_INIT", "gaussian", "str", ("gaussian", "uniform", "orthogonal", "rademacher", "he_uniform", "xavier_he"),
     "distribution of the regenerated matrices (xavier_he: uniform, Xavier, but He, +-sqrt(6 / fan_in), for fc)"),
    ("FROZEN_CORRECTION_RANK", 0, "int", (0, 65536), "frozen mode with fc and proj frozen: a learned rank-r path beside each MLP"),
    ("PROGRESSIVE_FREEZE_FRAC", 0.0, "float", (0.0, 0.999), "train the targets dense, freeze them after this fraction of the run; 0 = off"),
    ("MASK_LR", 0.05, "float", (0.0, LR_MAX), "Adam learning rate of the mask scores"),
    ("MASK_INIT_SCORE", 1.0, "float", (1e-6, 1e3), "initial score of every mask entry (positive: every weight starts kept)"),
    ("MASK_TEMP_START", 1.0, "float", (1e-6, 1e6), "sigmoid temperature of the mask's straight-through gradient at the start"),
    ("MASK_TEMP_END", 0.1, "float", (1e-6, 1e6), "... at the end of the run (annealed geometrically)"),
    # export and workflow
    ("INT6_LAYERS", "", "str", None, "comma list of block indices, or all: their matrices are stored at 6 bits (31 levels a side)"),
    ("ARTIFACT", "final_model.int8.ptz", "str", None, "artifact written by training and read by EVAL_ONLY"),
    ("ARTIFACT_CODEC", "zlib", "str", ("zlib", "lzma", "zstd"), "compressor of the artifact (zstd needs the zstandard package); reading detects it"),
    ("EMBED_FP16", 0, "int", (0, 1), "1 = the token embedding is stored as fp16 in the artifact instead of int8 per row"),
    ("EVAL_ONLY", 0, "int", (0, 1), "1 = evaluate ARTIFACT, plain and sliding, and exit (model, data and eval settings from the artifact)"),
    ("CHECKPOINT_EVERY", 0, "int", (0, 10**9), "write a checkpoint every N steps (write, then rename over the last good one); 0 = off"),
    ("CHECKPOINT_PATH", "", "str", None, "checkpoint file; empty = checkpoints/<RUN_ID>.pt"),
    ("RESUME", "", "str", None, "checkpoint to continue from (the same configuration); empty = start fresh"),
    # device
    ("COMPILE", "auto", "str", ("auto", "0", "1"), "torch.compile(fullgraph=True); auto = on for CUDA, off for CPU"),
    ("COMPILE_BACKEND", "inductor", "str", ("inductor", "eager", "aot_eager"), "backend of torch.compile"),
]
ENV_NAMES = [name for name, *_ in ENV_VARS]
TORCH_ENV = ("TORCHINDUCTOR_", "TORCHDYNAMO_", "PYTORCH_")  # torch's own knobs (CUDA graphs, autotune, allocator): logged on env: like ours
# (variables, whether they act in this run, what they need): one the environment sets where it cannot act gets a warning that says what it
NO_EFFECT_UNLESS = [  # needs and this run's value of that; not an error, since a sweep over modes may set it for all of them
    ("LORA_RANK LORA_RANKS LORA_RANKS_ATTN LORA_RANKS_MLP", lambda h: h.freeze_mode in ("adapter", "lowrank"), "FREEZE_MODE=adapter or lowrank"),
    ("MASK_LR MASK_INIT_SCORE MASK_TEMP_START MASK_TEMP_END", lambda h: h.freeze_mode == "mask", "FREEZE_MODE=mask"),
    ("BASE_SEED BASE_INIT", lambda h: h.freeze_mode in ("adapter", "frozen", "mask"), "a random base (FREEZE_MODE=adapter, frozen or mask)"),
    ("TIED_EMBED_LR", lambda h: h.tie_embeddings and ("emb" not in h.targets or h.bigram_buckets), "TIE_EMBEDDINGS=1, no emb in FREEZE_TARGETS"),
    ("TIED_EMBED_INIT_STD EMBED_FP16", lambda h: "emb" not in h.targets, "a learned token embedding (no emb in FREEZE_TARGETS)"),
    ("EMBED_LR HEAD_LR", lambda h: not h.tie_embeddings, "TIE_EMBEDDINGS=0"), ("BIGRAM_DIM", lambda h: h.bigram_buckets, "BIGRAM_BUCKETS"),
    ("EMA_START_STEP", lambda h: h.ema_decay, "EMA_DECAY"), ("DISTILL_ALPHA DISTILL_TEMP", lambda h: h.distill_teacher, "DISTILL_TEACHER"),
    ("EVAL_BATCH_SEQS", lambda h: h.eval_stride, "EVAL_STRIDE"), ("CHECKPOINT_PATH", lambda h: h.checkpoint_every, "CHECKPOINT_EVERY"),
    ("COMPILE_BACKEND", lambda h: h.compile == "1" or h.compile == "auto" and torch.cuda.is_available(), "COMPILE=1 (auto: on a GPU)")]

def shown(text: str, quote=repr) -> str:  # a value as a message quotes it: a pasted file's text stays one short line
    return quote(text) if len(text) <= 100 else f"{quote(text[:60])}... ({len(text):,} characters)"

def _parse_var(name: str, raw: str, kind: str, accepted):
    try:  # int() would take '١٢' and '1_000': they are parsed as "x" is, refused
        value = {"int": int, "float": float, "str": str}[kind](raw if kind == "str" else raw.strip() if raw.isascii() and "_" not in raw else "x")
    except ValueError:
        raise ConfigError(f"{name}={shown(raw)}: not {'an integer' if kind == 'int' else 'a number'}") from None
    ranged, chosen = isinstance(accepted, tuple) and kind != "str", isinstance(accepted, tuple) and kind == "str"
    refuse_first((not raw.isprintable(), f"{name}={shown(raw)}: holds " + ("bytes that are not UTF-8; accepted UTF-8 text" if raw != raw.encode(
                  errors="replace").decode() else "a control character (a line ending from a Windows file?); remove it")),
                 (kind == "float" and not math.isfinite(value), f"{name}={shown(raw)}: not a finite number"),  # '~/data' in quotes: ./~/data
                 (shell := kind == "str" and re.search(r"(?<![^/])~[^/]*|\$\{?[A-Za-z_]\w*\}?", raw), shell and f"{name}={shown(raw)}: holds "
                  f"{shell[0][:40]!r}, left unexpanded (quoted, or from an env file); accepted: the path written out"),
                 (ranged and not accepted[0] <= value <= accepted[1],
                  ranged and f"{name}={raw if len(raw) <= 100 else shown(raw)}: out of range; accepted {' to '.join(map(str, accepted))}"),
                 (chosen and value not in accepted, chosen and f"{name}={shown(raw)}: unknown value; accepted: {', '.join(accepted)}"))
    return value

class Hyperparameters:  # every knob of the run, read from the environment and validated before any work
    def __init__(self, environ=os.environ):
        recipe = _parse_var("RECIPE", environ["RECIPE"], "str", tuple(RECIPES)) if environ.get("RECIPE") else ""
        self.recipe_vars = dict(item.split("=", 1) for item in RECIPES[recipe].split()) if recipe else {}
        merged = {**self.recipe_vars, **environ}  # the environment wins
        for name, default, kind, accepted, _ in ENV_VARS:
            raw = merged.get(name)  # an empty number or choice is a mistake, not the default
            refuse_first((raw == "" and (kind != "str" or accepted), f"{name}='': empty; unset it for the default {default}"))
            setattr(self, name.lower(), default if not raw else _parse_var(name, raw, kind, accepted))
        self.run_id = self.run_id or str(uuid.uuid4())
        refuse_first((not re.fullmatch(r"(?!\.)[A-Za-z0-9_.-]{1,200}", self.run_id),
                      f"RUN_ID={shown(self.run_id)}: accepted 1 to 200 letters, digits, _ . and - (it names logs/<RUN_ID>.txt)"))
        self.mlp_hidden = max(1, round(self.mlp_mult * self.model_dim))
        self.check_shapes(), self.check_random_maps(), self.check_export()
        now = lambda needs: ", ".join(f"{v}={shlex.quote(str(getattr(self, v.lower())))}" for v in re.findall("[A-Z_]{4,}", needs))
        self.no_effect = [f"{n}={shlex.quote(environ[n])} has no effect: it needs {needs}; this run has {now(needs)}" for names, acts, needs in
                          NO_EFFECT_UNLESS for n in names.split() if environ.get(n) and not acts(self)]  # set by the environment, not the recipe
        self.misspelt = [f"{k}={shown(v, shlex.quote)} is not a variable of train_gpt.py, so this run ignores it; did you mean {m[0]}?" for k, v in
                         environ.items() if k not in ENV_NAMES and (m := difflib.get_close_matches(k.upper(), ENV_NAMES, 1, 0.85))]  # NUM_LAYER=12
    def check_shapes(self) -> None:
        refuse_first((self.model_dim % self.num_heads, f"MODEL_DIM={self.model_dim}: not divisible by NUM_HEADS={self.num_heads}"),
                     ((self.model_dim // self.num_heads) % 2, f"NUM_HEADS={self.num_heads}: head dim MODEL_DIM/NUM_HEADS="
                      f"{self.model_dim // self.num_heads} must be even for RoPE"),
                     (self.num_heads % self.num_kv_heads, f"NUM_KV_HEADS={self.num_kv_heads}: must divide NUM_HEADS={self.num_heads}"),
                     (self.eval_stride > self.train_seq_len and not self.eval_only,  # EVAL_ONLY: against the artifact's context
                      f"EVAL_STRIDE={self.eval_stride}: larger than TRAIN_SEQ_LEN={self.train_seq_len}; accepted 0 to TRAIN_SEQ_LEN"))
    def check_random_maps(self) -> None:  # FREEZE_* and LORA_* together: parsed target set, per-layer ranks of each group, compatible settings
        mode, progressive, layers = self.freeze_mode, self.progressive_freeze_frac > 0, self.num_layers
        self.targets = parse_targets(self.freeze_targets or ("fc" if mode == "frozen" or progressive else "" if mode == "none" else "all"))
        schedules = {n: rank_schedule(n, getattr(self, n.lower()), layers) for n in RANK_VARS if getattr(self, n.lower())}
        for name, ranks in schedules.items():
            got = f"{len(ranks)} ranks for NUM_LAYERS={layers}" if len(ranks) != layers else f"a 0 at blocks.{ranks.index(0)}" if 0 in ranks else ""
            refuse_first((got, f"{name}={getattr(self, name.lower())!r}: {got}; accepted one rank for all, one per layer or A..B, each at least 1"))
        shared = schedules.get("LORA_RANKS", [self.lora_rank] * layers)
        self.attn_ranks, self.mlp_ranks = schedules.get("LORA_RANKS_ATTN", shared), schedules.get("LORA_RANKS_MLP", shared)
        for group, ranks in (("attn", self.attn_ranks), ("mlp", self.mlp_ranks)):
            least = min((min(d) for t, d in projection_dims(self).items() if t in self.targets and t in TARGET_GROUPS[group]), default=0)
            var = next((n for n in (f"LORA_RANKS_{group.upper()}", "LORA_RANKS") if n in schedules), "LORA_RANK")
            refuse_first((mode in ("adapter", "lowrank") and least and max(ranks) > least, f"{var}={getattr(self, var.lower())}: above "
                          f"the smallest targeted projection dimension {least}; accepted 1 to {least}"))
        refuse_first(("emb" in self.targets and (mode != "mask" or not self.tie_embeddings), f"FREEZE_TARGETS={self.freeze_targets!r}: emb (the "
                      f"tied embedding as a masked random matrix) needs FREEZE_MODE=mask and TIE_EMBEDDINGS=1, not {mode}"),
                     (mode == "none" and self.freeze_targets and not progressive, f"FREEZE_TARGETS={self.freeze_targets!r}: has no effect with "
                      "FREEZE_MODE=none (set FREEZE_MODE or PROGRESSIVE_FREEZE_FRAC)"),
                     (progressive and mode != "none", f"PROGRESSIVE_FREEZE_FRAC={self.progressive_freeze_frac}: trains the targets as dense "
                      f"matrices, so it needs FREEZE_MODE=none, not {mode}"),
                     (self.frozen_correction_rank and not (mode == "frozen" and {"fc", "proj"} <= set(self.targets)),
                      f"FROZEN_CORRECTION_RANK={self.frozen_correction_rank}: needs FREEZE_MODE=frozen with both fc and proj in "
                      f"FREEZE_TARGETS (got FREEZE_MODE={mode}, targets {','.join(self.targets) or 'none'})"),
                     (self.mask_temp_end > self.mask_temp_start, f"MASK_TEMP_END={self.mask_temp_end}: must not exceed MASK_TEMP_START="
                      f"{self.mask_temp_start} (the temperature anneals down)"))
    def check_export(self) -> None:  # INT6_LAYERS as block indices; the default checkpoint path (checked writable in claim_outputs)
        accepted, text = f"accepted 'all' or a comma list of block indices 0 to {self.num_layers - 1}", self.int6_layers
        blocks = [] if not text else range(self.num_layers) if text.strip() == "all" else int_list("INT6_LAYERS", text, accepted)
        refuse_first((blocks and max(blocks) >= self.num_layers, f"INT6_LAYERS={text!r}: {accepted}"))
        self.int6_blocks, self.checkpoint_path = tuple(sorted(set(blocks))), self.checkpoint_path or f"checkpoints/{self.run_id}.pt"
        zstandard() if self.artifact_codec == "zstd" else None  # a missing package is refused before any work, not after training
    def check_world(self, world_size: int) -> None:  # the checks that need the number of processes; sets grad_accum_steps
        refuse_first((not self.grad_accum_steps and 8 % world_size,
                      f"WORLD_SIZE={world_size}: must divide 8 (1, 2, 4 or 8 processes), or set GRAD_ACCUM_STEPS"))
        self.grad_accum_steps = self.grad_accum_steps or 8 // world_size
        per_step, training = world_size * self.grad_accum_steps * self.train_seq_len, not self.eval_only  # EVAL_ONLY: the artifact's context
        refuse_first((training and self.train_batch_tokens % per_step, f"TRAIN_BATCH_TOKENS={self.train_batch_tokens}: must be a multiple of "
                      f"world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN = {per_step}"),
                     (self.val_batch_size < (k := max(8, world_size)) * self.train_seq_len and training, f"VAL_BATCH_SIZE={self.val_batch_size}: "
                      f"must hold {k} TRAIN_SEQ_LEN windows ({k * self.train_seq_len}): a rank evaluates 1/{k} of it at a time, as the house script"))
    def model_config(self) -> dict:  # what is needed to rebuild the model: stored in the artifact
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k in MODEL_KEYS for v in [getattr(self, k)]}

MODEL_KEYS = ("vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_hidden", "tie_embeddings", "tied_embed_init_std",
              "rope_base", "logit_softcap", "qk_gain_init", "train_seq_len", "freeze_mode", "targets", "attn_ranks", "mlp_ranks", "base_seed",
              "base_init", "frozen_correction_rank", "mask_init_score", "bigram_buckets", "bigram_dim", "num_models")
RANK_VARS = ("LORA_RANKS", "LORA_RANKS_ATTN", "LORA_RANKS_MLP")
MODEL_VARS = {k.upper() for k in MODEL_KEYS} | {"MLP_MULT", "FREEZE_TARGETS", "LORA_RANK", *RANK_VARS}  # under EVAL_ONLY: must agree
EVAL_SETTINGS = ("DATA_PATH", "TOKENIZER_PATH", "VAL_BATCH_SIZE", "EVAL_STRIDE", "EVAL_BATCH_SEQS")  # stored in the artifact
EVAL_ONLY_VARS = EVAL_SETTINGS + ("RUN_ID", "ARTIFACT", "EVAL_ONLY", "COMPILE", "COMPILE_BACKEND")  # apply; any other is refused

def int_list(name: str, text: str, accepted: str = "", sep: str = ",") -> list[int]:
    """'4,8, 16' -> [4, 8, 16]; an empty item or anything but ASCII digits is refused (`accepted` says what the variable takes)."""
    items = [t.strip() for t in text.split(sep)]
    refuse_first((not all(re.fullmatch(r"[0-9]{1,9}", t) for t in items),
                  f"{name}={text!r}: not a {'comma list' if sep == ',' else 'range'} of integers" + (accepted and f"; {accepted}")))
    return [int(t) for t in items]

def rank_schedule(name: str, text: str, layers: int) -> list[int]:  # '4,8,16' (one per layer), '8' (all) or '256..32' (linear through depth)
    if len(text.split("..")) == 2:
        a, b = int_list(name, text, "accepted one rank for all, one per layer or A..B", sep="..")
        return [round(a + (b - a) * i / max(layers - 1, 1)) for i in range(layers)]
    return ranks * layers if len(ranks := int_list(name, text)) == 1 else ranks

PROJECTIONS = ("q", "k", "v", "o", "fc", "proj")  # the block projections; "emb" (the tied embedding) can be a target too, in mask mode
TARGET_GROUPS = {"attn": ("q", "k", "v", "o"), "mlp": ("fc", "proj"), "all": PROJECTIONS}

def parse_targets(text: str) -> tuple[str, ...]:  # 'attn,fc' -> ('q', 'k', 'v', 'o', 'fc'), in the order of PROJECTIONS
    items, accepted = [t.strip() for t in text.split(",")] if text else [], PROJECTIONS + ("emb",) + tuple(TARGET_GROUPS)
    bad = next((t for t in items if t not in accepted), None)
    refuse_first((bad is not None, f"FREEZE_TARGETS={text!r}: " + ("an empty item; accepted a comma list of " if bad == "" else
                                                                 f"unknown projection {bad!r}; accepted: ") + ", ".join(accepted)))
    return tuple(p for p in PROJECTIONS + ("emb",) if p in {q for t in items for q in TARGET_GROUPS.get(t, (t,))})

def projection_dims(cfg) -> dict[str, tuple[int, int]]:  # (in, out) features of each block projection
    dim, kv = cfg.model_dim, cfg.num_kv_heads * (cfg.model_dim // cfg.num_heads)
    return {"q": (dim, dim), "k": (dim, kv), "v": (dim, kv), "o": (dim, dim), "fc": (dim, cfg.mlp_hidden), "proj": (cfg.mlp_hidden, dim),
            "emb": (dim, cfg.vocab_size)}

def env_help() -> str:
    acc = lambda kind, a: (" / ".join(a) if kind == "str" else f"{a[0]:,} to {a[1]:,}" if kind == "int" else f"{a[0]:g} to {a[1]:g}") if a else "text"
    row = lambda name, default, kind, a, meaning: f"| `{name}` | {f'`{default}`' if default != '' else '(empty)'} | {acc(kind, a)} | {meaning} |"
    return "\n".join(["| variable | default | accepted | meaning |", "|---|---|---|---|"] + [row(*v) for v in ENV_VARS])

# -----------------------------------------------------------------------------
# MUON OPTIMIZER
# -----------------------------------------------------------------------------

def newton_schulz_orthogonalize(grad: Tensor, steps: int, eps: float = 1e-7) -> Tensor:
    """About U V^T for grad = U S V^T (each matrix of a stack): Muon's quintic Newton-Schulz. bf16 on CUDA, fp32 on CPU (bf16 is slow there)."""
    a, b, c, x = 3.4445, -4.7750, 2.0315, grad.to(torch.bfloat16 if grad.is_cuda else torch.float32)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    x = x.mT if (tall := x.size(-2) > x.size(-1)) else x  # iterate on the wide side: its Gram matrix is the smaller one
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x

class Muon(torch.optim.Optimizer):  # momentum, then orthogonalised 2-D updates; a rank does every world-th of a shape, an all-reduce shares
    def __init__(self, params, lr: float, momentum: float, backend_steps: int, nesterov: bool = True, weight_decay: float = 0.0,
                 orthogonalize=newton_schulz_orthogonalize):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov, weight_decay=weight_decay))
        self.orthogonalize = orthogonalize  # torch.compile'd on CUDA
    @torch.no_grad()
    def step(self, closure=None):
        world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_available() and dist.is_initialized() else (1, 0)
        for group, params in ((g, ps) for g in self.param_groups if (ps := [p for p in g["params"] if p.grad is not None])):  # those with grads
            grads = [p.grad for p in params]
            bufs = [s["momentum_buffer"] if "momentum_buffer" in (s := self.state[p]) else s.setdefault("momentum_buffer", torch.zeros_like(p))
                    for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            updates = torch._foreach_add(grads, bufs, alpha=group["momentum"]) if group["nesterov"] else bufs
            # Ranks write their shares into one zeroed buffer for one all-reduce; one rank uses the updates where they are (no 66 MB to zero)
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=torch.float32) if world > 1 else None
            views = [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in params]), params)] if world > 1 else [None] * len(params)
            shapes = [tuple(p.shape) for p in params]  # each shape's matrices, in order of first appearance
            by_shape = {shape: [i for i, s in enumerate(shapes) if s == shape] for shape in dict.fromkeys(shapes)}
            for (rows, cols), members in by_shape.items():
                mine = members[rank::world]
                if mine:  # a GPU takes a shape's matrices as one stack (fewer launches); a CPU one at a time, faster there, the same bits
                    stacks = [torch.stack([updates[i] for i in mine])] if updates[mine[0]].is_cuda else [updates[i][None] for i in mine]
                    ortho = [o for s in stacks for o in self.orthogonalize(s, group["backend_steps"]).float() * max(1.0, rows / cols) ** 0.5]
                    for i, o in zip(mine, ortho):
                        views[i] = views[i].copy_(o) if world > 1 else o
            dist.all_reduce(flat) if world > 1 else None
            torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"]) if group["weight_decay"] else None  # decoupled: shrink, step
            torch._foreach_add_(params, views, alpha=-group["lr"])

# -----------------------------------------------------------------------------
# EVALUATION (tokenizer-agnostic bits per byte)
# -----------------------------------------------------------------------------

def json_token_bytes(tok: dict) -> dict[int, int]:  # {id: bytes}: pure_byte (byte b: id byte_offset + b), char (chars[i]: id unk_id + 1 + i)
    kind, n, cfg = tok["tokenizer_type"], tok["vocab_size"], tok.get("config", {})
    first, chars = (cfg.get("byte_offset", 4), None) if kind == "pure_byte" else (cfg.get("unk_id", 3) + 1, cfg.get("chars"))
    ok = type(chars) is list and all(type(c) is str and len(c) == 1 for c in chars) and len(set(chars)) == len(chars)  # one character each, once
    sizes = [1] * 256 if kind == "pure_byte" else [len(c.encode()) for c in chars] if ok else None
    refuse_first((kind not in ("pure_byte", "char") or sizes is None or not type(first) is type(n) is int or not 0 <= first <= n - len(sizes)
                  or kind == "char" and first + len(sizes) != n, f"tokenizer_type {kind!r}, vocab_size {n!r}; accepted: pure_byte with 256 byte "
                  "ids within the vocabulary, or char with its chars each one character, once, and vocab_size = unk_id + 1 + their number"))
    return dict(enumerate(sizes, first))

def target_bytes(sp, tokens: Tensor, vocab_size: int) -> Tensor:
    """A target's UTF-8 bytes: its piece's without a leading '▁', plus the '▁' unless after a boundary. sp: SentencePiece or json_token_bytes."""
    base, space, boundary = np.zeros(vocab_size, dtype=np.int16), np.zeros(vocab_size, dtype=np.bool_), np.ones(vocab_size, dtype=np.bool_)
    table = sp if isinstance(sp, dict) else {}
    base[list(table)], boundary[list(table)] = list(table.values()), False
    for i in range(0 if isinstance(sp, dict) else sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i)):  # a byte piece (<0x41>) is one byte and never starts with '▁'
            boundary[i], space[i] = False, (piece := sp.id_to_piece(i)).startswith("\u2581")
            base[i] = 1 if sp.is_byte(i) else len(piece.removeprefix("\u2581").encode("utf-8"))
    prev, t = tokens[:-1].numpy(), tokens[1:].numpy()
    return torch.from_numpy(np.concatenate([[0], base[t] + (space[t] & ~boundary[prev])]).astype(np.int32))

def window_plan(num_targets: int, seq_len: int, stride: int) -> tuple[list[int], list[int]]:
    """Window starts and each one's first scored position: the first window all, later ones their last `stride`, the last what is left."""
    refuse_first((not 1 <= stride <= seq_len, f"EVAL_STRIDE={stride}: accepted 1 to the context length {seq_len}"))  # more would skip targets
    starts = [*range(0, num_targets - seq_len, stride), num_targets - seq_len]  # every stride, then the window that ends at the end
    score_from = [0] + [prev + seq_len - s for prev, s in zip(starts, starts[1:])]
    return starts, score_from

def eval_batch_seqs(cfg, world_size: int, stride: int | None, val_tokens: int) -> int:  # windows a forward pass: at most a rank's windows
    batch, targets = max(1, cfg.val_batch_size // max(8, world_size) // cfg.train_seq_len), (val_tokens - 1) // cfg.train_seq_len * cfg.train_seq_len
    windows = len(window_plan(targets, cfg.train_seq_len, stride or cfg.train_seq_len)[0])  # VAL_BATCH_SIZE's, or EVAL_BATCH_SEQS sliding
    return min((cfg.eval_batch_seqs or batch) if stride else batch, -(-windows // world_size))

@torch.no_grad()
def evaluate(model, val_tokens: Tensor, seq_len: int, stride: int, batch_seqs: int, token_bytes: Tensor, rank: int = 0,
             world_size: int = 1, device=torch.device("cpu"), autocast=None) -> tuple[float, float, int]:
    """(val_loss in nats, val_bpb, scored tokens) over the first whole multiple of seq_len targets; float64 sums, windows split over ranks."""
    num_targets = ((val_tokens.numel() - 1) // seq_len) * seq_len
    starts, score_from = window_plan(num_targets, seq_len, stride)
    lo, hi = len(starts) * rank // world_size, len(starts) * (rank + 1) // world_size
    batch_seqs, token_bytes = max(1, min(batch_seqs, hi - lo)), token_bytes.to(device)  # token_bytes: target_bytes, or the byte sidecar
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # nll, tokens, bytes
    # The rank's plan on the device, its last batch padded with copies of its last window that score nothing (one input shape, no
    # recompiles): windows are gathered there and nothing is read back until the end, so the host queues batches ahead of a GPU.
    pad, tokens, positions = -(hi - lo) % batch_seqs, val_tokens.to(device), torch.arange(seq_len, device=device)
    plan = torch.tensor([starts[lo:hi] + starts[hi - 1:hi] * pad, score_from[lo:hi] + [seq_len] * pad], device=device)[:, :, None]
    for b in range(0, hi - lo + pad, batch_seqs):
        index = plan[0, b:b + batch_seqs] + positions
        x, y = (tokens[index + i].to(torch.int64) for i in (0, 1))
        with autocast or torch.autocast(device.type, enabled=False):
            nll = model(x, y)
        keep, nbytes = positions >= plan[1, b:b + batch_seqs], token_bytes[index + 1].to(torch.int64)
        sums += torch.stack([torch.where(keep, nll.double(), 0.0).sum(), keep.sum().double(), torch.where(keep, nbytes, 0).sum().double()])
    dist.all_reduce(sums) if world_size > 1 else None
    nll, tokens, nbytes = sums.tolist()
    refuse_first((tokens != num_targets, f"evaluation scored {tokens:.0f} of {num_targets} targets"), error=RuntimeError)  # only whole splits
    return (val_loss := nll / tokens), val_loss / math.log(2.0) * tokens / nbytes, int(tokens)

# -----------------------------------------------------------------------------
# QUANTIZATION AND ARTIFACT (int8 per row + zlib, lzma or zstd, read back weights-only)
# -----------------------------------------------------------------------------

ARTIFACT_FORMAT, INT8_CLIP_PERCENTILE = "rlm_int8_zlib_v1", 99.99984
KEEP_FLOAT_MAX_NUMEL = 65_536  # smaller float tensors are stored as fp16 (control tensors fp32)
CONTROL_TENSOR_NAMES = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights", "mask_scale", "head_scale", "logit_scale")
ARTIFACT_FILE_LIMIT, ARTIFACT_INFLATE_LIMIT = 64 * 16_000_000, 4 * 16_000_000  # read at most; inflate at most (plus 16x the file)
ARTIFACT_SECTIONS = ("q", "scale", "keep", "dtype", "bits", "shape")

class ArtifactError(ConfigError): """An artifact that cannot be used: truncated, corrupted, or from another configuration."""

def quantize_rows_int8(w: Tensor, levels: int = 127) -> tuple[Tensor, Tensor]:
    """Per row: clip at INT8_CLIP_PERCENTILE of |w|, `levels` a side (int6: 31), fp16 scales >= 1/127, rounded with the stored fp16 scale."""
    w = w.float()
    clip = torch.quantile(w.abs(), INT8_CLIP_PERCENTILE / 100.0, dim=1) if w.numel() else w.new_zeros(w.size(0))
    scale = (clip / levels).clamp_min(1.0 / 127.0).to(torch.float16)
    q = torch.round(torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None]) / scale.float()[:, None])
    return q.clamp(-levels, levels).to(torch.int8), scale

def quantize_state_dict(state: dict[str, Tensor], int6_blocks=(), embed_fp16: bool = False) -> tuple[dict, dict]:
    """The house export (int8 per row, small tensors kept as fp16 or fp32), mask scores at 1 bit a weight, int6_blocks at 31 levels a side."""
    out = {"q": {}, "scale": {}, "keep": {}, "dtype": {}, "bits": {}, "shape": {}}
    stats = {"float_bytes": 0, "payload_bytes": 0, "int8": [], "int6": [], "kept": [], "bits": []}
    int6 = re.compile(r"(^|\.)blocks\.(" + "|".join(map(str, int6_blocks)) + r")\.") if int6_blocks else None
    for name, t in state.items():
        stats["float_bytes"] += (t := t.detach().cpu().contiguous()).numel() * t.element_size()
        if name.endswith(".scores"):
            out["bits"][name], out["shape"][name] = torch.from_numpy(np.packbits((t > 0).numpy().ravel())), list(t.shape)
            kind, stored = "bits", [out["bits"][name]]
        elif not t.is_floating_point() or t.numel() <= KEEP_FLOAT_MAX_NUMEL or (embed_fp16 and name.endswith("tok_emb.weight")):
            out["keep"][name] = t = (t.float() if any(c in name for c in CONTROL_TENSOR_NAMES) else t.half()) if t.is_floating_point() else t
            kind, stored = "kept", [t]
        else:
            kind = "int6" if int6 and int6.search(name) and t.ndim == 2 else "int8"
            q, scale = quantize_rows_int8(t if t.ndim == 2 else t.reshape(1, -1), 31 if kind == "int6" else 127)
            out["q"][name], out["scale"][name], out["dtype"][name] = q.reshape(t.shape), scale, str(t.dtype).removeprefix("torch.")
            stored = [q, scale]
        stats[kind].append(name)
        stats["payload_bytes"] += sum(x.numel() * x.element_size() for x in stored)
    return out, stats

def dequantize_state_dict(blob: dict) -> dict[str, Tensor]:
    state = {name: ((q if q.ndim == 2 else q.reshape(1, -1)).float() * blob["scale"][name].float()[:, None]).reshape(q.shape)  # a row a scale
             .to(getattr(torch, blob["dtype"][name])) for name, q in blob["q"].items()}
    state.update({name: t.float() if t.is_floating_point() else t for name, t in blob["keep"].items()})
    for name, bits in blob["bits"].items():  # a mask comes back as scores of +-1: the same hard mask
        kept = np.unpackbits(bits.numpy(), count=math.prod(blob["shape"][name])).reshape(blob["shape"][name])
        state[name] = torch.from_numpy(kept.astype(np.float32) * 2 - 1)
    return state

def storage_summary(stats: dict) -> str:  # which tensors went where, per kind: 'int8: mlp.fc.weight x9, tok_emb.weight | ...'
    counts = {kind: collections.Counter(re.sub(r"blocks\.\d+\.", "", n) for n in stats[kind]) for kind in ("int8", "int6", "kept", "bits")}
    return " | ".join(f"{kind}: " + (", ".join(f"{k} x{n}" if n > 1 else k for k, n in c.items()) or "-") for kind, c in counts.items())

def saved_bytes(obj) -> bytes:
    return (torch.save(obj, buf := io.BytesIO()), buf.getvalue())[1]

def load_weights_only(raw: bytes, what: str, error=ConfigError):  # untrusted bytes (an artifact, a checkpoint): tensors and plain data only
    with refused_as(what, Exception, error=error, quiet=True):
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)

def zstandard(var: str = "ARTIFACT_CODEC=zstd"):
    with refused_as(f"{var}: needs the zstandard package; install it with `python3 -m pip install zstandard`", ImportError):
        import zstandard as zstd
    return zstd

# Each codec at its strongest setting: (the first bytes of its output, compress). Reading detects the codec from those bytes.
CODECS = {"zlib": (b"\x78", lambda raw: zlib.compress(raw, level=9)),
          "lzma": (b"\xfd7zXZ\x00", lambda raw: lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)),
          "zstd": (b"\x28\xb5\x2f\xfd", lambda raw: zstandard().ZstdCompressor(level=22, write_checksum=True).compress(raw))}

def artifact_bytes(state: dict[str, Tensor], meta: dict, int6_blocks=(), embed_fp16: bool = False, codec: str = "zlib") -> tuple[bytes, dict]:
    """Quantize, torch.save, compress (ARTIFACT_CODEC, recorded in the meta too): the artifact's bytes and the storage stats."""
    blob, stats = quantize_state_dict(state, int6_blocks, embed_fp16)
    blob["meta"] = dict(meta, format=ARTIFACT_FORMAT, codec=codec)
    stats["raw_torch_bytes"] = len(raw := saved_bytes(blob))
    return CODECS[codec][1](raw), stats

def inflate(data: bytes, limit: int, where: str) -> tuple[bytes, str]:
    """Inflate at most limit bytes, the codec known by its first bytes; a truncated or corrupted stream, or bytes after its end, is refused."""
    codec = next((name for name, (magic, _) in CODECS.items() if data.startswith(magic)), None)
    refuse_first((codec is None, f"{where}: not a compressed artifact (none of {', '.join(CODECS)}: truncated, empty or another file)"),
                 error=ArtifactError)
    corrupt, zstd = f"{where}: not a {codec}-compressed artifact (truncated or corrupted)", zstandard(where) if codec == "zstd" else None
    with refused_as(corrupt, Exception, error=ArtifactError):
        if (size := zstd.frame_content_size(data) if zstd else 0) < 0:
            raise ValueError("its frame does not declare its size")
        inflater = zstd.ZstdDecompressor().decompressobj() if zstd else zlib.decompressobj() if codec == "zlib" else lzma.LZMADecompressor()
        raw = bytes(limit + 1) if size > limit else inflater.decompress(data) if zstd else inflater.decompress(data, limit + 1)
    refuse_first((len(raw) > limit, f"{where}: inflates past {limit} bytes (4x the 16,000,000-byte cap plus 16x the file); refused"),
                 (not inflater.eof or inflater.unused_data, corrupt), error=ArtifactError)
    return raw, codec

def read_input(path, var: str, what: str = "file", limit: int = 1 << 40) -> bytes:
    """The bytes of a file a variable names: a regular file only (a named pipe would block, a device never end), at most limit bytes."""
    try:
        st = os.stat(path)
        bad = f"a folder (holding {', '.join(sorted(os.listdir(path))[:4]) or 'nothing'})" if stat.S_ISDIR(st.st_mode) else "not a regular file" \
            if not stat.S_ISREG(st.st_mode) else f"{st.st_size} bytes, over the limit of {limit}" if st.st_size > limit else None
        refuse_first((bad, f"{var}={path}: {bad}; accepted: a regular {what} file"))
        return Path(path).read_bytes()
    except OSError as e:
        why = f"no such {what}" if isinstance(e, FileNotFoundError) else f"cannot be read ({e.strerror or e})"
        raise ConfigError(f"{var}={path}: {why}") from None

def config_env(config: dict) -> dict[str, str]:  # a stored model configuration as the variables that make it, checked by their own rules
    env = {k.upper(): str(v) for k, v in config.items() if k not in ("mlp_hidden", "targets", "attn_ranks", "mlp_ranks")}
    env.update(MLP_MULT=repr(config["mlp_hidden"] / config["model_dim"]), FREEZE_TARGETS=",".join(config["targets"]))
    env.update({"PROGRESSIVE_FREEZE_FRAC": "0.5"} if config["freeze_mode"] == "none" and config["targets"] else {})  # dense either way: its targets
    attn, mlp = (",".join(map(str, config[k])) for k in ("attn_ranks", "mlp_ranks"))
    return {**env, **({"LORA_RANK": attn.split(",")[0]} if len(set(config["attn_ranks"] + config["mlp_ranks"])) == 1 else
                      {"LORA_RANKS_ATTN": attn, "LORA_RANKS_MLP": mlp})}

def model_that_fits(cfg, what: str = "", error=ConfigError, share: int = 1) -> nn.Module:  # on the meta device; refused if it would not fit
    what = what or f"NUM_LAYERS={cfg.num_layers} MODEL_DIM={cfg.model_dim}: the model"  # the run's own (NUM_LAYERS=900); else an artifact's
    with torch.device("meta"):
        model = build_model(cfg)
    need, linux = 4 * sum(t.numel() for t in (*model.parameters(), *model.buffers())), os.path.exists("/proc/meminfo")  # fp32
    have, where = memory_free(share) if linux else (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / share, "")  # macOS: its RAM
    refuse_first((need > have, f"{what} needs {need / 2**30:.1f} GiB of weights and regenerated matrices; this machine has {have / 2**30:.1f} GiB"
                  + f" free{where}" * linux), error=error)
    return model

def check_blob(blob, where: str) -> None:  # its configuration checked as the environment is, then each tensor against it: name, shape, dtype
    with refused_as(f"{where}: its stored configuration is not one this script makes", error=ArtifactError):
        ranks = blob["meta"]["config"].pop("ranks", None)  # written before 2026-11-23's per-group ranks: one list served both groups
        blob["meta"]["config"].update({} if ranks is None else {"attn_ranks": ranks, "mlp_ranks": ranks})
        cfg = Hyperparameters(config_env(blob["meta"]["config"]))
        if cfg.model_config() != blob["meta"]["config"] or not all(isinstance(blob.get(k), dict) for k in ARTIFACT_SECTIONS):
            raise ValueError("it differs from what its variables make, or a section is missing")
        blob["meta"]["config"] = cfg.model_config()  # equal, and of this script's types (a stored 128.0 passed as MLP_MULT, then built nothing)
    expected, stored = model_that_fits(cfg, f"{where}: its model", ArtifactError).state_dict(), [n for k in ("q", "keep", "bits") for n in blob[k]]
    unknown, missing = [n for n in stored if n not in expected], [n for n in expected if n not in stored]
    refuse_first((unknown or missing or len(stored) != len(set(stored)), f"{where}: its tensors do not match its configuration (first: "
                  f"{(unknown + missing + ['a tensor stored twice'])[0]})"), error=ArtifactError)
    for name, shape in ((n, t.shape) for n, t in expected.items()):
        q, keep, bits, scale = (blob[k].get(name) for k in ("q", "keep", "bits", "scale"))
        ok = ((isinstance(q, Tensor) and q.dtype == torch.int8 and q.shape == shape and isinstance(scale, Tensor) and scale.dtype == torch.float16
               and scale.shape == (shape[0] if len(shape) == 2 else 1,) and blob["dtype"].get(name) in ("float32", "float16", "bfloat16"))
              if q is not None else (isinstance(keep, Tensor) and keep.is_floating_point() and keep.shape == shape) if keep is not None else
              (isinstance(bits, Tensor) and bits.dtype == torch.uint8 and bits.shape == ((math.prod(shape) + 7) // 8,)
               and blob["shape"].get(name) == list(shape)))  # by how it is stored: int8 rows and scales, a kept float, or mask bits
        refuse_first((not ok, f"{where}: tensor {name} is not stored as the model's {tuple(shape)} weights (shape, size or dtype)"),
                     error=ArtifactError)

def read_artifact(path, data: bytes | None = None, var: str = "ARTIFACT") -> tuple[dict[str, Tensor], dict]:
    """Checked before trusted: a regular file, inflated with a bound, unpickled weights-only, check_blob, finite; errors name `var`."""
    where, data = f"{var}={path}", read_input(path, var, "artifact", ARTIFACT_FILE_LIMIT) if data is None else data
    raw, codec = inflate(data, ARTIFACT_INFLATE_LIMIT + 16 * len(data), where)
    blob = load_weights_only(raw, f"{where}: refused by weights-only loading", ArtifactError)
    refuse_first((not isinstance(blob, dict) or not isinstance(blob.get("meta"), dict) or blob["meta"].get("format") != ARTIFACT_FORMAT,
                  f"{where}: not an artifact of format {ARTIFACT_FORMAT}" + (f" but {blob['__quant_format__']}, the challenge script's: convert it "
                  "with `bash run.sh import FILE --out NEW` (records/tools.py)" if isinstance(blob, dict) and "__quant_format__" in blob else "")),
                 error=ArtifactError)
    check_blob(blob, where)
    check_finite(state := dequantize_state_dict(blob), where)
    return state, dict(blob["meta"], codec=codec)

def first_difference(ours: dict, theirs: dict, what: str, error=ArtifactError) -> None:  # a stored configuration unlike this run's, refused
    diff = [k for k in dict.fromkeys([*ours, *theirs]) if repr(ours.get(k)) != repr(theirs.get(k))]  # repr: a stored tensor (or key) never raises
    refuse_first((diff, diff and f"{what} with {(n := str(diff[0]).upper())}={theirs.get(diff[0])!r}, this run has {n}={ours.get(diff[0])!r}"
                  + (f" (and {len(diff) - 1} more differences)" if len(diff) > 1 else "")), error=error)

def model_from_artifact(path, expect: dict | None = None, var: str = "ARTIFACT", data: bytes | None = None) -> tuple[nn.Module, dict]:
    """The model an artifact describes, with its weights; its configuration must match `expect`, its regenerated matrices their checksums."""
    state, meta = read_artifact(path, data, var)
    first_difference(expect or meta["config"], meta["config"], f"{var}={path}: built")
    ours, recorded = regenerated_checksums(model := build_model(SimpleNamespace(**meta["config"]))), meta.get("regenerated", {})
    recorded = recorded if isinstance(recorded, dict) else {"(malformed record)": None}
    bad = [k for k in sorted(set(ours) | set(recorded)) if ours.get(k) != recorded.get(k)]
    refuse_first((bad, bad and f"{var}={path}: {len(bad)} regenerated matrices differ from the artifact's checksums (first: {bad[0]}); the "
                  f"artifact was made with torch {meta.get('torch_version')}, this is torch {torch.__version__}"), error=ArtifactError)
    model.load_state_dict(state, strict=True)
    return model, meta

def write_together(files: dict) -> None:  # temporaries beside each, renamed into place once all are complete: all replaced, or none
    temps = {Path(path): Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}") for path in files}
    try:
        for (path, tmp), data in zip(temps.items(), files.values()):
            for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp*"):  # left by a process killed mid-write
                stale.unlink(missing_ok=True)
            tmp.write_bytes(data)
    except OSError as e:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: could not be written ({e.strerror or e}); the earlier file, if any, is kept") from None
    for path, tmp in temps.items():
        os.replace(tmp, path)

# -----------------------------------------------------------------------------
# DATA (challenge shards: 256 int32 header, then uint16 tokens)
# -----------------------------------------------------------------------------

SHARD_MAGIC, SHARD_VERSION, HEADER_INTS = 20240520, 1, 256

class DataError(ConfigError): """A shard, split or tokenizer that cannot be used."""

def check_shard_header(path: str) -> int:  # the token count of a shard whose header (magic, version) and size agree; else a DataError
    size = os.path.getsize(path) if os.path.isfile(path) else -1  # the first check refuses -1, so the second is of a file's size
    refuse_first((size < 0, f"{path}: not a regular file (a folder, a broken link or a link loop); accepted: a shard file"),
                 (size < HEADER_INTS * 4, f"{path}: {size} bytes, shorter than the {HEADER_INTS * 4}-byte shard header"), error=DataError)
    magic, version, count = map(int, np.fromfile(path, dtype="<i4", count=HEADER_INTS)[:3])
    refuse_first((magic != SHARD_MAGIC, f"{path}: magic {magic}, expected {SHARD_MAGIC} (not a challenge shard)"),
                 (version != SHARD_VERSION, f"{path}: version {version}, expected {SHARD_VERSION}"),
                 (count < 0 or size != HEADER_INTS * 4 + 2 * count,
                  f"{path}: header says {count} tokens ({HEADER_INTS * 4 + 2 * count} bytes) but the file has {size} bytes"), error=DataError)
    return count

def load_data_shard(path: str, vocab_size: int | None = None) -> np.ndarray:
    tokens = np.fromfile(path, dtype="<u2", count=(count := check_shard_header(path)), offset=HEADER_INTS * 4)
    if vocab_size is not None and count and int(tokens.max()) >= vocab_size:
        raise DataError(f"{path}: token id {int(tokens.max())} is not below VOCAB_SIZE={vocab_size}; shards of another vocabulary need its "
                        "VOCAB_SIZE and TOKENIZER_PATH (fineweb10B_sp8192: VOCAB_SIZE=8192, fineweb_8192_bpe.model)")
    return tokens

def split_files(data_path: str, split: str) -> list[str]:  # 'run[1]' is a folder name, not a pattern; a byte sidecar is never tokens
    files = sorted(f for f in glob.glob(os.path.join(glob.escape(data_path), f"*_{split}_*.bin")) if "_val_bytes_" not in os.path.basename(f))
    if not files:  # DATA_PATH=./data/datasets, a folder above the shards, is named with the folders below it that hold them
        below = sorted({os.path.dirname(f) for f in glob.glob(os.path.join(glob.escape(data_path), "*", f"*_{split}_*.bin"))})
        raise DataError(f"DATA_PATH={data_path}: no {split} shards match {os.path.abspath(os.path.join(data_path, f'*_{split}_*.bin'))}; " + (
            f"the folder below it that holds them: DATA_PATH={' or '.join(below)}" if below else "it is a file, not a folder; accepted: the "
            f"folder of the shards, DATA_PATH={os.path.dirname(data_path) or '.'}" if os.path.isfile(data_path) else "fetch FineWeb with "
            "`python3 data/cached_challenge_fineweb.py --variant sp1024` or build the embedded corpus: `bash run.sh data`"))
    return files

def load_validation_tokens(data_path: str, seq_len: int, vocab_size: int) -> Tensor:
    tokens = np.concatenate([load_data_shard(f, vocab_size) for f in split_files(data_path, "val")])
    refuse_first((tokens.size <= seq_len, f"DATA_PATH={data_path}: validation split has {tokens.size} tokens, fewer than TRAIN_SEQ_LEN+1="
                  f"{seq_len + 1}"), error=DataError)
    return torch.from_numpy(tokens.astype(np.int32))

class TokenStream:  # the training shards read in order as one endless stream (wrapping at the end)
    def __init__(self, data_path: str, vocab_size: int):
        self.files, self.vocab_size = split_files(data_path, "train"), vocab_size
        self.total = sum(check_shard_header(f) for f in self.files)  # every header now (cheap); each shard's token ids when it is read
        self.file_index, self.pos, self.tokens = -1, 0, np.zeros(0, dtype=np.uint16)
    def _next_file(self) -> None:
        for _ in range(len(self.files)):
            self.file_index = (self.file_index + 1) % len(self.files)
            self.tokens, self.pos = load_data_shard(self.files[self.file_index], self.vocab_size), 0
            if self.tokens.size:
                return
        raise DataError(f"{os.path.dirname(self.files[0])}: every train shard is empty")
    def seek(self, file_index: int, pos: int) -> None:  # to a position saved in a checkpoint (outside input: a bad one failed at the first step)
        refuse_first((not 0 <= file_index < len(self.files), f"train shard {file_index} of {len(self.files)}"), error=IndexError)
        self.file_index, self.tokens, self.pos = file_index, load_data_shard(self.files[file_index], self.vocab_size), pos
        refuse_first((type(pos) is not int or not 0 <= pos <= self.tokens.size, f"position {pos!r} of {self.tokens.size}"), error=IndexError)
    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            self._next_file() if self.pos >= self.tokens.size else None
            k = min(n, self.tokens.size - self.pos)
            parts.append(self.tokens[self.pos:self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(parts)

class DistributedTokenLoader:  # a micro-step takes one chunk for all ranks, rank r its r-th slice: any world size sees the same tokens in order
    def __init__(self, data_path: str, vocab_size: int, rank: int, world_size: int, device):
        self.stream, self.rank, self.world_size, self.device = TokenStream(data_path, vocab_size), rank, world_size, torch.device(device)
    def next_batch(self, local_tokens: int, seq_len: int) -> tuple[Tensor, Tensor]:
        chunk = self.stream.take((span := local_tokens + 1) * self.world_size)[self.rank * span:(self.rank + 1) * span]
        host = torch.from_numpy(chunk.astype(np.int64))  # pinned on CUDA: a copy from pageable memory may make the driver wait for the GPU
        t = (host.pin_memory() if self.device.type == "cuda" else host).to(self.device, non_blocking=True)
        return t[:-1].reshape(-1, seq_len), t[1:].reshape(-1, seq_len)

# -----------------------------------------------------------------------------
# MODEL
# -----------------------------------------------------------------------------

class RMSNormCPU(torch.autograd.Function):
    """F.rms_norm as autograd runs it on a CPU (the same ops and bits), with a backward of 4 passes over x where autograd's takes 8. x comes
    in twice, so that its two gradients (through x * r, through r) reach x one by one, as autograd's: a sum of 3 terms keeps its order."""
    @staticmethod
    def forward(ctx, x: Tensor, x_again: Tensor) -> Tensor:
        r = torch.rsqrt(x_again.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)
        ctx.save_for_backward(x, r)
        return x * r
    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # autograd's chain, rounding for rounding; full-size steps done on (..., 1)
        x, r = ctx.saved_tensors
        grad_mean = -0.5 * (grad * x).sum(-1, keepdim=True) * r.pow(3) / x.size(-1)
        return grad * r, x * (2.0 * grad_mean)

class ReluSquaredCPU(torch.autograd.Function):
    """relu(h)^2 as autograd computes it (the same bits), with a backward of 1 pass where autograd's takes 4: 0 + 2 g relu(h), whose 0 +
    turns a -0 (g < 0 where h <= 0) into the +0 of autograd's mask, so the bits are autograd's wherever g is finite."""
    @staticmethod
    def forward(ctx, h: Tensor) -> Tensor:
        ctx.save_for_backward(r := torch.relu(h))
        return r * r
    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return torch.addcmul(grad.new_zeros(()), grad, ctx.saved_tensors[0], value=2.0)

def cpu_eager(x: Tensor) -> bool:  # compiled, the plain ops: inductor fuses them (and dynamo refuses one tensor passed twice)
    return x.requires_grad and x.device.type == "cpu" and not torch.compiler.is_compiling()

def rms_norm(x: Tensor) -> Tensor:
    return RMSNormCPU.apply(x, x) if cpu_eager(x) else F.rms_norm(x, x.shape[-1:])

# Regenerated random matrices. A projection's random base R is rebuilt from a seed wherever the model is built, so it costs no artifact bytes. Its
# bits must be the same on every processor and device (FACTS.md pitfalls): it is made from integer hashing of (seed, stream, index) in int64
# arithmetic that never overflows, then only exactly-rounded float operations (int -> float of exactly representable values, one multiply by a
# constant, + - * / in float64 for the orthogonal rotations). No torch generator, no log/cos, no reduction; element i never depends on the shape.

MASK32 = 0xFFFFFFFF

def mul32(x, c: int):  # (x * c) mod 2^32 for 0 <= x < 2^32, through 16-bit halves of c so int64 never overflows
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & MASK32

def mix32(x):  # murmur3's 32-bit finalizer: a bijection on 0..2^32-1 (Python ints or int64 tensors)
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        x = mul32(x ^ (x >> shift), factor)
    return x ^ (x >> 16)

def hash_stream(seed: int, stream: int, n: int, start: int = 0) -> Tensor:  # distinct 32-bit hashes (int64) of indices start..n-1
    key = mix32(mix32(seed & MASK32) ^ mix32(mul32(stream + 1, 0x9E3779B9)))
    return mix32(mul32(torch.arange(start, n, dtype=torch.int64), 0x9E3779B1) ^ key)

def projection_seed(base_seed: int, layer: int, name: str) -> int:  # mix32(mix32(mix32(BASE_SEED) ^ layer) ^ k), k = 1..7: q k v o fc proj emb
    return mix32(mix32(mix32(base_seed & MASK32) ^ layer) ^ ((*PROJECTIONS, "emb").index(name) + 1))

def symmetric_unit(h: Tensor) -> Tensor:  # the top 23 bits of a hash as an exact float32 in (-1, 1): (2u + 1 - 2^23) / 2^23
    return ((h >> 9) * 2 + 1 - 2**23).to(torch.float32) * 2.0**-23

def random_matrix(out_features: int, in_features: int, seed: int, init: str) -> Tensor:
    """An (out, in) float32 CPU matrix, bit-identical everywhere for the same arguments. gaussian: N(0, 1/in) as the sum of twelve uniform
    bytes (Irwin-Hall, exact in float32, steps of 1/256 std, tails cut at 6); uniform: Xavier, U(+-sqrt(6 / (in + out))); he_uniform: U(+-sqrt(6
    / in)); rademacher: +-1/sqrt(in); orthogonal: 3 log2(n) layers of seeded Givens rotations, c = (1 - t^2) / (1 + t^2), s = 2t / (1 + t^2)."""
    n = out_features * in_features
    if init == "gaussian":  # in chunks that stay in cache; element i never depends on the chunking
        w = torch.empty(n, dtype=torch.float32)
        for lo in range(0, n, 1 << 16):
            hi = min(lo + (1 << 16), n)
            total = sum((h & 255) + ((h >> 8) & 255) + ((h >> 16) & 255) + (h >> 24) for h in (hash_stream(seed, i, hi, lo) for i in range(3)))
            w[lo:hi] = (total - 1530).to(torch.float32) * 2.0**-8  # twelve bytes: mean 1530, std 256
        w *= torch.tensor(in_features**-0.5, dtype=torch.float32)
    elif init in ("uniform", "he_uniform"):
        fan = in_features + out_features if init == "uniform" else in_features
        w = symmetric_unit(hash_stream(seed, 0, n)) * torch.tensor(math.sqrt(6.0 / fan), dtype=torch.float32)
    elif init == "rademacher":
        w = ((hash_stream(seed, 0, n) & 1) * 2 - 1).to(torch.float32) * torch.tensor(in_features**-0.5, dtype=torch.float32)
    else:
        size, keep = max(out_features, in_features), min(out_features, in_features)
        m, pairs = torch.eye(size, dtype=torch.float64)[:, :keep].contiguous(), size // 2  # the first `keep` columns of the product
        for layer in range(3 * max(1, math.ceil(math.log2(size)))):
            order = torch.argsort(hash_stream(seed, 2 * layer, size))  # distinct keys: one order on every machine
            a, b = order[0:2 * pairs:2], order[1:2 * pairs:2]
            t = symmetric_unit(hash_stream(seed, 2 * layer + 1, pairs)).to(torch.float64)[:, None]
            c, s = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
            m[a], m[b] = c * m[a] - s * m[b], s * m[a] + c * m[b]  # the right side whole before either row is written
        return (m if out_features >= in_features else m.T).to(torch.float32).contiguous()
    return w.view(out_features, in_features)

class CastedLinear(nn.Linear):  # a dense learned projection without bias; fp32 master weight, computed in the autocast dtype
    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        nn.init.zeros_(self.weight) if zero_init else None

class FrozenFC(nn.Module):  # the random base R alone, never trained (selective freeze), rebuilt from its seed; subclasses learn on top of R
    def __init__(self, in_features: int, out_features: int, seed: int, init: str):
        super().__init__()
        self.seed, self.init = seed, init
        shape_only = torch.get_default_device().type == "meta"  # a model built to read its shapes (artifact checks)
        self.register_buffer("base", torch.empty(out_features, in_features) if shape_only else random_matrix(out_features, in_features, seed, init),
                             persistent=False)
    def effective_weight(self) -> Tensor:
        return self.base
    @property
    def weight(self) -> Tensor:  # as a dense layer's (an embedding lookup and the tied head read it)
        return self.effective_weight()
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight())

class RandomLinearWithAdapter(FrozenFC):  # R + B A, B from zero; B A folded into R before the one multiply (its backward: two thin ones)
    def __init__(self, in_features: int, out_features: int, seed: int, init: str, rank: int):
        super().__init__(in_features, out_features, seed, init)
        self.A, self.B = nn.Parameter(torch.empty(rank, in_features)), nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
    def effective_weight(self) -> Tensor:
        return torch.addmm(self.base, self.B, self.A)

class MaskedRandomLinear(FrozenFC):
    """Supermask: R times a binary mask (scores > 0) and a learned scale. Straight-through: the forward uses the hard mask, the backward
    sigmoid(scores / temperature)'s gradient; the temperature is a buffer updated in place, so a compiled graph reads its current value."""
    def __init__(self, in_features: int, out_features: int, seed: int, init: str, init_score: float):
        super().__init__(in_features, out_features, seed, init)
        self.scores, self.mask_scale = nn.Parameter(torch.full((out_features, in_features), float(init_score))), nn.Parameter(torch.ones(()))
        self.register_buffer("temperature", torch.ones(()), persistent=False)
    def effective_weight(self) -> Tensor:
        soft = torch.sigmoid(self.scores / self.temperature)
        mask = (self.scores > 0).to(soft.dtype) + (soft - soft.detach())
        return self.base * mask * self.mask_scale

class LowRankLinear(nn.Module):  # a learned B A, no base (low-rank substitution); B starts at zero where the dense one would (o, proj, corr)
    def __init__(self, in_features: int, out_features: int, rank: int, zero_init: bool):
        super().__init__()
        self.A, self.B = nn.Parameter(torch.empty(rank, in_features)), nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.B, a=math.sqrt(5)) if not zero_init else None
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.linear(x, self.A), self.B)

def make_projection(cfg, layer: int, name: str, in_features: int, out_features: int) -> nn.Module:
    """The one place that builds a projection (q k v o fc proj, the correction corr, emb): a target as FREEZE_MODE says, others dense."""
    if name == "corr":
        return LowRankLinear(in_features, out_features, cfg.frozen_correction_rank, zero_init=True)
    mode, seed, dims, zero = cfg.freeze_mode if name in cfg.targets else "none", projection_seed(cfg.base_seed, layer, name), \
        (in_features, out_features), name in ("o", "proj")
    init, rank = ("he_uniform" if name == "fc" else "uniform") if cfg.base_init == "xavier_he" else cfg.base_init, \
        (cfg.mlp_ranks if name in TARGET_GROUPS["mlp"] else cfg.attn_ranks)[layer]
    return {"adapter": lambda: RandomLinearWithAdapter(*dims, seed, init, rank), "frozen": lambda: FrozenFC(*dims, seed, init),
            "lowrank": lambda: LowRankLinear(*dims, rank, zero_init=zero), "mask": lambda: MaskedRandomLinear(*dims, seed, init, cfg.mask_init_score),
            "none": lambda: nn.Embedding(out_features, in_features) if name == "emb" else CastedLinear(*dims, zero_init=zero)}[mode]()

def regenerated_checksums(model: nn.Module) -> dict[str, str]:  # sha256 of every regenerated base, by module name (recorded in the artifact)
    return {name: hashlib.sha256(m.base.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for name, m in model.named_modules() if isinstance(m, FrozenFC)}

class Rotary(nn.Module):  # RoPE tables built once at construction (never inside inference mode, see FACTS.md), as buffers not saved
    def __init__(self, head_dim: int, max_len: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        cos, sin = angles.cos()[None, None], angles.sin()[None, None]
        self.register_buffer("cos", torch.cat((cos, cos), -1), persistent=False)
        self.register_buffer("sin", torch.cat((sin, -sin), -1), persistent=False)
    def forward(self, x: Tensor) -> Tensor:
        """(x1, x2) -> (x1 cos + x2 sin, x2 cos - x1 sin), the halves swapped by a roll: the same bits, a backward without zero-filled slices."""
        return x * self.cos[:, :, :x.size(-2)].to(x.dtype) + x.roll(x.size(-1) // 2, -1) * self.sin[:, :, :x.size(-2)].to(x.dtype)

class CausalSelfAttention(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.model_dim // cfg.num_heads
        self.q, self.k, self.v, self.o = (make_projection(cfg, layer, name, *projection_dims(cfg)[name]) for name in ("q", "k", "v", "o"))
        self.q_gain = nn.Parameter(torch.full((self.num_heads,), float(cfg.qk_gain_init)))
        self.head_scale = nn.Parameter(torch.ones(self.num_heads)) if cfg.freeze_mode == "mask" else None  # supermask: per-head output scale
        self.rotary = Rotary(self.head_dim, cfg.train_seq_len, cfg.rope_base)
    def forward(self, x: Tensor) -> Tensor:
        b, t, dim = x.shape
        q, k, v = (proj(x).view(b, t, -1, self.head_dim).transpose(1, 2) for proj in (self.q, self.k, self.v))
        q, k = self.rotary(rms_norm(q).to(v.dtype)), self.rotary(rms_norm(k).to(v.dtype))
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads)
        y = y if self.head_scale is None else y * self.head_scale.to(y.dtype)[None, :, None, None]
        return self.o(y.transpose(1, 2).reshape(b, t, dim))

class MLP(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        self.fc, self.proj = (make_projection(cfg, layer, name, *projection_dims(cfg)[name]) for name in ("fc", "proj"))
        self.corr = make_projection(cfg, layer, "corr", cfg.model_dim, cfg.model_dim) if cfg.frozen_correction_rank else None
    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        out = self.proj(ReluSquaredCPU.apply(h) if cpu_eager(h) else torch.relu(h).square())
        return out if self.corr is None else out + self.corr(x)

class Block(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        self.attn, self.mlp = CausalSelfAttention(cfg, layer), MLP(cfg, layer)
        self.attn_scale, self.mlp_scale = nn.Parameter(torch.ones(cfg.model_dim)), nn.Parameter(torch.ones(cfg.model_dim))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(cfg.model_dim), torch.zeros(cfg.model_dim))))
    def forward(self, x: Tensor, x0: Tensor) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x))
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x))

def bigram_buckets(input_ids: Tensor, buckets: int) -> Tensor:  # mix32(prev * 65536 + cur) mod buckets; a window's first pairs with id 0 (pad)
    return torch.fmod(mix32(F.pad(input_ids[:, :-1], (1, 0)) * 65536 + input_ids), buckets)  # = %, both >= 0; inductor 2.5-2.12's AVX2 % adds buckets

class GPT(nn.Module):  # the baseline: blocks in a U shape (the first half's outputs added back to the second half in reverse, by learned weights)
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = make_projection(cfg, 0, "emb", cfg.model_dim, cfg.vocab_size)  # FREEZE_TARGETS=emb: a masked random matrix
        self.bigram = nn.Embedding(cfg.bigram_buckets, cfg.bigram_dim) if cfg.bigram_buckets else None
        self.bigram_proj = CastedLinear(cfg.bigram_dim, cfg.model_dim, zero_init=True) if cfg.bigram_buckets else None
        self.num_encoder = cfg.num_layers // 2  # with one layer none: skip_weights is empty, and wants no grad (torchrun's DDP refused it)
        self.skip_weights = nn.Parameter(torch.ones(min(self.num_encoder, cfg.num_layers - self.num_encoder), cfg.model_dim), cfg.num_layers > 1)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(cfg.model_dim, cfg.vocab_size, zero_init=True)
        self.logit_scale = nn.Parameter(torch.ones(())) if cfg.freeze_mode == "mask" else None  # supermask: a learned scale before the logits
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std) if isinstance(self.tok_emb, nn.Embedding) else None  # last, as the house
    def logits(self, input_ids: Tensor) -> Tensor:
        x = F.embedding(input_ids, self.tok_emb.weight)
        x = x0 = rms_norm(x if self.bigram is None else x + self.bigram_proj(self.bigram(bigram_buckets(input_ids, self.cfg.bigram_buckets))))
        skips = []
        for i, block in enumerate(self.blocks):  # the second half adds back the first half's outputs, the last one first
            x = x + self.skip_weights[j].to(x.dtype) * skips.pop() if 0 <= (j := i - self.num_encoder) < self.skip_weights.size(0) and skips else x
            x = block(x, x0)
            skips.append(x) if i < self.num_encoder else None
        x = rms_norm(x) if self.logit_scale is None else rms_norm(x) * self.logit_scale.to(x.dtype)
        logits = F.linear(x, self.tok_emb.weight if self.lm_head is None else self.lm_head.weight).float()
        return self.cfg.logit_softcap * torch.tanh(logits / self.cfg.logit_softcap)
    def forward(self, input_ids: Tensor, target_ids: Tensor, teacher_logits: Tensor | None = None, alpha: float = 0.0, temp: float = 1.0) -> Tensor:
        """Per-token loss in nats (fp32, target_ids' shape): cross-entropy, mixed with alpha T^2 KL(teacher_T || student_T) given teacher logits."""
        logits = self.logits(input_ids)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_ids.reshape(-1), reduction="none").view_as(target_ids)
        if teacher_logits is None:
            return nll
        teacher = F.log_softmax(teacher_logits / temp, dim=-1)
        kl = (teacher.exp() * (teacher - F.log_softmax(logits / temp, dim=-1))).sum(-1)
        return (1.0 - alpha) * nll + alpha * temp * temp * kl

class Ensemble(nn.Module):  # NUM_MODELS members on the same batches (the loss their mean), i from BASE_SEED + i; evaluation averages probabilities
    def __init__(self, cfg):
        super().__init__()
        self.members = nn.ModuleList(GPT(SimpleNamespace(**{**vars(cfg), "base_seed": cfg.base_seed + i})) for i in range(cfg.num_models))
    def logits(self, input_ids: Tensor) -> Tensor:  # log of the mean probability: usable as logits (a teacher's, say)
        logp = torch.stack([F.log_softmax(m.logits(input_ids), dim=-1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))
    def forward(self, input_ids: Tensor, target_ids: Tensor, teacher_logits: Tensor | None = None, alpha: float = 0.0, temp: float = 1.0) -> Tensor:
        losses = torch.stack([m(input_ids, target_ids, teacher_logits, alpha, temp) for m in self.members])
        return losses.mean(0) if self.training else -(torch.logsumexp(-losses, dim=0) - math.log(len(self.members)))  # -log mean p(target)

def build_model(cfg) -> nn.Module:
    return Ensemble(cfg) if cfg.num_models > 1 else GPT(cfg)

def build_optimizers(model: nn.Module, args, compile_muon: bool = False) -> list[torch.optim.Optimizer]:
    """Muon for 2-D matrices (projections, adapters, factors); Adam for the embeddings and head (ADAM_WD), vectors, scalars and mask scores."""
    groups = {"embed": [], "head": [], "scalar": [], "mask": [], "muon": []}
    for name, p in model.named_parameters():
        leaf = name.split(".")[-2] if name.endswith(".weight") else name.split(".")[-1]
        groups["embed" if leaf in ("tok_emb", "bigram") else "head" if leaf == "lm_head" else "mask" if leaf == "scores" else
               "scalar" if p.ndim < 2 or any(c in name for c in CONTROL_TENSOR_NAMES) else "muon"].append(p)
    adam_groups = [dict(params=groups["embed"], lr=args.tied_embed_lr if args.tie_embeddings else args.embed_lr, weight_decay=args.adam_wd),
                   dict(params=groups["head"], lr=args.head_lr, weight_decay=args.adam_wd),
                   dict(params=groups["scalar"], lr=args.scalar_lr, weight_decay=0.0), dict(params=groups["mask"], lr=args.mask_lr, weight_decay=0.0)]
    adam = torch.optim.AdamW([g for g in adam_groups if g["params"]], betas=(args.beta1, args.beta2), eps=args.adam_eps,
                             fused=True)  # the fused kernel on CPU too: as fast, and the same bits as the house
    ortho = torch.compile(newton_schulz_orthogonalize) if compile_muon else newton_schulz_orthogonalize
    optimizers = [adam] + ([Muon(groups["muon"], lr=args.matrix_lr, momentum=args.muon_momentum, backend_steps=args.muon_backend_steps,
                                 weight_decay=args.muon_wd, orthogonalize=ortho)] if groups["muon"] else [])
    for group in (group for opt in optimizers for group in opt.param_groups):
        group["base_lr"] = group["lr"]
    return optimizers

class EMA:  # of the parameters: a copy at step EMA_START_STEP, then avg = decay * avg + (1 - decay) * p after every step
    def __init__(self, decay: float, start_step: int):
        self.decay, self.start_step, self.avg = decay, start_step, None
    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if self.decay > 0 and step >= self.start_step:  # the first a copy, which the lerp leaves as it is (a + w (a - a) is a)
            self.avg = self.avg or {name: p.detach().clone() for name, p in model.named_parameters()}
            torch._foreach_lerp_(list(self.avg.values()), [p.detach() for p in model.parameters()], 1.0 - self.decay)
    def copy_to(self, model: nn.Module) -> bool:  # False: the EMA never started (the run stopped before EMA_START_STEP)
        model.load_state_dict(self.avg) if self.avg is not None else None  # strict: the parameters (regenerated matrices are not saved)
        return self.avg is not None

def freeze_parameters(optimizers: list, params: list[nn.Parameter]) -> None:  # progressive: out of their optimizers, outside any compiled graph
    frozen = {id(p) for p in params}
    for opt, group in ((opt, group) for opt in optimizers for group in opt.param_groups):
        group["params"] = [p for p in group["params"] if id(p) not in frozen]
        for p in params:  # once a group: a second pop finds nothing
            opt.state.pop(p, None)

# -----------------------------------------------------------------------------
# TRAINING
# -----------------------------------------------------------------------------

def lr_multiplier(args, step: int, elapsed_ms: float) -> float:  # linear warmdown over the last WARMDOWN_ITERS steps (under a cap: in time)
    if args.warmdown_iters <= 0 or args.max_wallclock_seconds <= 0:  # no warmdown, or one counted in steps
        return 1.0 if args.warmdown_iters <= 0 else min(max((args.iterations - step) / args.warmdown_iters, 0.0), 1.0)
    warmdown_ms, remaining_ms = args.warmdown_iters * elapsed_ms / max(step, 1), max(1000.0 * args.max_wallclock_seconds - elapsed_ms, 0.0)
    return remaining_ms / max(warmdown_ms, 1e-9) if remaining_ms <= warmdown_ms else 1.0

@torch.no_grad()
def windowed_logits(model, x: Tensor, context: int) -> Tensor:  # a teacher's, past its context: windows overlapping by half, each position once
    if x.size(1) <= context:
        return model.logits(x)
    starts, score_from = window_plan(x.size(1), context, max(1, context // 2))
    return torch.cat([model.logits(x[:, s:s + context])[:, f:] for s, f in zip(starts, score_from)], dim=1)

def load_teacher(args, tokenizer_sha: str, device) -> tuple:  # DISTILL_TEACHER as (model, its context, alpha, temp); () when not distilling
    if not args.distill_teacher:
        return ()
    with torch.random.fork_rng(devices=[]):  # building the teacher must not move the student's initialisation
        model, meta = model_from_artifact(args.distill_teacher, var="DISTILL_TEACHER")
    refuse_first((meta["config"]["vocab_size"] != args.vocab_size, f"DISTILL_TEACHER={args.distill_teacher}: vocabulary "
                  f"{meta['config']['vocab_size']}, this run has VOCAB_SIZE={args.vocab_size}"),
                 ((meta["eval"] if isinstance(meta.get("eval"), dict) else {}).get("tokenizer_sha256") not in (None, tokenizer_sha),
                  f"DISTILL_TEACHER={args.distill_teacher}: made with another tokenizer than TOKENIZER_PATH={args.tokenizer_path}, whose ids are "
                  "other tokens; accepted: a teacher made with it"))
    return model.to(device).eval().requires_grad_(False), meta["config"]["train_seq_len"], args.distill_alpha, args.distill_temp

def distill_args(teacher: tuple, x: Tensor) -> tuple:  # a forward's arguments after (x, y): teacher (model, context, alpha, temp) or () to not distil
    return (windowed_logits(teacher[0], x, teacher[1]), *teacher[2:]) if teacher else ()

def memory_free(share: int = 1) -> tuple[float, str]:  # MemAvailable, or less in a memory cgroup (a container): limit - use + droppable cache
    free, cgroups = [(int(re.search(r"MemAvailable:\s*(\d+)", Path("/proc/meminfo").read_text())[1]) * 1024, "")], Path("/proc/self/cgroup")
    for kinds, own in re.findall(r"^\d+:((?:[^:]*,)?memory(?:,[^:]*)?|):(.*)$", cgroups.read_text() if cgroups.exists() else "", re.M):
        limit, use = ("memory.limit_in_bytes", "memory.usage_in_bytes") if (v1 := kinds != "") else ("memory.max", "memory.current")  # v1 n:memory:/a
        for d in (Path("/sys/fs/cgroup", "memory" * v1, up.relative_to("/")) for up in (Path(own), *Path(own).parents)):  # /a then its parents
            with contextlib.suppress(OSError, ValueError):  # none (a container sees only its own, at the root) or "max": no limit there
                cache = sum(map(int, re.findall(rf"^{'total_' * v1}(?:in)?active_file (\d+)$", (d / "memory.stat").read_text(), re.M)))  # page cache
                free.append((int((d / limit).read_text()) - int((d / use).read_text()) + cache, f" in the memory cgroup {d}"))
    return min((f / share, where + f" to each of {share} processes" * (share > 1)) for f, where in free)  # a machine's processes share it

class PeakBytes(TorchDispatchMode):  # the most bytes of tensors alive at once (op by op, weights aside) in a micro-step or an evaluation
    def __init__(self, model: nn.Module, train: bool, seqs: int, seq_len: int, teacher: tuple = ()):  # teacher: (model, context, alpha, temp)
        super().__init__()
        self.live, self.peak = {t.untyped_storage().data_ptr(): 0 for m in (model, *teacher[:1]) for t in (*m.parameters(), *m.buffers())}, 0
        with torch.set_grad_enabled(train), self:
            x = torch.zeros(seqs, seq_len, dtype=torch.int64)  # distilling: the teacher's forward, then its logits kept through the student's
            loss = model.train(train)(x, x, *(distill_args(teacher, x) if train else ()))
            loss.mean().backward() if train else None
        model.zero_grad(set_to_none=True)
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for s in (t.untyped_storage() for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, Tensor)):
            if s.data_ptr() not in self.live:  # a new storage (not a view of one), counted until it is freed
                self.live[s.data_ptr()], _ = s.nbytes(), weakref.finalize(s, self.live.pop, s.data_ptr(), None)
        self.peak = max(self.peak, sum(self.live.values()))
        return out

def model_whose_batches_fit(model: nn.Module, args, rt, seqs: int, val_tokens: int, teacher: tuple = ()) -> nn.Module:
    """On a CPU the kernel kills a process past memory, with nothing to catch or log (a GPU's error is caught): a micro-step of `seqs`
    sequences (0: none, EVAL_ONLY) and the largest evaluation batch of a split of `val_tokens` tokens (0: unknown) refused before they run."""
    n_eval, var = max((eval_batch_seqs(args, rt.world_size, s, val_tokens), "EVAL_BATCH_SEQS" if s and args.eval_batch_seqs else "VAL_BATCH_SIZE")
                      for s in (None, args.eval_stride or None)) if val_tokens and not rt.use_cuda else (0, "")  # not counted on a GPU
    step_fix, was_training = f"lower TRAIN_BATCH_TOKENS or raise GRAD_ACCUM_STEPS={args.grad_accum_steps} (the same step, in pieces)", model.training
    batches = [(True, seqs, f"TRAIN_BATCH_TOKENS={args.train_batch_tokens}: a {'distilling ' * bool(teacher)}micro-step", step_fix), (False, n_eval,
                f"{var}={getattr(args, var.lower(), 0)}: an evaluation batch", f"lower {var} (the same evaluation, in smaller batches)")]
    for train, n, what, fix in (b for b in batches if b[1] and not rt.use_cuda and os.path.exists("/proc/meminfo")):
        one, two = (PeakBytes(model, train, k, args.train_seq_len, teacher).peak for k in (1, 2))
        need = (2.5 if train else 3.0) * (one + (n - 1) * (two - one))  # RSS grown over the count (heap holes): to 2.3 a step, 2.7 evaluating
        (free, where), gib = memory_free(rt.local_procs), lambda b: f"{b / 2**30:.1f} GiB"  # each process's share of the free memory
        refuse_first((need > free, f"{what} of {n} sequences of {args.train_seq_len} tokens needs about {gib(need)} on this CPU, over the "
                      f"{gib(free)} free{where}; {fix}"))  # one after the other: an evaluation starts with the micro-steps' holes given back
    return model.train(was_training)  # (train() returns the module)

def tell_torchrun(line: str) -> None:  # torchrun's closing report shows a failed rank's error file: this line, not "To enable traceback see:"
    with contextlib.suppress(KeyError, OSError), open(os.environ["TORCHELASTIC_ERROR_FILE"], "w", encoding="utf-8") as f:  # torchrun names it
        json.dump({"message": {"message": line, "extraInfo": {"py_callstack": line, "timestamp": str(int(time.time()))}}}, f)  # as @record writes

def keep_aside(path: Path) -> Path:  # an earlier run's file renamed <stem>.<n><suffix>, the first n free (logs/x.1.txt, checkpoints/x.1.pt)
    return path.rename(next(p for n in range(1, 1 << 30) if not (p := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists()))

class Logger:  # rank 0 prints and appends to logs/<RUN_ID>.txt, which starts with this file's source; other ranks say nothing
    def __init__(self, run_id: str, rank: int, code: str):
        self.path = Path("logs") / f"{run_id}.txt" if rank == 0 else None
        with refused_as(f"RUN_ID={run_id}: its log {self.path} could not be written", OSError):
            self.path.write_text(code + "\n" + "=" * 100 + "\n", encoding="utf-8") if self.path else None
    def __call__(self, msg: str, console: bool = True) -> None:
        tell_torchrun(msg) if msg.startswith("stopping:") else None  # every rank's, before its own log can fail
        if self.path:
            with refused_as(f"{self.path}: could not be written", OSError), self.path.open("a", encoding="utf-8") as f:
                f.write(msg + "\n")
            try:  # the file first: a console whose reader went (`| head`, a tee killed) costs the console, never the run or a line
                print(msg, flush=True) if console else None
            except OSError as e:  # a reader gone (EPIPE), a terminal closed (EIO): stdout, and stderr where the same, to /dev/null, at exit too
                for fd in {1, 2 if os.path.sameopenfile(1, 2) else 1}: os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
                self(f"console: stdout closed ({(e.strerror or 'gone').lower()}); the run goes on, logging to {self.path} only")

RSS_PER_MIB = 1 << 20 if sys.platform == "darwin" else 1 << 10  # getrusage's ru_maxrss: bytes on macOS, KiB on Linux
HELD_LOCKS: list[int] = []  # lock files of this run's outputs, open until it ends (the OS releases them on any exit, kill -9 too)
RUNNING: list = []  # [say, where, log] of the run in progress, then its stop signal: a stop it did not choose says where it was

def claim_outputs(args) -> list[str]:
    """Before any work each output gets its folder and a held lock beside it: a second live run on them is refused, and so is an output that
    is an input (ARTIFACT=<a shard> replaced it) or another output (ARTIFACT=final_model.pt), by any name or link; RESUME may be CHECKPOINT_PATH."""
    outputs = {f"RUN_ID={args.run_id}": f"logs/{args.run_id}.txt", **({} if args.eval_only else {f"ARTIFACT={args.artifact}": args.artifact,
               "final_model.pt": "final_model.pt", f"CHECKPOINT_PATH={args.checkpoint_path}": args.checkpoint_path * bool(args.checkpoint_every)})}
    reads = {f"TOKENIZER_PATH={args.tokenizer_path}": args.tokenizer_path, f"DISTILL_TEACHER={args.distill_teacher}": args.distill_teacher,
             **{f"DATA_PATH={args.data_path} (its {os.path.basename(f)})": f for f in glob.glob(os.path.join(glob.escape(args.data_path), "*.bin"))},
             f"RESUME={args.resume}": "" if os.path.realpath(args.resume) == os.path.realpath(args.checkpoint_path) else args.resume}
    taken, aside = {os.path.realpath(p): f"{label}, which this run reads" for label, p in reads.items() if p}, []
    for label, path, real in ((label, Path(p), os.path.realpath(p)) for label, p in outputs.items() if p):
        try:
            odd = "a folder" if path.is_dir() else "not a regular file (a device, pipe or socket)" if path.exists() and not path.is_file() else ""
            refuse_first((odd, f"{label}: {path} is {odd}; accepted: a file path (a regular file, which the run replaces, or a new one)"),
                         (same := taken.get(real), f"{label}: the same file as {same}; accepted: a path no other output or input uses"))
            taken[real] = f"{label}, which this run writes too"
            path.parent.mkdir(parents=True, exist_ok=True)
            HELD_LOCKS.append(fd := os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as e:
            raise ConfigError(f"{label}: {path} cannot be written ({e.strerror or e}); checked before any work") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{label}: {path} is held by another live run (pid {os.pread(fd, 16, 0).decode(errors='replace').strip()}); "
                              "give this run another RUN_ID, ARTIFACT or working folder") from None
        os.pwrite(fd, f"{os.getpid()}\n".ljust(16).encode(), 0)  # the holder's pid, read by a refused run (16 bytes over any older one)
        if label.startswith("RUN_ID") or label.startswith("CHECKPOINT_PATH") and real != os.path.realpath(args.resume):
            aside.append(path)  # a rerun of a RUN_ID replaces no earlier log or checkpoint: they are kept aside once every output is claimed
    return [f"kept: {p}, an earlier run's, as {keep_aside(p)}" for p in aside if p.is_file()]

def stop_on_signals(log, where) -> None:  # SIGTERM (a scheduler; torchrun forwards it), SIGINT (Ctrl-C), SIGHUP (a closed session): exit 128+n
    RUNNING[:] = [lambda line: (log(line), log.path or sys.stderr.write(line + "\n")), where, log]  # rank 0 logs, others: stderr
    def on_signal(signum, frame):  # logged once; a SIGALRM after a stop is that stop again, from the hook below
        RUNNING[3:] or RUNNING.append(signum) or log(f"stopping: {signal.Signals(signum).name} {where()}")
        sys.exit(128 + RUNNING[3])
    def raise_again(u):  # an exit raised in a finalizer or weakref callback (torch.compile's caches) is swallowed: the run trained on
        signal.setitimer(signal.ITIMER_REAL, 0.001) if RUNNING[3:] and u.exc_type is SystemExit else sys.__unraisablehook__(u)
    sys.unraisablehook = raise_again  # (the timer's SIGALRM comes 1 ms later, outside that callback)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):  # one ignored from the start stays so (nohup's SIGHUP)
        signal.getsignal(signum) is signal.SIG_IGN or signal.signal(signum, on_signal)

def freed_memory(give_back: bool = False) -> None:  # glibc on its own hands freed blocks over 32 MB (a batch's logits) back to the OS and
    with contextlib.suppress(OSError, AttributeError):  # faults them in again (EVAL_ONLY 15 s, not 9): kept; give_back: the heap's holes, freed now
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0) if give_back else (libc.mallopt(-3, 1 << 30), libc.mallopt(-1, (1 << 31) - 1))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD

def setup_runtime(args) -> SimpleNamespace:  # processes (torchrun's RANK / WORLD_SIZE / LOCAL_RANK), device, autocast, compile
    freed_memory()
    torch.set_flush_denormal(True)  # early Newton-Schulz grams of tiny gradients underflow; denormal arithmetic is 10x slower on CPU
    world_size, rank, local_rank, local_procs = (_parse_var(k, os.environ.get(k, d), "int", (0, 1 << 20)) for k, d in
                                                 (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("LOCAL_WORLD_SIZE", "1")))
    refuse_first((rank >= world_size or local_rank > rank, f"RANK={rank} LOCAL_RANK={local_rank} WORLD_SIZE={world_size}: not a process of "
                  "one launch (left over from another?); unset RANK, LOCAL_RANK and WORLD_SIZE, or start the processes with torchrun"))
    args.check_world(world_size)
    refuse_first((world_size > 1 and not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")),
                  f"WORLD_SIZE={world_size}: set without MASTER_ADDR and MASTER_PORT; start several processes with torchrun"))
    device = torch.device("cuda", local_rank) if (use_cuda := torch.cuda.is_available()) else torch.device("cpu")
    refuse_first((use_cuda and local_rank >= torch.cuda.device_count(), f"LOCAL_RANK={local_rank}: only {use_cuda and torch.cuda.device_count()} "
                  "GPU(s) visible; start at most that many processes per node, or hide the GPUs (CUDA_VISIBLE_DEVICES=) to run on CPU"),
                 (args.compile == "1" and args.compile_backend == "inductor" and not (use_cuda or args.eval_only) and torch.get_num_threads() == 1
                  and torch.__version__ < (2, 7), f"COMPILE=1: PyTorch {torch.__version__}'s inductor on one CPU thread writes a repeated token's "
                  "embedding gradient over the one before, not adding it; use PyTorch 2.7+, OMP_NUM_THREADS=2+, COMPILE_BACKEND=eager or COMPILE=0"))
    torch.cuda.set_device(device) if use_cuda else None
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = use_cuda  # TF32 matmuls on a GPU; neither is used on a CPU
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=device if use_cuda else None) if world_size > 1 else None
    return SimpleNamespace(world_size=world_size, rank=rank, local_rank=local_rank, local_procs=max(local_procs, 1), use_cuda=use_cuda, device=device,
                           distributed=world_size > 1, compile=args.compile == "1" or (args.compile == "auto" and use_cuda),
                           autocast=torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda else torch.autocast("cpu", enabled=False))

def load_eval_data(data_path: str, tokenizer_path: str, vocab_size: int, seq_len: int, device) -> tuple[Tensor, Tensor, str, str]:
    """Validation tokens, each one's bytes as a target (target_bytes, or the export's byte sidecar), the tokenizer's sha256 and kind."""
    where = f"TOKENIZER_PATH={tokenizer_path}"
    refuse_first((not os.path.lexists(tokenizer_path), f"{where}: no such file (relative paths are to {os.getcwd()}); build or fetch the data "
                  "first (`bash run.sh data`)"), error=DataError)
    is_json = (proto := read_input(tokenizer_path, "TOKENIZER_PATH", "tokenizer", 1 << 30)).lstrip().startswith(b"{")
    with refused_as(f"{where}: not a {'JSON tokenizer' if is_json else 'SentencePiece model'} (the kinds read: SentencePiece's .model, "
                    "not its .vocab, and the challenge's JSON pure_byte and char)", Exception, error=DataError):
        tok = json.loads(proto) if is_json else spm.SentencePieceProcessor(model_proto=proto)
        kind, n, table = (tok["tokenizer_type"], tok["vocab_size"], json_token_bytes(tok)) if is_json else ("sentencepiece", tok.vocab_size(), tok)
    refuse_first((n != vocab_size, f"{where}: vocabulary of {n} tokens, but VOCAB_SIZE={vocab_size}"), error=DataError)
    tokens = load_validation_tokens(data_path, seq_len, vocab_size)  # a transformed tokenizer's (CaseOps) export writes each token's bytes:
    sidecar = sorted(glob.glob(os.path.join(glob.escape(data_path), "*_val_bytes_*.bin")))  # its added symbols are not in the text
    with refused_as(f"{where}: not a SentencePiece model (a piece that is not UTF-8)", UnicodeDecodeError, error=DataError):  # read only here
        token_bytes = torch.from_numpy(np.concatenate([load_data_shard(f) for f in sidecar]).astype(np.int32)) if sidecar else \
            target_bytes(table, tokens, vocab_size)
    docs = np.split(t := tokens[:1 << 18].numpy(), np.flatnonzero(t == tok.bos_id()))[1:-1][:32] if kind == "sentencepiece" and not sidecar else []
    same = sum(tok.encode(tok.decode(d[1:].tolist())) == d[1:].tolist() for d in docs)  # whole documents (the last may be cut); a sidecar: no bytes
    refuse_first((same < len(docs) / 2, f"{where}: not the tokenizer of the shards in DATA_PATH={data_path}: {same} of their first {len(docs)} "
                  "validation documents re-encode to their own tokens (another tokenizer counts val_bpb's bytes wrongly)"), error=DataError)
    refuse_first((token_bytes.numel() != tokens.numel() or token_bytes.max() > 32767, f"DATA_PATH={data_path}: the byte sidecar *_val_bytes_*.bin "
                  f"holds {token_bytes.numel()} counts for {tokens.numel()} tokens; accepted: one a token, each below 32768"), error=DataError)
    return tokens.to(device), token_bytes.to(device, torch.int16), hashlib.sha256(proto).hexdigest(), kind + (" bytes:sidecar" if sidecar else "")

def final_evaluation(log, run_eval, stride: int, codec: str = "zlib") -> float:  # the house's final lines: plain, sliding (stride > 0), the time
    t_start, scores = time.perf_counter(), []
    for name, s in [("", None)] + ([("_sliding", stride)] if stride > 0 else []):
        t0, (loss, bpb, scored) = time.perf_counter(), run_eval(s)
        log(f"final_int8_{codec}_roundtrip{name} val_loss:{loss:.4f} val_bpb:{bpb:.4f}" + (f" stride:{s}" if s else "")
            + f" eval_time:{1000.0 * (time.perf_counter() - t0):.0f}ms")
        log(f"final_int8_{codec}_roundtrip{name}_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f} scored_tokens:{scored}")
        scores.append(bpb)
    log(f"total_eval_time:{1000.0 * (time.perf_counter() - t_start):.0f}ms")
    return scores[0]

def make_run_eval(model_fwd, val_tokens, token_bytes, rt, cfg):  # evaluate() bound to this run and cfg's settings; stride None: plain
    def run_eval(stride: int | None, model=None) -> tuple[float, float, int]:
        m, training = model or model_fwd, (model or model_fwd).training
        freed_memory(give_back=True)  # the holes training's blocks left: an evaluation's blocks need not fit in them (and after it)
        result = evaluate(m.eval(), val_tokens, cfg.train_seq_len, stride or cfg.train_seq_len, eval_batch_seqs(cfg, rt.world_size, stride,
                          val_tokens.numel()), token_bytes, rt.rank, rt.world_size, rt.device, rt.autocast)
        m.train(training), freed_memory(give_back=True)
        return result
    return run_eval

def eval_only(args, rt, log) -> int:  # EVAL_ONLY=1: model, data and evaluation settings from the artifact (the environment may set the last two)
    model, meta = model_from_artifact(args.artifact)
    stored, made = meta["config"], config_env(meta["config"])
    for name, raw in ((n, os.environ[n]) for n, *_ in ENV_VARS if os.environ.get(n) and n not in EVAL_ONLY_VARS):
        refuse_first((name not in MODEL_VARS, f"{name}={shown(raw, shlex.quote)}: has no effect with EVAL_ONLY=1 (the model and its "
                      "settings come from the artifact); unset it"))
        same = False
        with contextlib.suppress(ConfigError):
            same = Hyperparameters({**made, name: raw}).model_config() == stored
        refuse_first((not same, f"ARTIFACT={args.artifact}: built with {name}={made.get(name, '(default)')}, this run has "
                      f"{name}={shown(raw, shlex.quote)} (EVAL_ONLY takes the model from the artifact; unset it)"), error=ArtifactError)
    ev, env = meta.get("eval") if isinstance(meta.get("eval"), dict) else {}, {n: os.environ[n] for n in EVAL_SETTINGS if os.environ.get(n)}
    with refused_as(f"ARTIFACT={args.artifact}: a recorded evaluation setting is unusable here; set it in the environment", error=ArtifactError):
        Hyperparameters({**made, **(kept := {n: str(ev[n.lower()]) for n in EVAL_SETTINGS if n.lower() in ev and n not in env})})
    run = Hyperparameters({**made, **kept, **env})  # the environment's win; EVAL_STRIDE is checked against the artifact's context
    recorded = [f"{n}={getattr(run, n.lower())}" for n in ("DATA_PATH", "TOKENIZER_PATH") if n in kept]
    with refused_as(f"ARTIFACT={args.artifact}: {' and '.join(recorded)}, where it was evaluated, cannot be used here; set them to a copy of "
                    "its data", ConfigError) if recorded else contextlib.nullcontext():  # an artifact evaluated on another machine
        val_tokens, token_bytes, tok_sha, _ = load_eval_data(run.data_path, run.tokenizer_path, run.vocab_size, run.train_seq_len, rt.device)
    refuse_first((ev.get("tokenizer_sha256") not in (None, tok_sha), f"TOKENIZER_PATH={run.tokenizer_path}: not the tokenizer the artifact "
                  f"{args.artifact} was evaluated with (sha256 differs)"), error=ArtifactError)
    model = model_whose_batches_fit(model.to(rt.device), run, rt, 0, val_tokens.numel())
    fwd = torch.compile(model, dynamic=False, fullgraph=True, backend=args.compile_backend) if rt.compile else model
    log(f"eval_only artifact:{args.artifact} bytes:{os.path.getsize(args.artifact)} data_path:{run.data_path}")
    log(f"model_params:{sum(p.numel() for p in model.parameters())}")
    final_evaluation(log, make_run_eval(fwd, val_tokens, token_bytes, rt, run), run.eval_stride, meta["codec"])
    return 0

CHECKPOINT_FORMAT = "rlm_checkpoint_v1"

def checkpoint_config(args) -> dict:  # what a resumed run must share with the run that wrote the checkpoint
    return dict(args.model_config(), train_batch_tokens=args.train_batch_tokens, ema=args.ema_decay > 0)

def save_checkpoint(path: str, args, model, optimizers, ema, stream, step: int, training_ms: float, frozen: bool) -> None:
    rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
           "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)), "numpy_pos": int(np.random.get_state()[2])}
    write_together({path: saved_bytes({"format": CHECKPOINT_FORMAT, "config": checkpoint_config(args), "model": model.state_dict(), "rng": rng,
                                       "optimizers": [opt.state_dict() for opt in optimizers], "ema": ema, "data": [stream.file_index, stream.pos],
                                       "step": step, "training_ms": training_ms, "frozen": frozen})})

CHECKPOINT_FIELDS = {"format": str, "config": dict, "model": dict, "optimizers": list, "data": list, "step": int, "training_ms": float,
                     "frozen": bool, "rng": dict, "ema": (dict, type(None))}

def resume(path: str, args, model, optimizers, ema, stream, progressive) -> tuple[int, float, bool]:
    """Continue from a checkpoint checked whole before this run's state is touched: (step, training ms, whether the progressive freeze happened)."""
    where, state = f"RESUME={path}", load_weights_only(read_input(path, "RESUME", "checkpoint"), f"RESUME={path}: not a readable checkpoint")
    refuse_first((not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT,
                  f"{where}: not a checkpoint of format {CHECKPOINT_FORMAT}"))
    bad = next((k for k, kind in CHECKPOINT_FIELDS.items() if k not in state or not isinstance(state[k], kind)), None)
    refuse_first((bad, f"{where}: malformed (its {bad!r} field is missing or of the wrong type)"))
    first_difference(checkpoint_config(args), state["config"], f"{where}: written", ConfigError)
    refuse_first((not 0 <= state["step"] < args.iterations, f"{where}: written at step {state['step']}, not below ITERATIONS={args.iterations}; "
                  "set ITERATIONS above it"), (len(state["optimizers"]) != len(optimizers),
                                               f"{where}: holds {len(state['optimizers'])} optimizer states, this run has {len(optimizers)}"))
    check_finite(state["model"], where)
    with refused_as(f"{where}: does not fit this run", quiet=True):
        freeze_parameters(optimizers, progressive) if state["frozen"] else None
        if state["ema"] is not None:  # through the model first: its names and shapes checked as the weights' are, the copy on their device
            model.load_state_dict(state["ema"]), setattr(ema, "avg", {n: p.detach().clone() for n, p in model.named_parameters()})
        model.load_state_dict(state["model"]), stream.seek(*state["data"])
        for opt, opt_state in zip(optimizers, state["optimizers"]):
            settings = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
            opt.load_state_dict(opt_state)  # the state resumes; the settings (learning rates, betas, decay) are this run's, as set now
            bad = next((k for p, s in opt.state.items() for k in {*s, *(("momentum_buffer",) if isinstance(opt, Muon) else ("step", "exp_avg",
                        "exp_avg_sq"))} if not torch.is_tensor(s.get(k)) or s[k].shape != (p.shape, ())[k == "step"]), None)  # all a step makes
            refuse_first((bad, f"its optimizer state {bad!r} is missing or not a tensor of its parameter's shape (a smaller one crashed Adam)"))
            for group, ours in zip(opt.param_groups, settings):
                group.update(ours)
        random.setstate((3, tuple(state["rng"]["python"]), None)), torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(("MT19937", state["rng"]["numpy"].numpy().astype(np.uint32), state["rng"]["numpy_pos"], 0, 0.0))
    return state["step"], state["training_ms"], state["frozen"]

def main() -> int:
    check_torch(torch.__version__)
    code, args = Path(__file__).read_text(encoding="utf-8"), Hyperparameters(os.environ)
    rt = setup_runtime(args)
    kept = claim_outputs(args) if rt.rank == 0 else []  # only rank 0 writes; torchrun ends the other ranks if it refuses
    log = Logger(args.run_id, rt.rank, code)
    device_name = torch.cuda.get_device_name(rt.device) if rt.use_cuda else f"CPU ({os.cpu_count()} cores)"
    log(f"Running Python {sys.version.split()[0]}, PyTorch {torch.__version__}, device:{device_name}")
    log(f"pytorch_version:{torch.__version__} hardware:{rt.world_size}x{device_name}")  # read by records/tools.py
    logged = [name for name in ENV_NAMES if os.environ.get(name)] + sorted(n for n in os.environ if n.startswith(TORCH_ENV))
    log("env: " + " ".join(f"{name}={shlex.quote(os.environ[name])}" for name in logged))
    if args.recipe:  # what the recipe set, as resolved: a variable set in the environment wins (marked *)
        log(f"recipe:{args.recipe} " + " ".join(f"{k}={shlex.quote(os.environ[k]) + '*' if os.environ.get(k) else v}"
                                                 for k, v in args.recipe_vars.items()))
    for line in [f"warning: {w}" for w in ([] if args.eval_only else args.no_effect) + args.misspelt] + kept:  # EVAL_ONLY refuses the rest
        log(line)
    step = 0
    stop_on_signals(log, lambda: "during EVAL_ONLY evaluation" if args.eval_only else f"at step:{step}/{args.iterations}; no artifact written")
    if args.eval_only:
        return eval_only(args, rt, log)
    random.seed(args.seed), np.random.seed(args.seed), torch.manual_seed(args.seed)
    device, distributed = rt.device, rt.distributed
    model_that_fits(args, share=rt.local_procs)  # each process builds one
    val_tokens, token_bytes, tokenizer_sha, kind = load_eval_data(args.data_path, args.tokenizer_path, args.vocab_size, args.train_seq_len, device)
    log(f"val_bpb:enabled tokenizer_kind={kind} tokenizer_path={args.tokenizer_path}")
    train_loader = DistributedTokenLoader(args.data_path, args.vocab_size, rt.rank, rt.world_size, device)
    log(f"train_loader:dataset:{Path(args.data_path).name} train_shards:{len(train_loader.stream.files)}")
    log(f"val_loader:shards pattern={os.path.join(args.data_path, '*_val_*.bin')} tokens:{val_tokens.numel()}")
    if teacher := load_teacher(args, tokenizer_sha, device):
        log(f"distill_teacher:{args.distill_teacher} teacher_params:{sum(p.numel() for p in teacher[0].parameters())}"
            f" alpha:{args.distill_alpha} temp:{args.distill_temp}")
    local_tokens = args.train_batch_tokens // (rt.world_size * args.grad_accum_steps)
    base_model = model_whose_batches_fit(build_model(args).to(device), args, rt, local_tokens // args.train_seq_len, val_tokens.numel(), teacher)
    model_fwd = torch.compile(base_model, dynamic=False, fullgraph=True, backend=args.compile_backend) if rt.compile else base_model
    sync = "forward_sync_buffers" if "forward_sync_buffers" in DDP.__init__.__code__.co_varnames else "broadcast_buffers"  # torch 2.13's name
    model = DDP(model_fwd, device_ids=[rt.local_rank] if rt.use_cuda else None, **{sync: False}) if distributed else model_fwd  # buffers: all equal
    members = list(base_model.members) if isinstance(base_model, Ensemble) else [base_model]
    optimizers = [opt for m in members for opt in build_optimizers(m, args, compile_muon=rt.compile)]
    log(f"model_params:{sum(p.numel() for p in base_model.parameters())}")
    log(f"frozen_params:{sum(m.base.numel() for m in base_model.modules() if isinstance(m, FrozenFC))}")
    ranks = f"attn:{','.join(map(str, args.attn_ranks))}:mlp:{','.join(map(str, args.mlp_ranks))}"
    extras = {"ranks": args.freeze_mode in ("adapter", "lowrank") and ranks, "correction_rank": args.frozen_correction_rank,
              "progressive_freeze_frac": args.progressive_freeze_frac, "num_models": args.num_models > 1 and 2,
              "bigram": args.bigram_buckets and f"{args.bigram_buckets}x{args.bigram_dim}"}
    log(f"freeze_mode:{args.freeze_mode} targets:{','.join(args.targets) or '-'} base_init:{args.base_init} base_seed:{args.base_seed}"
        + "".join(f" {k}:{v}" for k, v in extras.items() if v))
    log(f"world_size:{rt.world_size} grad_accum_steps:{args.grad_accum_steps}")
    log("config: " + " ".join(f"{n.lower()}:{getattr(args, n.lower())}" for n, *_ in ENV_VARS) + f" compile:{rt.compile}")  # every value, resolved
    run_eval = make_run_eval(model_fwd, val_tokens, token_bytes, rt, args)
    masked = [m for m in base_model.modules() if isinstance(m, MaskedRandomLinear)]
    progressive = [m.weight for n, m in base_model.named_modules() if ".blocks." in f".{n}" and n.split(".")[-1] in args.targets
                   and isinstance(m, CastedLinear)] if args.progressive_freeze_frac > 0 else []
    params, ema = list(base_model.parameters()), EMA(args.ema_decay, args.ema_start_step)
    def run_progress(step: int, elapsed_ms: float) -> float:  # fraction of the run done: by wallclock under a cap, else by steps
        return min(elapsed_ms / (1000.0 * args.max_wallclock_seconds) if args.max_wallclock_seconds > 0 else step / args.iterations, 1.0)
    def train_step(step: int, elapsed_ms: float) -> Tensor:
        mul = lr_multiplier(args, step, elapsed_ms)
        frac = min(step / args.muon_momentum_warmup_steps, 1.0) if args.muon_momentum_warmup_steps else 1.0
        for opt, group in ((opt, group) for opt in optimizers for group in opt.param_groups):
            group["lr"] = group["base_lr"] * mul  # and Muon's momentum warms up (Adam's betas are fixed)
            group.update(momentum=(1 - frac) * args.muon_momentum_warmup_start + frac * args.muon_momentum) if isinstance(opt, Muon) else None
        for m in masked:  # geometric annealing, written into the buffers the (compiled) forward reads
            m.temperature.fill_(args.mask_temp_start * (args.mask_temp_end / args.mask_temp_start) ** run_progress(step, elapsed_ms))
        loss_sum = torch.zeros((), device=device)
        for micro in range(args.grad_accum_steps):
            x, y = train_loader.next_batch(local_tokens, args.train_seq_len)
            setattr(model, "require_backward_grad_sync", micro == args.grad_accum_steps - 1) if distributed else None  # DDP: the last syncs
            with rt.autocast:  # distilling: the frozen teacher's logits too (no autograd graph: windowed_logits runs under no_grad)
                loss_sum += (loss := model(x, y, *distill_args(teacher, x)).mean()).detach()
            (loss / args.grad_accum_steps).backward()
            del loss  # made at the step's peak, atop the heap: kept through the next forward, its holes grew RSS to 3.1x the count, not 2.0
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip_norm) if args.grad_clip_norm > 0 else None
        for opt in optimizers:
            opt.step()
        base_model.zero_grad(set_to_none=True)  # frozen parameters' gradients included
        dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM) if distributed else None  # one tiny all-reduce: every rank sees the same mean loss
        return loss_sum / (args.grad_accum_steps * rt.world_size)
    # Compile warmup: a few real steps compile now, then the weights, optimizer state and data stream are rolled back (a timed run from scratch)
    if args.warmup_steps > 0:
        initial_model, initial_opt = copy.deepcopy(base_model.state_dict()), [copy.deepcopy(opt.state_dict()) for opt in optimizers]
        for i in range(args.warmup_steps):
            train_step(0, 0.0)
            log(f"warmup_step:{i + 1}/{args.warmup_steps}")
        for restored, state in zip([base_model, *optimizers], [initial_model, *initial_opt]):
            restored.load_state_dict(state)
        train_loader = DistributedTokenLoader(args.data_path, args.vocab_size, rt.rank, rt.world_size, device)
    clock = lambda: (torch.cuda.synchronize() if rt.use_cuda else None, time.perf_counter())[1]  # the time once the device is done
    training_ms, stop_after, cap_ms, next_check = 0.0, None, 1000.0 * args.max_wallclock_seconds, 0
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)  # any non-finite loss since the last check
    if args.resume:
        step, training_ms, frozen = resume(args.resume, args, base_model, optimizers, ema, train_loader.stream, progressive)
        progressive = [] if frozen else progressive
        log(f"resumed:{args.resume} step:{step} train_time:{training_ms:.0f}ms")
    t0 = clock()
    while True:
        last_step = step == args.iterations or step == stop_after
        if last_step and args.ema_decay:  # the artifact and the final evaluation use the averaged weights
            log(f"ema: final weights are the EMA (decay {args.ema_decay}, from step {args.ema_start_step})" if ema.copy_to(base_model) else
                f"ema: not used: the run stopped at step {step}, before EMA_START_STEP={args.ema_start_step}; the final weights are the trained ones")
        if last_step or (args.val_loss_every > 0 and step % args.val_loss_every == 0):
            training_ms += 1000.0 * (clock() - t0)
            val_loss, val_bpb, _ = run_eval(None)
            log(f"step:{step}/{args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
                f"train_time:{training_ms:.0f}ms step_avg:{training_ms / max(step, 1):.2f}ms")
            t0 = clock()
        if last_step:
            break
        loss = train_step(step, training_ms + 1000.0 * (time.perf_counter() - t0))  # stays on the device: a plain step never syncs
        step += 1
        ema.update(base_model, step)
        nonfinite |= ~torch.isfinite(loss)
        logging = step <= 10 or step % args.train_log_every == 0 or stop_after is not None
        saving = args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.iterations
        if not (logging or saving or step >= min(next_check, args.iterations)):
            continue
        # Ranks agree on a non-finite loss, the cap and the freeze only here: every CPU step, else logging steps, ~2 s apart, the last, all near cap
        elapsed_ms = training_ms + 1000.0 * (time.perf_counter() - t0)
        flags = torch.cat([nonfinite.double().view(1), torch.tensor([stop_after is None and elapsed_ms >= cap_ms > 0, elapsed_ms, bool(progressive)
                           and run_progress(step, elapsed_ms) >= args.progressive_freeze_frac], dtype=torch.float64, device=device)])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX) if distributed else None
        bad, cap_reached, elapsed_ms, freeze_now = flags.tolist()
        if bad:
            log(f"stopping: non-finite train_loss:{loss.item()} at step:{step}/{args.iterations}; no artifact written")
            return 3
        if logging:
            log(f"step:{step}/{args.iterations} train_loss:{loss.item():.4f} train_time:{elapsed_ms:.0f}ms step_avg:{elapsed_ms / step:.2f}ms")
        stop_after = step if cap_reached else stop_after
        log(f"stopping_early: wallclock_cap train_time:{elapsed_ms:.0f}ms step:{step}/{args.iterations}") if cap_reached else None
        if freeze_now:
            freeze_parameters(optimizers, progressive)
            log(f"progressive_freeze: froze {len(progressive)} matrices ({','.join(args.targets)}) after step:{step} train_time:{elapsed_ms:.0f}ms")
            progressive = []
        if saving and rt.rank == 0:
            save_checkpoint(args.checkpoint_path, args, base_model, optimizers, ema.avg, train_loader.stream, step, elapsed_ms,
                            args.progressive_freeze_frac > 0 and not progressive)
            log(f"checkpoint:{args.checkpoint_path} step:{step}")
        next_check = step + (1 if not rt.use_cuda else max(1, int(min(2000.0, (cap_ms - elapsed_ms) / 2 if cap_ms else 2000.0) * step / elapsed_ms)))
    log(f"train_data: {(seen := step * args.train_batch_tokens)} tokens trained, {seen / train_loader.stream.total:.2f} passes over the train shards")
    log(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB"
        if rt.use_cuda else f"peak memory rss: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // RSS_PER_MIB} MiB")
    # Artifact: the raw state dict, then int8 + zlib (or ARTIFACT_CODEC), read back on every rank before anything is written, evaluated again.
    code_bytes, artifact_path = len(code.encode("utf-8")), Path(args.artifact)
    meta = {"config": args.model_config(), "torch_version": str(torch.__version__), "regenerated": regenerated_checksums(base_model),
            "eval": {"data_path": os.path.abspath(args.data_path), "tokenizer_path": os.path.abspath(args.tokenizer_path),
                     "tokenizer_sha256": tokenizer_sha, "val_batch_size": args.val_batch_size, "eval_stride": args.eval_stride,
                     "eval_batch_seqs": args.eval_batch_seqs}}
    state = {k: v.detach().clone() for k, v in base_model.state_dict().items()}  # kept: loading the round trip overwrites the weights
    data, stats = artifact_bytes(state, meta, args.int6_blocks, args.embed_fp16, args.artifact_codec) if rt.rank == 0 else (None, None)
    if rt.distributed:  # rank 0's bytes on every rank: the round trip evaluates the artifact it just made, not a file
        dist.broadcast_object_list(box := [data], 0, device=rt.device)
        data = box[0]
    try:  # finite weights can still make no usable artifact (past fp16's range, say): then an earlier artifact stays
        loaded, _ = model_from_artifact(artifact_path, expect=args.model_config(), data=data)
    except ConfigError as e:
        log(f"stopping: the final weights make no usable artifact ({str(e).removeprefix(f'ARTIFACT={artifact_path}: ')}); no artifact written")
        return 3
    if rt.rank == 0:  # the raw weights and the artifact are replaced together or not at all
        write_together({"final_model.pt": (raw := saved_bytes(state)), artifact_path: data})
        log(f"Serialized model: {len(raw)} bytes"), log(f"Code size: {code_bytes} bytes")
        log(f"Total submission size: {len(raw) + code_bytes} bytes")
        log(f"Serialized model int8+{args.artifact_codec}: {len(data)} bytes (payload:{stats['payload_bytes']} raw_torch:{stats['raw_torch_bytes']} "
            f"payload_ratio:{stats['float_bytes'] / max(stats['payload_bytes'], 1):.2f}x)")
        log(f"Total submission size int8+{args.artifact_codec}: {(total := len(data) + code_bytes)} bytes")
        log(f"warning: Total submission size {total} bytes is over the challenge's 16000000-byte cap") if total > 16_000_000 else None
        log(f"artifact_storage {storage_summary(stats)}")
    stop_on_signals(log, lambda: f"during the final evaluation; the artifact {artifact_path} is complete")
    base_model.load_state_dict(loaded.state_dict(), strict=True)
    bpb = final_evaluation(log, run_eval, args.eval_stride, args.artifact_codec)
    for i, member in enumerate(members if len(members) > 1 else []):
        loss_i, bpb_i, _ = run_eval(None, member)
        log(f"ensemble_member:{i} val_loss:{loss_i:.4f} val_bpb:{bpb_i:.4f} (ensemble {bpb:.4f})")
    if args.int6_blocks:  # what int6 saved and cost, against the same weights all in int8
        int8_data, _ = artifact_bytes(state, meta, (), args.embed_fp16, args.artifact_codec)
        base_model.load_state_dict(read_artifact(artifact_path, int8_data)[0], strict=True)
        _, bpb8, _ = run_eval(None)
        log(f"int6_layers:{','.join(map(str, args.int6_blocks))} bytes_saved:{len(int8_data) - len(data)} "
            f"(all-int8 artifact {len(int8_data)} bytes) val_bpb_cost:{bpb - bpb8:+.4f} (all-int8 round trip {bpb8:.4f})")
    return 0

def leave_process_group(clean: bool) -> None:  # at every exit: garbage first (DDP's reducer, freed after the group, made gloo abort 1 run in 7)
    if dist.is_available() and dist.is_initialized():
        gc.collect(), dist.barrier() if clean else None
        dist.destroy_process_group()

def cli(argv: list[str]) -> int:
    if argv in (["--env-help"], ["--help"], ["-h"]):
        return print(env_help()) or 0
    try:  # `--iterations 100` ran the default run, ignored (torch.distributed.launch's --local-rank=N is LOCAL_RANK's value again)
        refuse_first(([a for a in argv if not re.fullmatch(r"--local[-_]rank=\d+", a)], f"train_gpt.py takes no arguments (got "
                      f"{shlex.join(argv)}); its settings are environment variables: NAME=VALUE python train_gpt.py (--env-help lists them)"))
        status = main()
    except (ConfigError, OSError) as e:  # bad input, an unchecked file: one line (a newline in a path or a stored value escaped), one write
        line = f"error: {e if isinstance(e, ConfigError) else f'{e.filename}: {e.strerror or e}' if e.filename else e}".replace("\n", "\\n")
        with contextlib.suppress(OSError):  # a terminal closed (EIO): the log still gets the line, below
            sys.stderr.write(line + "\n")  # print's two writes (the line, its newline), under torchrun's `python -u`, interleaved between ranks
        with contextlib.suppress(ConfigError):  # a run under way ends its log on it too, with where it was (unless its log is what failed)
            RUNNING[2](f"stopping: {line.removeprefix('error: ')} ({RUNNING[1]()})", console=False) if RUNNING else tell_torchrun(line)
        status = 2
    except RuntimeError as e:  # out of memory (torch.OutOfMemoryError on a GPU, the allocator's error on a CPU), a tool missing, a rank gone or hung
        tools = type(e).__name__ in ("InductorError", "BackendCompilerFailed")  # COMPILE=1 without inductor's C++ compiler (CPU), Triton (GPU)
        kind = re.search(r"(out of memory|can't allocate memory|ALLOC_FAILED)|(Connection \w+ by peer)|Timed out waiting \d+ms", str(e))
        if not RUNNING or not (tools or kind):  # gloo's words to a rank waiting on another: that one ended first, or never answered
            raise  # anything else, with its traceback
        why = " ".join(re.sub(r"Command:.*?(?=Output:)|backend='\w+' raised:|Set TORCH.*", "", str(e), flags=re.S).split())[:240]  # its own words
        tried = re.search(r"[Tt]ried to allocate ([\d.]+ ?\w+)", str(e))  # CUDA: '2.00 GiB', the CPU allocator: '268435456 bytes'
        RUNNING[0](f"stopping: torch.compile failed ({why}) {RUNNING[1]()}; set COMPILE=0 (or COMPILE_BACKEND=eager), or give its backend "
                   "what it needs (a C++ compiler on a CPU, Triton on a GPU)" if tools else f"stopping: out of memory "
                   f"({f'tried to allocate {tried[1]}' if tried else kind[1]}) {RUNNING[1]()}; lower TRAIN_BATCH_TOKENS or raise "
                   "GRAD_ACCUM_STEPS (training), VAL_BATCH_SIZE or EVAL_BATCH_SEQS (evaluation), or the model" if kind[1] else
                   f"stopping: another process of this run ended ({kind[0]}) {RUNNING[1]()}; the first to stop says why (torchrun's Root Cause)"
                   if kind[2] else f"stopping: another process of this run stopped answering ({kind[0]}) {RUNNING[1]()}; stopped (SIGSTOP) or stuck")
        status = 3
    finally:  # an in-process caller (the tests' harness) runs again with fresh locks, signals and state
        RUNNING.clear(), signal.setitimer(signal.ITIMER_REAL, 0)  # and no stop raised again (stop_on_signals) after this
        while HELD_LOCKS:
            os.close(HELD_LOCKS.pop())
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGINT):
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    leave_process_group(clean=status == 0)
    return status

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
