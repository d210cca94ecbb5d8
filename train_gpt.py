"""
train_gpt.py: learned adapters on random linear maps, for OpenAI's Parameter Golf.

One self-contained script. With no variable set it trains the challenge's naive baseline;
every variant is chosen by an environment variable (README.md lists them all, and
`python train_gpt.py --env-help` prints the same table).

    torchrun --standalone --nproc_per_node=8 train_gpt.py    # the challenge run, 8 GPUs
    python train_gpt.py                                       # one process, GPU or CPU
"""

from __future__ import annotations

import copy
import glob
import hashlib
import io
import math
import os
import random
import re
import resource
import shlex
import signal
import sys
import time
import uuid
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

# -----------------------------------------------------------------------------
# HYPERPARAMETERS
# -----------------------------------------------------------------------------


class ConfigError(ValueError):
    """Bad input (a variable, a file): reported as one line that names it, exit status 2."""


LR_MAX = 1e30  # far beyond any useful rate; above ~1e37 Adam's bias-corrected step overflows float32
# (variable, default, kind, accepted: (low, high) inclusive or a tuple of choices, meaning)
ENV_VARS = [
    # data and run
    ("DATA_PATH", "./data/datasets/fineweb10B_sp1024", "str", None, "folder holding the `*_train_*.bin` and `*_val_*.bin` shards"),
    ("TOKENIZER_PATH", "./data/tokenizers/fineweb_1024_bpe.model", "str", None, "SentencePiece model of the shards (byte accounting of val_bpb)"),
    ("RUN_ID", "", "str", None, "log file `logs/<RUN_ID>.txt`; empty = a random id"),
    ("SEED", 1337, "int", (0, 2**31 - 1), "seed of the initialisation"),
    # model
    ("VOCAB_SIZE", 1024, "int", (2, 65536), "must equal the tokenizer's vocabulary"),
    ("NUM_LAYERS", 9, "int", (1, 1024), "transformer blocks"),
    ("MODEL_DIM", 512, "int", (2, 65536), "residual width"),
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
    ("VAL_BATCH_SIZE", 524288, "int", (1, 10**10), "validation tokens per forward pass, all ranks together"),
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
    ("BETA1", 0.9, "float", (0.0, 0.999999), "Adam beta1"),
    ("BETA2", 0.95, "float", (0.0, 0.999999), "Adam beta2"),
    ("ADAM_EPS", 1e-8, "float", (0.0, 1.0), "Adam epsilon"),
    ("GRAD_CLIP_NORM", 0.0, "float", (0.0, 1e30), "clip the global grad norm; 0 = off"),
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
    ("FREEZE_TARGETS", "", "str", None, "comma list of q,k,v,o,fc,proj (attn, mlp, all); empty = all (frozen, progressive freeze: fc)"),
    ("LORA_RANK", 16, "int", (1, 65536), "rank of adapters and low-rank factors"),
    ("LORA_RANKS", "", "str", None, "comma list of one rank per layer, overriding LORA_RANK"),
    ("BASE_SEED", 0, "int", (0, 2**32 - 1), "seed of every regenerated matrix (each projection derives its own)"),
    ("BASE_INIT", "gaussian", "str", ("gaussian", "uniform", "orthogonal", "rademacher"), "distribution of the regenerated matrices"),
    ("FROZEN_CORRECTION_RANK", 0, "int", (0, 65536), "frozen mode with fc and proj frozen: a learned rank-r path beside each MLP"),
    ("PROGRESSIVE_FREEZE_FRAC", 0.0, "float", (0.0, 0.999), "train the targets dense, freeze them after this fraction of the run; 0 = off"),
    ("MASK_LR", 0.05, "float", (0.0, LR_MAX), "Adam learning rate of the mask scores"),
    ("MASK_INIT_SCORE", 1.0, "float", (1e-6, 1e3), "initial score of every mask entry (positive: every weight starts kept)"),
    ("MASK_TEMP_START", 1.0, "float", (1e-6, 1e6), "sigmoid temperature of the mask's straight-through gradient at the start"),
    ("MASK_TEMP_END", 0.1, "float", (1e-6, 1e6), "... at the end of the run (annealed geometrically)"),
    # export and workflow
    ("INT6_LAYERS", "", "str", None, "comma list of block indices, or all: their matrices are stored at 6 bits (31 levels a side)"),
    ("ARTIFACT", "final_model.int8.ptz", "str", None, "artifact written by training and read by EVAL_ONLY"),
    ("EVAL_ONLY", 0, "int", (0, 1), "1 = evaluate ARTIFACT, plain and sliding, and exit (model, data and eval settings from the artifact)"),
    ("CHECKPOINT_EVERY", 0, "int", (0, 10**9), "write a checkpoint every N steps (write, then rename over the last good one); 0 = off"),
    ("CHECKPOINT_PATH", "", "str", None, "checkpoint file; empty = checkpoints/<RUN_ID>.pt"),
    ("RESUME", "", "str", None, "checkpoint to continue from (the same configuration); empty = start fresh"),
    # device
    ("COMPILE", "auto", "str", ("auto", "0", "1"), "torch.compile(fullgraph=True); auto = on for CUDA, off for CPU"),
    ("COMPILE_BACKEND", "inductor", "str", ("inductor", "eager", "aot_eager"), "backend of torch.compile"),
]


def _parse_var(name: str, raw: str, kind: str, accepted):
    try:
        value = {"int": int, "float": float, "str": str}[kind](raw.strip() if kind != "str" else raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not {'an integer' if kind == 'int' else 'a number'}") from None
    if kind == "float" and not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r}: not a finite number")
    if isinstance(accepted, tuple) and kind != "str" and not accepted[0] <= value <= accepted[1]:
        raise ConfigError(f"{name}={raw}: out of range; accepted {accepted[0]} to {accepted[1]}")
    if isinstance(accepted, tuple) and kind == "str" and value not in accepted:
        raise ConfigError(f"{name}={raw!r}: unknown value; accepted: {', '.join(accepted)}")
    return value


class Hyperparameters:
    """Every knob of the run, read from the environment and validated before any work."""

    def __init__(self, environ=os.environ):
        for name, default, kind, accepted, _ in ENV_VARS:
            raw = environ.get(name)
            setattr(self, name.lower(), default if raw is None or raw == "" else _parse_var(name, raw, kind, accepted))
        self.run_id = self.run_id or str(uuid.uuid4())
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.run_id) or self.run_id.startswith("."):
            raise ConfigError(f"RUN_ID={self.run_id!r}: accepted letters, digits, _ . and - (it names logs/<RUN_ID>.txt)")
        self.mlp_hidden = max(1, round(self.mlp_mult * self.model_dim))
        self.check_shapes()
        self.check_random_maps()
        self.check_export()

    def check_shapes(self) -> None:
        if self.model_dim % self.num_heads:
            raise ConfigError(f"MODEL_DIM={self.model_dim}: not divisible by NUM_HEADS={self.num_heads}")
        if (self.model_dim // self.num_heads) % 2:
            raise ConfigError(f"NUM_HEADS={self.num_heads}: head dim MODEL_DIM/NUM_HEADS={self.model_dim // self.num_heads} must be even for RoPE")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"NUM_KV_HEADS={self.num_kv_heads}: must divide NUM_HEADS={self.num_heads}")
        if self.eval_stride > self.train_seq_len:
            raise ConfigError(f"EVAL_STRIDE={self.eval_stride}: larger than TRAIN_SEQ_LEN={self.train_seq_len}; accepted 0 to TRAIN_SEQ_LEN")

    def check_random_maps(self) -> None:
        """FREEZE_* and LORA_* together: parsed target set, per-layer ranks, compatible settings."""
        mode, progressive = self.freeze_mode, self.progressive_freeze_frac > 0
        default = "fc" if mode == "frozen" or progressive else ("" if mode == "none" else "all")
        self.targets = parse_targets(self.freeze_targets or default)
        if mode == "none" and self.freeze_targets and not progressive:
            raise ConfigError(f"FREEZE_TARGETS={self.freeze_targets!r}: has no effect with FREEZE_MODE=none"
                              " (set FREEZE_MODE or PROGRESSIVE_FREEZE_FRAC)")
        if progressive and mode != "none":
            raise ConfigError(f"PROGRESSIVE_FREEZE_FRAC={self.progressive_freeze_frac}: trains the targets as dense matrices"
                              f", so it needs FREEZE_MODE=none, not {mode}")
        if self.lora_ranks:
            if mode not in ("adapter", "lowrank"):
                raise ConfigError(f"LORA_RANKS={self.lora_ranks!r}: applies to FREEZE_MODE=adapter or lowrank, not {mode}")
            try:
                ranks = [int(r) for r in self.lora_ranks.split(",")]
            except ValueError:
                raise ConfigError(f"LORA_RANKS={self.lora_ranks!r}: not a comma list of integers") from None
            if len(ranks) != self.num_layers or min(ranks) < 1:
                raise ConfigError(f"LORA_RANKS={self.lora_ranks!r}: needs {self.num_layers} positive ranks"
                                  f" (one per layer, NUM_LAYERS={self.num_layers}), got {len(ranks)}")
            self.ranks = ranks
        else:
            self.ranks = [self.lora_rank] * self.num_layers
        if mode in ("adapter", "lowrank"):
            dims = projection_dims(self)
            smallest = min(min(dims[t]) for t in self.targets)
            if max(self.ranks) > smallest:
                raise ConfigError(f"{'LORA_RANKS' if self.lora_ranks else 'LORA_RANK'}={max(self.ranks)}"
                                  f": above the smallest targeted projection dimension {smallest}")
        if self.frozen_correction_rank and not (mode == "frozen" and {"fc", "proj"} <= set(self.targets)):
            raise ConfigError(f"FROZEN_CORRECTION_RANK={self.frozen_correction_rank}: needs FREEZE_MODE=frozen"
                              " with both fc and proj in FREEZE_TARGETS"
                              f" (got {mode}, {','.join(self.targets)})")
        if self.mask_temp_end > self.mask_temp_start:
            raise ConfigError(f"MASK_TEMP_END={self.mask_temp_end}: must not exceed MASK_TEMP_START={self.mask_temp_start}"
                              " (the temperature anneals down)")

    def check_export(self) -> None:
        """INT6_LAYERS as block indices; the default checkpoint path."""
        if self.int6_layers:
            items = [t.strip() for t in self.int6_layers.split(",") if t.strip()]
            if items == ["all"]:
                self.int6_blocks = tuple(range(self.num_layers))
            elif all(t.isdigit() and int(t) < self.num_layers for t in items) and items:
                self.int6_blocks = tuple(sorted({int(t) for t in items}))
            else:
                raise ConfigError(f"INT6_LAYERS={self.int6_layers!r}: accepted 'all' or a comma list of block indices 0 to {self.num_layers - 1}")
        else:
            self.int6_blocks = ()
        self.checkpoint_path = self.checkpoint_path or f"checkpoints/{self.run_id}.pt"
        folder = Path(self.checkpoint_path).absolute().parent
        if self.checkpoint_every and not os.access(next(p for p in (folder, *folder.parents) if p.exists()), os.W_OK):
            raise ConfigError(f"CHECKPOINT_PATH={self.checkpoint_path}: its folder cannot be written")

    def check_world(self, world_size: int) -> None:
        """Checks that need the number of processes; sets grad_accum_steps."""
        if self.grad_accum_steps == 0:
            if 8 % world_size:
                raise ConfigError(f"WORLD_SIZE={world_size}: must divide 8 (1, 2, 4 or 8 processes), or set GRAD_ACCUM_STEPS")
            self.grad_accum_steps = 8 // world_size
        per_step = world_size * self.grad_accum_steps * self.train_seq_len
        if self.train_batch_tokens % per_step:
            raise ConfigError(f"TRAIN_BATCH_TOKENS={self.train_batch_tokens}: must be a multiple of world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN"
                              f" = {per_step}")
        if self.val_batch_size < world_size * self.train_seq_len:
            raise ConfigError(f"VAL_BATCH_SIZE={self.val_batch_size}: must hold at least one TRAIN_SEQ_LEN window per rank"
                              f" ({world_size * self.train_seq_len})")

    def model_config(self) -> dict:
        """What is needed to rebuild the model: stored in the artifact."""
        keys = ("vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_hidden", "tie_embeddings",
                "tied_embed_init_std", "rope_base", "logit_softcap", "qk_gain_init", "train_seq_len", "freeze_mode",
                "targets", "ranks", "base_seed", "base_init", "frozen_correction_rank", "mask_init_score", "bigram_buckets",
                "bigram_dim", "num_models")
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k in keys for v in [getattr(self, k)]}


PROJECTIONS = ("q", "k", "v", "o", "fc", "proj")
TARGET_GROUPS = {"attn": ("q", "k", "v", "o"), "mlp": ("fc", "proj"), "all": PROJECTIONS}


def parse_targets(text: str) -> tuple[str, ...]:
    """'attn,fc' -> ('q', 'k', 'v', 'o', 'fc'), in the order of PROJECTIONS."""
    chosen = set()
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item not in PROJECTIONS and item not in TARGET_GROUPS:
            raise ConfigError(f"FREEZE_TARGETS={text!r}: unknown projection {item!r}; accepted: {', '.join(PROJECTIONS + tuple(TARGET_GROUPS))}")
        chosen.update(TARGET_GROUPS.get(item, (item,)))
    return tuple(p for p in PROJECTIONS if p in chosen)


def projection_dims(cfg) -> dict[str, tuple[int, int]]:
    """(in, out) features of each block projection."""
    dim, kv = cfg.model_dim, cfg.num_kv_heads * (cfg.model_dim // cfg.num_heads)
    return {"q": (dim, dim), "k": (dim, kv), "v": (dim, kv), "o": (dim, dim), "fc": (dim, cfg.mlp_hidden), "proj": (cfg.mlp_hidden, dim)}


def env_help() -> str:
    rows = ["| variable | default | accepted | meaning |", "|---|---|---|---|"]
    for name, default, kind, accepted, meaning in ENV_VARS:
        acc = (" / ".join(accepted) if kind == "str" else f"{accepted[0]:,} to {accepted[1]:,}" if kind == "int"
               else f"{accepted[0]:g} to {accepted[1]:g}") if accepted else "text"
        rows.append(f"| `{name}` | {f'`{default}`' if default != '' else '(empty)'} | {acc} | {meaning} |")
    return "\n".join(rows)


# -----------------------------------------------------------------------------
# MUON OPTIMIZER
# -----------------------------------------------------------------------------


def newton_schulz_orthogonalize(grad: Tensor, steps: int, eps: float = 1e-7) -> Tensor:
    """Approximately U V^T for grad = U S V^T (of each matrix in a stack): a quintic
    Newton-Schulz iteration whose coefficients push every singular value towards 1 fast
    (Muon). bf16 on CUDA, fp32 on CPU where bf16 matmuls are slow."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = grad.to(torch.bfloat16 if grad.is_cuda else torch.float32)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """Momentum, then orthogonalised updates for 2-D matrices. Matrices of one shape are
    orthogonalised together as one stack (a handful of batched multiplies a step instead of a
    few kernels per matrix, which on a GPU is launch-bound). Under several processes each
    rank takes every world_size-th matrix of each shape and one all-reduce shares them; every
    rank keeps every momentum buffer (cheap), so any rank's state is the whole state."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int, nesterov: bool = True, weight_decay: float = 0.0,
                 orthogonalize=newton_schulz_orthogonalize):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov, weight_decay=weight_decay))
        self.orthogonalize = orthogonalize  # torch.compile'd on CUDA

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            updates = torch._foreach_add(grads, bufs, alpha=group["momentum"]) if group["nesterov"] else bufs
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=torch.float32)
            views = [v.view_as(p) for v, p in zip(flat.split([p.numel() for p in params]), params)]
            by_shape: dict[tuple, list[int]] = {}
            for i, p in enumerate(params):
                by_shape.setdefault(tuple(p.shape), []).append(i)
            for (rows, cols), members in by_shape.items():
                mine = members[rank::world]
                if mine:
                    ortho = self.orthogonalize(torch.stack([updates[i] for i in mine]), group["backend_steps"])
                    ortho = ortho.float() * max(1.0, rows / cols) ** 0.5  # same RMS for tall matrices
                    torch._foreach_copy_([views[i] for i in mine], list(ortho.unbind(0)))
            if world > 1:
                dist.all_reduce(flat)
            if group["weight_decay"]:  # decoupled: shrink the weights, then step
                torch._foreach_mul_(params, 1.0 - group["lr"] * group["weight_decay"])
            torch._foreach_add_(params, views, alpha=-group["lr"])


# -----------------------------------------------------------------------------
# EVALUATION (tokenizer-agnostic bits per byte)
# -----------------------------------------------------------------------------


def build_byte_luts(sp: spm.SentencePieceProcessor, vocab_size: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """Per token id: UTF-8 bytes of its piece without the leading '▁', whether it had one,
    and whether it is a boundary (control, unknown, unused: no space byte after it)."""
    base = np.zeros(vocab_size, dtype=np.int16)
    space = np.zeros(vocab_size, dtype=np.bool_)
    boundary = np.ones(vocab_size, dtype=np.bool_)
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i], piece = True, piece[1:]
        base[i] = len(piece.encode("utf-8"))
    as_t = lambda a: torch.from_numpy(a).to(device)
    return as_t(base), as_t(space), as_t(boundary)


def window_plan(num_targets: int, seq_len: int, stride: int) -> tuple[list[int], list[int]]:
    """Window starts and, per window, the first position it scores, so that targets
    1..num_targets are each scored exactly once. The first window scores all its
    positions, every later one its last `stride`; a last window aligned with the end
    scores only what the one before left. At stride == seq_len: the plain evaluation."""
    starts = list(range(0, num_targets - seq_len + 1, stride))
    if starts[-1] != num_targets - seq_len:
        starts.append(num_targets - seq_len)
    score_from = [0] + [prev + seq_len - s for prev, s in zip(starts, starts[1:])]
    return starts, score_from


@torch.no_grad()
def evaluate(model, val_tokens: Tensor, seq_len: int, stride: int, batch_seqs: int, luts, rank: int = 0,
             world_size: int = 1, device=torch.device("cpu"), autocast=None) -> tuple[float, float, int]:
    """(val_loss in nats, val_bpb, scored tokens) over the first whole multiple of
    seq_len targets, sums in float64 and all-reduced; windows are split across ranks."""
    num_targets = ((val_tokens.numel() - 1) // seq_len) * seq_len
    starts, score_from = window_plan(num_targets, seq_len, stride)
    lo, hi = len(starts) * rank // world_size, len(starts) * (rank + 1) // world_size
    base_bytes, has_space, is_boundary = luts
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # nll, tokens, bytes
    offsets = torch.arange(seq_len + 1)
    positions = torch.arange(seq_len, device=device)
    batch_seqs = max(1, min(batch_seqs, hi - lo))
    for b in range(lo, hi, batch_seqs):
        # a short last batch is padded with copies of its last window that score nothing,
        # so a compiled model sees one input shape and never recompiles for the tail
        e = min(b + batch_seqs, hi)
        pad = b + batch_seqs - e
        window = val_tokens[torch.tensor(starts[b:e] + starts[e - 1:e] * pad)[:, None] + offsets].to(device=device, dtype=torch.int64)
        x, y = window[:, :-1], window[:, 1:]
        with autocast or torch.autocast(device.type, enabled=False):
            nll = model(x, y)
        keep = positions[None, :] >= torch.tensor(score_from[b:e] + [seq_len] * pad, device=device)[:, None]
        nbytes = base_bytes[y].to(torch.int64) + (has_space[y] & ~is_boundary[x]).to(torch.int64)
        sums += torch.stack([nll.double()[keep].sum(), keep.sum().double(), nbytes[keep].sum().double()])
    if world_size > 1:
        dist.all_reduce(sums)
    nll, tokens, nbytes = sums.tolist()
    val_loss = nll / tokens
    return val_loss, val_loss / math.log(2.0) * tokens / nbytes, int(tokens)


# -----------------------------------------------------------------------------
# QUANTIZATION AND ARTIFACT (int8 per row + zlib, read back weights-only)
# -----------------------------------------------------------------------------

ARTIFACT_FORMAT = "rlm_int8_zlib_v1"
KEEP_FLOAT_MAX_NUMEL = 65_536  # smaller float tensors are stored as fp16 (control tensors fp32)
INT8_CLIP_PERCENTILE = 99.99984
CONTROL_TENSOR_NAMES = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights", "mask_scale")


class ArtifactError(ConfigError):
    """An artifact that cannot be used: truncated, corrupted, or from another configuration."""


def quantize_rows_int8(w: Tensor, levels: int = 127) -> tuple[Tensor, Tensor]:
    """Per-row int8: clip each row at the INT8_CLIP_PERCENTILE of |w|, `levels` a side (127;
    31 for int6), fp16 scales no smaller than the house's 1/127 (values are rounded with the
    stored fp16 scale, so dequantization is exact)."""
    w = w.float()
    clip = torch.quantile(w.abs(), INT8_CLIP_PERCENTILE / 100.0, dim=1) if w.numel() else w.new_zeros(w.size(0))
    scale = (clip / levels).clamp_min(1.0 / 127.0).to(torch.float16)
    q = torch.round(torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None]) / scale.float()[:, None])
    return q.clamp(-levels, levels).to(torch.int8), scale


def quantize_state_dict(state: dict[str, Tensor], int6_blocks=()) -> tuple[dict, dict]:
    """The house export: 2-D float tensors above KEEP_FLOAT_MAX_NUMEL to int8 per row, other
    large float tensors to int8 with one scale, small ones kept (fp16, control tensors fp32).
    Mask scores (names ending in .scores) are stored as their mask, 1 bit a weight; matrices
    of the blocks in int6_blocks take 31 levels a side (int6 values in int8 storage, which
    zlib then packs tighter)."""
    out = {"q": {}, "scale": {}, "keep": {}, "dtype": {}, "bits": {}, "shape": {}}
    stats = {"float_bytes": 0, "payload_bytes": 0, "int8": [], "int6": [], "kept": [], "bits": []}
    int6 = re.compile(r"(^|\.)blocks\.(" + "|".join(map(str, int6_blocks)) + r")\.") if int6_blocks else None
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        stats["float_bytes"] += t.numel() * t.element_size()
        if name.endswith(".scores"):
            out["bits"][name], out["shape"][name] = torch.from_numpy(np.packbits((t > 0).numpy().ravel())), list(t.shape)
            kind, stored = "bits", [out["bits"][name]]
        elif not t.is_floating_point() or t.numel() <= KEEP_FLOAT_MAX_NUMEL:
            if t.is_floating_point():
                t = t.float() if any(c in name for c in CONTROL_TENSOR_NAMES) else t.half()
            out["keep"][name] = t
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
    state = {}
    for name, q in blob["q"].items():
        rows = q.reshape(q.size(0), -1) if q.ndim == 2 else q.reshape(1, -1)
        state[name] = (rows.float() * blob["scale"][name].float()[:, None]).reshape(q.shape).to(getattr(torch, blob["dtype"][name]))
    for name, t in blob["keep"].items():
        state[name] = t.float() if t.is_floating_point() else t
    for name, bits in blob["bits"].items():  # a mask comes back as scores of +-1: the same hard mask
        shape = blob["shape"][name]
        kept = np.unpackbits(bits.numpy(), count=math.prod(shape)).reshape(shape)
        state[name] = torch.from_numpy(kept.astype(np.float32) * 2 - 1)
    return state


def storage_summary(stats: dict) -> str:
    """Which tensors went where, per kind: 'int8: mlp.fc.weight x9, tok_emb.weight | ...'."""
    parts = []
    for kind in ("int8", "int6", "kept", "bits"):
        counts: dict[str, int] = {}
        for name in stats[kind]:
            key = re.sub(r"blocks\.\d+\.", "", name)
            counts[key] = counts.get(key, 0) + 1
        parts.append(f"{kind}: " + (", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.items()) or "-"))
    return " | ".join(parts)


def artifact_bytes(state: dict[str, Tensor], meta: dict, int6_blocks=()) -> tuple[bytes, dict]:
    """Quantize, torch.save, zlib level 9: the artifact's bytes and the storage stats."""
    blob, stats = quantize_state_dict(state, int6_blocks)
    blob["meta"] = dict(meta, format=ARTIFACT_FORMAT)
    buf = io.BytesIO()
    torch.save(blob, buf)
    stats["raw_torch_bytes"] = buf.tell()
    return zlib.compress(buf.getvalue(), level=9), stats


def write_artifact(path: Path, state: dict[str, Tensor], meta: dict, int6_blocks=()) -> tuple[int, dict]:
    """Written to a temporary file and renamed into place, so a failed write never replaces
    an earlier artifact. Returns (bytes, stats)."""
    data, stats = artifact_bytes(state, meta, int6_blocks)
    atomic_write(path, data)
    return len(data), stats


def read_artifact(path: Path, data: bytes | None = None, var: str = "ARTIFACT") -> tuple[dict[str, Tensor], dict]:
    """Weights-only load (of the file, or of its bytes): a pickle that carries code is refused,
    not run. Errors name the variable that gave the path: ARTIFACT=path or DISTILL_TEACHER=path."""
    path = f"{var}={path}"
    try:
        raw = zlib.decompress(Path(path.split("=", 1)[1]).read_bytes() if data is None else data)
    except (FileNotFoundError, IsADirectoryError):
        raise ArtifactError(f"{path}: no such artifact") from None
    except zlib.error:
        raise ArtifactError(f"{path}: not a zlib-compressed artifact (truncated or corrupted)") from None
    try:
        with warnings.catch_warnings():  # torch warns about some pickle protocols before refusing them itself
            warnings.simplefilter("ignore")
            blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # weights-only unpickling refuses anything but tensors and plain data
        why = next((ln.strip() for ln in str(e).splitlines() if "nsupported" in ln), str(e).splitlines()[0] if str(e) else "")
        raise ArtifactError(f"{path}: refused by weights-only loading ({type(e).__name__}: {why[:160]})") from None
    if not isinstance(blob, dict) or blob.get("meta", {}).get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path}: not an artifact of format {ARTIFACT_FORMAT}")
    return dequantize_state_dict(blob), blob["meta"]


def check_artifact_config(path, meta: dict, config: dict, model: nn.Module) -> None:
    """Refuse an artifact built with another configuration, or whose regenerated matrices come
    out different here (another BASE_SEED or BASE_INIT, or a generator that changed)."""
    theirs = meta.get("config", {})
    diff = [k for k in dict.fromkeys([*config, *theirs]) if theirs.get(k) != config.get(k)]
    if diff:
        k = diff[0]
        raise ArtifactError(f"{path}: built with {k.upper()}={theirs.get(k)!r}, this run has {k.upper()}={config.get(k)!r}"
                            + (f" (and {len(diff) - 1} more differences)" if len(diff) > 1 else ""))
    ours, recorded = regenerated_checksums(model), meta.get("regenerated", {})
    bad = [k for k in sorted(set(ours) | set(recorded)) if ours.get(k) != recorded.get(k)]
    if bad:
        raise ArtifactError(f"{path}: {len(bad)} regenerated matrices differ from the artifact's checksums (first: {bad[0]}); "
                            f"the artifact was made with torch {meta.get('torch_version')}, this is torch {torch.__version__}")


def model_from_artifact(path, expect: dict | None = None, var: str = "ARTIFACT") -> tuple[nn.Module, dict]:
    """Rebuild the model an artifact describes (its regenerated matrices checked against the
    recorded checksums) and load its weights; `expect` is a configuration it must match."""
    state, meta = read_artifact(path, var=var)
    path = f"{var}={path}"
    config = meta.get("config")
    try:
        model = build_model(SimpleNamespace(**config))
    except (TypeError, AttributeError, KeyError) as e:
        raise ArtifactError(f"{path}: its configuration cannot build a model ({type(e).__name__}: {e})") from None
    check_artifact_config(path, meta, config if expect is None else expect, model)
    model.load_state_dict(state, strict=True)
    return model, meta


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp*"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -----------------------------------------------------------------------------
# DATA (challenge shards: 256 int32 header, then uint16 tokens)
# -----------------------------------------------------------------------------

SHARD_MAGIC, SHARD_VERSION, HEADER_INTS = 20240520, 1, 256


class DataError(ConfigError):
    """A shard, split or tokenizer that cannot be used."""


def check_shard_header(path: str) -> int:
    """The token count of a shard whose header (magic, version) and size agree; else a DataError."""
    size = os.path.getsize(path)
    if size < HEADER_INTS * 4:
        raise DataError(f"{path}: {size} bytes, shorter than the {HEADER_INTS * 4}-byte shard header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != SHARD_MAGIC:
        raise DataError(f"{path}: magic {header[0]}, expected {SHARD_MAGIC} (not a challenge shard)")
    if header[1] != SHARD_VERSION:
        raise DataError(f"{path}: version {header[1]}, expected {SHARD_VERSION}")
    count = int(header[2])
    if count < 0 or size != HEADER_INTS * 4 + 2 * count:
        raise DataError(f"{path}: header says {count} tokens ({HEADER_INTS * 4 + 2 * count} bytes) but the file has {size} bytes")
    return count


def load_data_shard(path: str, vocab_size: int | None = None) -> np.ndarray:
    count = check_shard_header(path)
    tokens = np.fromfile(path, dtype="<u2", count=count, offset=HEADER_INTS * 4)
    if vocab_size is not None and count and int(tokens.max()) >= vocab_size:
        raise DataError(f"{path}: token id {int(tokens.max())} is not below VOCAB_SIZE={vocab_size}")
    return tokens


def split_files(data_path: str, split: str) -> list[str]:
    pattern = os.path.join(data_path, f"*_{split}_*.bin")
    files = sorted(glob.glob(pattern))
    if not files:
        raise DataError(f"DATA_PATH={data_path}: no {split} shards match {pattern}; fetch FineWeb with "
                        "`python3 data/cached_challenge_fineweb.py --variant sp1024` or build the embedded corpus with `bash run.sh data`")
    return files


def load_validation_tokens(data_path: str, seq_len: int, vocab_size: int) -> Tensor:
    tokens = np.concatenate([load_data_shard(f, vocab_size) for f in split_files(data_path, "val")])
    if tokens.size < seq_len + 1:
        raise DataError(f"DATA_PATH={data_path}: validation split has {tokens.size} tokens, fewer than TRAIN_SEQ_LEN+1={seq_len + 1}")
    return torch.from_numpy(tokens.astype(np.int32))


class TokenStream:
    """The training shards read in order as one endless stream (wrapping at the end)."""

    def __init__(self, data_path: str, vocab_size: int):
        self.files, self.vocab_size = split_files(data_path, "train"), vocab_size
        for f in self.files:  # every header now (cheap); each shard's token ids when it is read
            check_shard_header(f)
        self.file_index, self.pos = -1, 0
        self.tokens = np.zeros(0, dtype=np.uint16)

    def _next_file(self) -> None:
        for _ in range(len(self.files)):
            self.file_index = (self.file_index + 1) % len(self.files)
            self.tokens, self.pos = load_data_shard(self.files[self.file_index], self.vocab_size), 0
            if self.tokens.size:
                return
        raise DataError(f"{os.path.dirname(self.files[0])}: every train shard is empty")

    def seek(self, file_index: int, pos: int) -> None:
        """Continue from a position saved in a checkpoint."""
        self.file_index = file_index
        self.tokens, self.pos = load_data_shard(self.files[file_index], self.vocab_size), pos

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            if self.pos >= self.tokens.size:
                self._next_file()
            k = min(n, self.tokens.size - self.pos)
            parts.append(self.tokens[self.pos:self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(parts)


class DistributedTokenLoader:
    """Each micro-step takes one contiguous chunk for all ranks from the stream; rank r
    uses the r-th slice, so any world size sees the same tokens in the same order."""

    def __init__(self, data_path: str, vocab_size: int, rank: int, world_size: int, device):
        self.stream, self.rank, self.world_size, self.device = TokenStream(data_path, vocab_size), rank, world_size, device

    def next_batch(self, local_tokens: int, seq_len: int) -> tuple[Tensor, Tensor]:
        span = local_tokens + 1
        chunk = self.stream.take(span * self.world_size)[self.rank * span:(self.rank + 1) * span]
        t = torch.from_numpy(chunk.astype(np.int64)).to(self.device, non_blocking=True)
        return t[:-1].reshape(-1, seq_len), t[1:].reshape(-1, seq_len)


# -----------------------------------------------------------------------------
# MODEL
# -----------------------------------------------------------------------------


def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


# Regenerated random matrices. A projection's random base R is rebuilt from a seed wherever
# the model is built, so it costs no artifact bytes. Its bits must be the same on every
# processor and device (FACTS.md pitfalls): it is made from integer hashing of (seed, stream,
# index) in int64 arithmetic that never overflows, then only exactly-rounded float operations
# (int -> float of exactly representable values, one multiply by a constant, + - * / in
# float64 for the orthogonal rotations). No torch generator, no log/cos, no reduction, and the
# values of element i do not depend on the tensor's shape.

MASK32 = 0xFFFFFFFF


def mul32(x, c: int):
    """(x * c) mod 2^32 for 0 <= x < 2^32, through 16-bit halves of c so int64 never overflows."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & MASK32


def mix32(x):
    """murmur3's 32-bit finalizer: a bijection on 0..2^32-1 (Python ints or int64 tensors)."""
    x = x ^ (x >> 16)
    x = mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def hash_stream(seed: int, stream: int, n: int, start: int = 0) -> Tensor:
    """Distinct 32-bit hashes (int64) of element indices start..n-1 under (seed, stream)."""
    key = mix32(mix32(seed & MASK32) ^ mix32(mul32(stream + 1, 0x9E3779B9)))
    return mix32(mul32(torch.arange(start, n, dtype=torch.int64), 0x9E3779B1) ^ key)


def projection_seed(base_seed: int, layer: int, name: str) -> int:
    """seed = mix32(mix32(mix32(BASE_SEED) ^ layer) ^ k), k = 1..6 for q, k, v, o, fc, proj."""
    return mix32(mix32(mix32(base_seed & MASK32) ^ layer) ^ (PROJECTIONS.index(name) + 1))


def symmetric_unit(h: Tensor) -> Tensor:
    """Top 23 bits of a hash as an exact float32 in (-1, 1): (2u + 1 - 2^23) / 2^23."""
    return ((h >> 9) * 2 + 1 - 2**23).to(torch.float32) * 2.0**-23


def random_matrix(out_features: int, in_features: int, seed: int, init: str) -> Tensor:
    """An (out, in) float32 CPU matrix, bit-identical everywhere for the same arguments.
    gaussian: N(0, 1/in) approximated by the sum of twelve uniform bytes (Irwin-Hall, exact in
    float32, steps of 1/256 of a standard deviation, tails cut at 6); uniform: Xavier, U(+-sqrt(6 / (in + out))); rademacher: +-1/sqrt(in);
    orthogonal: orthonormal rows or columns, from 3 log2(n) layers of seeded Givens rotations
    between random pairs of rows, each rotation c = (1 - t^2) / (1 + t^2), s = 2t / (1 + t^2)."""
    n = out_features * in_features
    if init == "gaussian":  # in chunks that stay in cache; element i never depends on the chunking
        w = torch.empty(n, dtype=torch.float32)
        for lo in range(0, n, 1 << 16):
            hi = min(lo + (1 << 16), n)
            total = sum((h & 255) + ((h >> 8) & 255) + ((h >> 16) & 255) + (h >> 24) for h in (hash_stream(seed, i, hi, lo) for i in range(3)))
            w[lo:hi] = (total - 1530).to(torch.float32) * 2.0**-8  # twelve bytes: mean 1530, std 256
        w *= torch.tensor(in_features**-0.5, dtype=torch.float32)
    elif init == "uniform":
        w = symmetric_unit(hash_stream(seed, 0, n)) * torch.tensor(math.sqrt(6.0 / (in_features + out_features)), dtype=torch.float32)
    elif init == "rademacher":
        w = ((hash_stream(seed, 0, n) & 1) * 2 - 1).to(torch.float32) * torch.tensor(in_features**-0.5, dtype=torch.float32)
    else:
        size, keep = max(out_features, in_features), min(out_features, in_features)
        m = torch.eye(size, dtype=torch.float64)[:, :keep].contiguous()  # the first `keep` columns of the product
        pairs = size // 2
        for layer in range(3 * max(1, math.ceil(math.log2(size)))):
            order = torch.argsort(hash_stream(seed, 2 * layer, size))  # distinct keys: one order on every machine
            a, b = order[0:2 * pairs:2], order[1:2 * pairs:2]
            t = symmetric_unit(hash_stream(seed, 2 * layer + 1, pairs)).to(torch.float64)[:, None]
            c, s = (1 - t * t) / (1 + t * t), 2 * t / (1 + t * t)
            ra, rb = m[a], m[b]
            m[a], m[b] = c * ra - s * rb, s * ra + c * rb
        w = m.to(torch.float32)
        return (w if out_features >= in_features else w.T).contiguous()
    return w.view(out_features, in_features)


class CastedLinear(nn.Linear):
    """A dense learned projection without bias; fp32 master weight, computed in the
    autocast dtype."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        if zero_init:
            nn.init.zeros_(self.weight)


class FrozenFC(nn.Module):
    """The random base R alone, never trained (selective freeze): stored nowhere, rebuilt
    from its seed. Subclasses add what they learn on top of R."""

    def __init__(self, in_features: int, out_features: int, seed: int, init: str):
        super().__init__()
        self.seed, self.init = seed, init
        self.register_buffer("base", random_matrix(out_features, in_features, seed, init), persistent=False)

    def effective_weight(self) -> Tensor:
        return self.base

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight())


class RandomLinearWithAdapter(FrozenFC):
    """R + B A with a learned rank-r update; B starts at zero, so training starts from R. B A is
    folded into R before the one matrix multiply (its backward adds two thin multiplies)."""

    def __init__(self, in_features: int, out_features: int, seed: int, init: str, rank: int):
        super().__init__(in_features, out_features, seed, init)
        self.A = nn.Parameter(torch.empty(rank, in_features))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(out_features, rank))

    def effective_weight(self) -> Tensor:
        return torch.addmm(self.base, self.B, self.A)


class MaskedRandomLinear(FrozenFC):
    """Supermask: R times a learned binary mask (scores > 0) and a learned scale. The scores
    learn through a straight-through estimator: the forward uses the hard mask, the backward
    the gradient of sigmoid(scores / temperature); the temperature is a buffer updated in
    place by the training loop, so a compiled graph reads its current value."""

    def __init__(self, in_features: int, out_features: int, seed: int, init: str, init_score: float):
        super().__init__(in_features, out_features, seed, init)
        self.scores = nn.Parameter(torch.full((out_features, in_features), float(init_score)))
        self.mask_scale = nn.Parameter(torch.ones(()))
        self.register_buffer("temperature", torch.ones(()), persistent=False)

    def effective_weight(self) -> Tensor:
        soft = torch.sigmoid(self.scores / self.temperature)
        mask = (self.scores > 0).to(soft.dtype) + (soft - soft.detach())
        return self.base * mask * self.mask_scale


class LowRankLinear(nn.Module):
    """A learned B A with no base, trained from scratch (low-rank substitution): two thin
    multiplies. B starts at zero where the dense projection would (o, proj, corrections)."""

    def __init__(self, in_features: int, out_features: int, rank: int, zero_init: bool):
        super().__init__()
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        if not zero_init:
            nn.init.kaiming_uniform_(self.B, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.linear(x, self.A), self.B)


def make_projection(cfg, layer: int, name: str, in_features: int, out_features: int) -> nn.Module:
    """The one place that builds a block projection (attention q, k, v, o; MLP fc, proj; the
    frozen MLP's correction 'corr'). A projection in FREEZE_TARGETS becomes what FREEZE_MODE
    says; the others stay dense and learned. o and proj start at zero as in the baseline."""
    if name == "corr":
        return LowRankLinear(in_features, out_features, cfg.frozen_correction_rank, zero_init=True)
    mode = cfg.freeze_mode if name in cfg.targets else "none"
    seed = projection_seed(cfg.base_seed, layer, name)
    if mode == "adapter":
        return RandomLinearWithAdapter(in_features, out_features, seed, cfg.base_init, cfg.ranks[layer])
    if mode == "frozen":
        return FrozenFC(in_features, out_features, seed, cfg.base_init)
    if mode == "lowrank":
        return LowRankLinear(in_features, out_features, cfg.ranks[layer], zero_init=name in ("o", "proj"))
    if mode == "mask":
        return MaskedRandomLinear(in_features, out_features, seed, cfg.base_init, cfg.mask_init_score)
    return CastedLinear(in_features, out_features, zero_init=name in ("o", "proj"))


def regenerated_checksums(model: nn.Module) -> dict[str, str]:
    """sha256 of every regenerated base, keyed by module name (recorded in the artifact)."""
    return {name: hashlib.sha256(m.base.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for name, m in model.named_modules() if isinstance(m, FrozenFC)}


class Rotary(nn.Module):
    """RoPE tables built once at construction (never inside inference mode, see FACTS.md),
    as buffers that are not saved."""

    def __init__(self, head_dim: int, max_len: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos()[None, None], persistent=False)
        self.register_buffer("sin", angles.sin()[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        t, half = x.size(-2), x.size(-1) // 2
        cos, sin = self.cos[..., :t, :].to(x.dtype), self.sin[..., :t, :].to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        dim, self.num_heads, self.num_kv_heads = cfg.model_dim, cfg.num_heads, cfg.num_kv_heads
        self.head_dim = dim // self.num_heads
        kv_dim = self.num_kv_heads * self.head_dim
        self.q = make_projection(cfg, layer, "q", dim, dim)
        self.k = make_projection(cfg, layer, "k", dim, kv_dim)
        self.v = make_projection(cfg, layer, "v", dim, kv_dim)
        self.o = make_projection(cfg, layer, "o", dim, dim)
        self.q_gain = nn.Parameter(torch.full((self.num_heads,), float(cfg.qk_gain_init)))
        self.rotary = Rotary(self.head_dim, cfg.train_seq_len, cfg.rope_base)

    def forward(self, x: Tensor) -> Tensor:
        b, t, dim = x.shape
        q = self.q(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rotary(rms_norm(q).to(v.dtype)), self.rotary(rms_norm(k).to(v.dtype))
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads)
        return self.o(y.transpose(1, 2).reshape(b, t, dim))


class MLP(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        self.fc = make_projection(cfg, layer, "fc", cfg.model_dim, cfg.mlp_hidden)
        self.proj = make_projection(cfg, layer, "proj", cfg.mlp_hidden, cfg.model_dim)
        self.corr = make_projection(cfg, layer, "corr", cfg.model_dim, cfg.model_dim) if cfg.frozen_correction_rank else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.proj(torch.relu(self.fc(x)).square())
        return out if self.corr is None else out + self.corr(x)


class Block(nn.Module):
    def __init__(self, cfg, layer: int):
        super().__init__()
        dim = cfg.model_dim
        self.attn, self.mlp = CausalSelfAttention(cfg, layer), MLP(cfg, layer)
        self.attn_scale = nn.Parameter(torch.ones(dim))
        self.mlp_scale = nn.Parameter(torch.ones(dim))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))))

    def forward(self, x: Tensor, x0: Tensor) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x))
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x))


def bigram_buckets(input_ids: Tensor, buckets: int) -> Tensor:
    """Bucket of each position's (previous, current) token pair: mix32(prev * 65536 + cur) mod
    buckets. The first position of a window has no previous token; it takes id 0 (pad, never
    in the data), in training and evaluation alike."""
    prev = F.pad(input_ids[:, :-1], (1, 0))
    return mix32(prev * 65536 + input_ids) % buckets


class GPT(nn.Module):
    """The baseline: blocks in a U shape (the first half's outputs are added back to the
    second half in reverse order through learned per-channel skip weights)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self.bigram = nn.Embedding(cfg.bigram_buckets, cfg.bigram_dim) if cfg.bigram_buckets else None
        self.bigram_proj = CastedLinear(cfg.bigram_dim, cfg.model_dim, zero_init=True) if cfg.bigram_buckets else None
        self.num_encoder = cfg.num_layers // 2
        self.skip_weights = nn.Parameter(torch.ones(min(self.num_encoder, cfg.num_layers - self.num_encoder), cfg.model_dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(cfg.model_dim, cfg.vocab_size, zero_init=True)

    def logits(self, input_ids: Tensor) -> Tensor:
        x = self.tok_emb(input_ids)
        if self.bigram is not None:
            x = x + self.bigram_proj(self.bigram(bigram_buckets(input_ids, self.cfg.bigram_buckets)))
        x = x0 = rms_norm(x)
        skips = []
        for i, block in enumerate(self.blocks):
            j = i - self.num_encoder
            if 0 <= j < self.skip_weights.size(0) and skips:
                x = x + self.skip_weights[j].to(x.dtype) * skips.pop()
            x = block(x, x0)
            if i < self.num_encoder:
                skips.append(x)
        x = rms_norm(x)
        logits = F.linear(x, self.tok_emb.weight if self.lm_head is None else self.lm_head.weight).float()
        return self.cfg.logit_softcap * torch.tanh(logits / self.cfg.logit_softcap)

    def forward(self, input_ids: Tensor, target_ids: Tensor, teacher_logits: Tensor | None = None,
                alpha: float = 0.0, temp: float = 1.0) -> Tensor:
        """Per-token loss in nats, shape of target_ids, fp32: the cross-entropy, mixed with
        alpha T^2 KL(teacher_T || student_T) when teacher logits are given (distillation)."""
        logits = self.logits(input_ids)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_ids.reshape(-1), reduction="none").view_as(target_ids)
        if teacher_logits is None:
            return nll
        teacher = F.log_softmax(teacher_logits / temp, dim=-1)
        kl = (teacher.exp() * (teacher - F.log_softmax(logits / temp, dim=-1))).sum(-1)
        return (1.0 - alpha) * nll + alpha * temp * temp * kl


class Ensemble(nn.Module):
    """NUM_MODELS members trained side by side on the same batches (the loss is their mean);
    evaluation scores the average of their probabilities. Member i regenerates its random
    matrices from BASE_SEED + i."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(GPT(SimpleNamespace(**{**vars(cfg), "base_seed": cfg.base_seed + i})) for i in range(cfg.num_models))

    def logits(self, input_ids: Tensor) -> Tensor:
        """Log of the mean probability: usable as logits (a teacher's, say)."""
        logp = torch.stack([F.log_softmax(m.logits(input_ids), dim=-1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))

    def forward(self, input_ids: Tensor, target_ids: Tensor, teacher_logits: Tensor | None = None,
                alpha: float = 0.0, temp: float = 1.0) -> Tensor:
        losses = torch.stack([m(input_ids, target_ids, teacher_logits, alpha, temp) for m in self.members])
        if self.training:
            return losses.mean(0)
        return -(torch.logsumexp(-losses, dim=0) - math.log(len(self.members)))  # -log mean p(target)


def build_model(cfg) -> nn.Module:
    return Ensemble(cfg) if cfg.num_models > 1 else GPT(cfg)


def build_optimizers(model: nn.Module, args, compile_muon: bool = False) -> list[torch.optim.Optimizer]:
    """Muon for 2-D matrices (block projections, adapters, low-rank factors, the bigram
    projection); Adam for the embeddings and head (with ADAM_WD), for every vector or scalar
    (control tensors, mask scales) and, at MASK_LR, for the mask scores."""
    groups = {"embed": [], "head": [], "scalar": [], "mask": [], "muon": []}
    for name, p in model.named_parameters():
        leaf = name.split(".")[-2] if name.endswith(".weight") else name.split(".")[-1]
        if leaf in ("tok_emb", "bigram"):
            groups["embed"].append(p)
        elif leaf == "lm_head":
            groups["head"].append(p)
        elif leaf == "scores":
            groups["mask"].append(p)
        elif p.ndim < 2 or any(c in name for c in CONTROL_TENSOR_NAMES):
            groups["scalar"].append(p)
        else:
            groups["muon"].append(p)
    tied = args.tie_embeddings
    adam_groups = [dict(params=groups["embed"], lr=args.tied_embed_lr if tied else args.embed_lr, weight_decay=args.adam_wd),
                   dict(params=groups["head"], lr=args.head_lr, weight_decay=args.adam_wd),
                   dict(params=groups["scalar"], lr=args.scalar_lr, weight_decay=0.0),
                   dict(params=groups["mask"], lr=args.mask_lr, weight_decay=0.0)]
    adam = torch.optim.AdamW([g for g in adam_groups if g["params"]], betas=(args.beta1, args.beta2), eps=args.adam_eps,
                             fused=next(model.parameters()).is_cuda)
    optimizers = [adam]
    if groups["muon"]:
        optimizers.append(Muon(groups["muon"], lr=args.matrix_lr, momentum=args.muon_momentum,
                               backend_steps=args.muon_backend_steps, weight_decay=args.muon_wd,
                               orthogonalize=torch.compile(newton_schulz_orthogonalize) if compile_muon else newton_schulz_orthogonalize))
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


class EMA:
    """Exponential moving average of the parameters: a copy at step EMA_START_STEP, then
    avg = decay * avg + (1 - decay) * p after every step."""

    def __init__(self, decay: float, start_step: int):
        self.decay, self.start_step, self.avg = decay, start_step, None

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if self.decay <= 0 or step < self.start_step:
            return
        if self.avg is None:
            self.avg = {name: p.detach().clone() for name, p in model.named_parameters()}
        else:
            torch._foreach_lerp_(list(self.avg.values()), [p.detach() for p in model.parameters()], 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            p.copy_(self.avg[name])


def freeze_parameters(optimizers: list[torch.optim.Optimizer], params: list[nn.Parameter]) -> None:
    """Progressive freeze: the parameters leave their optimizer and their state is dropped.
    This happens outside any compiled graph, so it cannot be constant-folded away."""
    frozen = {id(p) for p in params}
    for opt in optimizers:
        for group in opt.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in frozen]
        for p in params:
            opt.state.pop(p, None)


# -----------------------------------------------------------------------------
# TRAINING
# -----------------------------------------------------------------------------


def lr_multiplier(args, step: int, elapsed_ms: float) -> float:
    """Linear warmdown to 0 over the last WARMDOWN_ITERS steps; under a wallclock cap the
    steps are counted in time, from the average step time so far."""
    if args.warmdown_iters <= 0:
        return 1.0
    if args.max_wallclock_seconds <= 0:
        start = max(args.iterations - args.warmdown_iters, 0)
        return max((args.iterations - step) / args.warmdown_iters, 0.0) if step >= start else 1.0
    warmdown_ms = args.warmdown_iters * elapsed_ms / max(step, 1)
    remaining_ms = max(1000.0 * args.max_wallclock_seconds - elapsed_ms, 0.0)
    return remaining_ms / max(warmdown_ms, 1e-9) if remaining_ms <= warmdown_ms else 1.0


class Logger:
    """Rank 0 prints and appends to logs/<RUN_ID>.txt, which starts with this file's source."""

    def __init__(self, run_id: str, rank: int, code: str):
        self.path = Path("logs") / f"{run_id}.txt" if rank == 0 else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(code + "\n" + "=" * 100 + "\n", encoding="utf-8")

    def __call__(self, msg: str, console: bool = True) -> None:
        if self.path:
            if console:
                print(msg, flush=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(msg + "\n")


def setup_runtime(args) -> SimpleNamespace:
    """Processes (torchrun's RANK / WORLD_SIZE / LOCAL_RANK), device, autocast, compile."""
    world_size, rank, local_rank = (int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0")))
    args.check_world(world_size)
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda and local_rank >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK={local_rank}: only {torch.cuda.device_count()} GPU(s) visible; start at most that many "
                          "processes per node, or hide the GPUs (CUDA_VISIBLE_DEVICES=) to run on CPU")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=device if use_cuda else None)
    return SimpleNamespace(world_size=world_size, rank=rank, local_rank=local_rank, use_cuda=use_cuda, device=device,
                           distributed=world_size > 1, compile=args.compile == "1" or (args.compile == "auto" and use_cuda),
                           autocast=torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda else torch.autocast("cpu", enabled=False))


def load_eval_data(data_path: str, tokenizer_path: str, vocab_size: int, seq_len: int, device) -> tuple[Tensor, tuple, str]:
    """Validation tokens, byte tables and the tokenizer's sha256, checked before any model."""
    if not os.path.isfile(tokenizer_path):
        raise DataError(f"TOKENIZER_PATH={tokenizer_path}: no such file; build or fetch the data first (`bash run.sh data`)")
    try:
        sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
    except Exception:
        raise DataError(f"TOKENIZER_PATH={tokenizer_path}: not a SentencePiece model") from None
    if sp.vocab_size() != vocab_size:
        raise DataError(f"TOKENIZER_PATH={tokenizer_path}: vocabulary of {sp.vocab_size()} tokens, but VOCAB_SIZE={vocab_size}")
    val_tokens = load_validation_tokens(data_path, seq_len, vocab_size)
    return val_tokens, build_byte_luts(sp, vocab_size, device), hashlib.sha256(Path(tokenizer_path).read_bytes()).hexdigest()


def final_evaluation(log, run_eval, stride: int, prefix: str = "final_int8_zlib_roundtrip") -> float:
    """The house's final lines (plain), then the sliding-window ones when a stride is set, then
    the whole evaluation's time (the challenge caps it at 600 s)."""
    t_start = t0 = time.perf_counter()
    val_loss, val_bpb, _ = run_eval(None)
    log(f"{prefix} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} eval_time:{1000.0 * (time.perf_counter() - t0):.0f}ms")
    log(f"{prefix}_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")
    if stride > 0:
        t0 = time.perf_counter()
        loss, bpb, scored = run_eval(stride)
        log(f"{prefix}_sliding val_loss:{loss:.4f} val_bpb:{bpb:.4f} stride:{stride} eval_time:{1000.0 * (time.perf_counter() - t0):.0f}ms")
        log(f"{prefix}_sliding_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f} scored_tokens:{scored}")
    log(f"total_eval_time:{1000.0 * (time.perf_counter() - t_start):.0f}ms")
    return val_bpb


def make_run_eval(model_fwd, val_tokens, luts, rt, seq_len: int, plain_batch: int, sliding_batch: int):
    """evaluate() bound to this run: stride None = plain evaluation."""
    def run_eval(stride: int | None, model=None) -> tuple[float, float, int]:
        m = model or model_fwd
        training = m.training
        m.eval()
        result = evaluate(m, val_tokens, seq_len, stride or seq_len, sliding_batch if stride else plain_batch, luts,
                          rt.rank, rt.world_size, rt.device, rt.autocast)
        m.train(training)
        return result
    return run_eval


def eval_only(args, rt, log) -> int:
    """EVAL_ONLY=1: the model, the data paths and the evaluation settings all come from the
    artifact; a variable set in the environment overrides a setting, but a model variable
    that disagrees with the artifact (BASE_SEED, say) is refused."""
    _, meta = read_artifact(args.artifact)
    stored = meta.get("config", {})
    overrides = {k: getattr(args, k) for k in stored if os.environ.get(k.upper()) and hasattr(args, k)}
    model, meta = model_from_artifact(args.artifact, expect={**stored, **overrides})
    ev = meta.get("eval", {})
    pick = lambda name, default: getattr(args, name.lower()) if os.environ.get(name) else ev.get(name.lower(), default)
    data_path, tokenizer_path = pick("DATA_PATH", args.data_path), pick("TOKENIZER_PATH", args.tokenizer_path)
    val_tokens, luts, tok_sha = load_eval_data(data_path, tokenizer_path, stored["vocab_size"], stored["train_seq_len"], rt.device)
    if ev.get("tokenizer_sha256") and tok_sha != ev["tokenizer_sha256"]:
        raise ArtifactError(f"TOKENIZER_PATH={tokenizer_path}: not the tokenizer the artifact {args.artifact} was evaluated with (sha256 differs)")
    model = model.to(rt.device)
    fwd = torch.compile(model, dynamic=False, fullgraph=True, backend=args.compile_backend) if rt.compile else model
    log(f"eval_only artifact:{args.artifact} bytes:{os.path.getsize(args.artifact)} data_path:{data_path}")
    log(f"model_params:{sum(p.numel() for p in model.parameters())}")
    seq = stored["train_seq_len"]
    plain = max(1, pick("VAL_BATCH_SIZE", args.val_batch_size) // (rt.world_size * seq))
    run_eval = make_run_eval(fwd, val_tokens, luts, rt, seq, plain, pick("EVAL_BATCH_SEQS", 0) or plain)
    final_evaluation(log, run_eval, pick("EVAL_STRIDE", 0))
    return 0


CHECKPOINT_FORMAT = "rlm_checkpoint_v1"


def checkpoint_config(args) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint."""
    return dict(args.model_config(), train_batch_tokens=args.train_batch_tokens, ema=args.ema_decay > 0)


def save_checkpoint(path: str, args, model, optimizers, ema, stream, step: int, training_ms: float, frozen: bool) -> None:
    state = {"format": CHECKPOINT_FORMAT, "config": checkpoint_config(args), "model": model.state_dict(),
             "optimizers": [opt.state_dict() for opt in optimizers], "ema": ema, "data": [stream.file_index, stream.pos],
             "step": step, "training_ms": training_ms, "frozen": frozen,
             "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                     "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)), "numpy_pos": int(np.random.get_state()[2])}}
    buf = io.BytesIO()
    torch.save(state, buf)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), buf.getvalue())


def load_checkpoint(path: str, args) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"RESUME={path}: no such checkpoint") from None
    except Exception as e:
        raise ConfigError(f"RESUME={path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"RESUME={path}: not a checkpoint of format {CHECKPOINT_FORMAT}")
    ours, theirs = checkpoint_config(args), state["config"]
    diff = [k for k in dict.fromkeys([*ours, *theirs]) if ours.get(k) != theirs.get(k)]
    if diff:
        raise ConfigError(f"RESUME={path}: written with {diff[0].upper()}={theirs.get(diff[0])!r}, this run has {ours.get(diff[0])!r}"
                          + (f" (and {len(diff) - 1} more differences)" if len(diff) > 1 else ""))
    random.setstate((3, tuple(state["rng"]["python"]), None))
    np.random.set_state(("MT19937", state["rng"]["numpy"].numpy().astype(np.uint32), state["rng"]["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["rng"]["torch"])
    return state


def main() -> int:
    code = Path(__file__).read_text(encoding="utf-8")
    args = Hyperparameters(os.environ)
    rt = setup_runtime(args)
    log = Logger(args.run_id, rt.rank, code)
    device_name = torch.cuda.get_device_name(rt.device) if rt.use_cuda else f"CPU ({os.cpu_count()} cores)"
    log(f"Running Python {sys.version.split()[0]}, PyTorch {torch.__version__}, device:{device_name}")
    log(f"pytorch_version:{torch.__version__} hardware:{rt.world_size}x{device_name}")  # read by records/tools.py
    log("env: " + " ".join(f"{name}={shlex.quote(os.environ[name])}" for name, *_ in ENV_VARS if os.environ.get(name)))
    if args.eval_only:
        return eval_only(args, rt, log)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device, distributed = rt.device, rt.distributed

    val_tokens, luts, tokenizer_sha = load_eval_data(args.data_path, args.tokenizer_path, args.vocab_size, args.train_seq_len, device)
    log(f"val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path={args.tokenizer_path}")
    train_loader = DistributedTokenLoader(args.data_path, args.vocab_size, rt.rank, rt.world_size, device)
    log(f"train_loader:dataset:{Path(args.data_path).name} train_shards:{len(train_loader.stream.files)}")
    log(f"val_loader:shards pattern={os.path.join(args.data_path, '*_val_*.bin')} tokens:{val_tokens.numel()}")
    teacher = None
    if args.distill_teacher:
        with torch.random.fork_rng(devices=[]):  # building the teacher must not move the student's initialisation
            teacher, tmeta = model_from_artifact(args.distill_teacher, var="DISTILL_TEACHER")
        if tmeta["config"]["vocab_size"] != args.vocab_size:
            raise ConfigError(f"DISTILL_TEACHER={args.distill_teacher}: vocabulary {tmeta['config']['vocab_size']}"
                              f", this run has VOCAB_SIZE={args.vocab_size}")
        teacher = teacher.to(device).eval().requires_grad_(False)
        log(f"distill_teacher:{args.distill_teacher} teacher_params:{sum(p.numel() for p in teacher.parameters())}"
            f" alpha:{args.distill_alpha} temp:{args.distill_temp}")

    base_model = build_model(args).to(device)
    model_fwd = torch.compile(base_model, dynamic=False, fullgraph=True, backend=args.compile_backend) if rt.compile else base_model
    model = DDP(model_fwd, device_ids=[rt.local_rank] if rt.use_cuda else None, broadcast_buffers=False) if distributed else model_fwd
    members = list(base_model.members) if isinstance(base_model, Ensemble) else [base_model]
    optimizers = [opt for m in members for opt in build_optimizers(m, args, compile_muon=rt.compile)]
    log(f"model_params:{sum(p.numel() for p in base_model.parameters())}")
    log(f"frozen_params:{sum(m.base.numel() for m in base_model.modules() if isinstance(m, FrozenFC))}")
    log(f"freeze_mode:{args.freeze_mode} targets:{','.join(args.targets) or '-'} base_init:{args.base_init} base_seed:{args.base_seed}"
        + (f" ranks:{','.join(map(str, args.ranks))}" if args.freeze_mode in ("adapter", "lowrank") else "")
        + (f" correction_rank:{args.frozen_correction_rank}" if args.frozen_correction_rank else "")
        + (f" progressive_freeze_frac:{args.progressive_freeze_frac}" if args.progressive_freeze_frac else "")
        + (f" num_models:{args.num_models}" if args.num_models > 1 else "")
        + (f" bigram:{args.bigram_buckets}x{args.bigram_dim}" if args.bigram_buckets else ""))
    log(f"world_size:{rt.world_size} grad_accum_steps:{args.grad_accum_steps}")
    log(f"attention_mode:{'gqa' if args.num_kv_heads != args.num_heads else 'mha'} num_heads:{args.num_heads} num_kv_heads:{args.num_kv_heads}")
    log(f"tie_embeddings:{bool(args.tie_embeddings)} embed_lr:{args.tied_embed_lr if args.tie_embeddings else args.embed_lr} "
        f"head_lr:{0.0 if args.tie_embeddings else args.head_lr} matrix_lr:{args.matrix_lr} scalar_lr:{args.scalar_lr}")
    log(f"train_batch_tokens:{args.train_batch_tokens} train_seq_len:{args.train_seq_len} iterations:{args.iterations} "
        f"warmup_steps:{args.warmup_steps} max_wallclock_seconds:{args.max_wallclock_seconds:.3f} compile:{rt.compile}")
    log(f"seed:{args.seed}")

    local_tokens = args.train_batch_tokens // (rt.world_size * args.grad_accum_steps)
    plain_batch = max(1, args.val_batch_size // (rt.world_size * args.train_seq_len))
    run_eval = make_run_eval(model_fwd, val_tokens, luts, rt, args.train_seq_len, plain_batch, args.eval_batch_seqs or plain_batch)
    masked = [m for m in base_model.modules() if isinstance(m, MaskedRandomLinear)]
    progressive = [m.weight for n, m in base_model.named_modules() if ".blocks." in f".{n}" and n.split(".")[-1] in args.targets
                   and isinstance(m, CastedLinear)] if args.progressive_freeze_frac > 0 else []
    params = list(base_model.parameters())
    ema = EMA(args.ema_decay, args.ema_start_step)

    def run_progress(step: int, elapsed_ms: float) -> float:
        """Fraction of the run done: by wallclock under a cap, else by steps."""
        if args.max_wallclock_seconds > 0:
            return min(elapsed_ms / (1000.0 * args.max_wallclock_seconds), 1.0)
        return min(step / args.iterations, 1.0)

    def train_step(step: int, elapsed_ms: float) -> Tensor:
        mul = lr_multiplier(args, step, elapsed_ms)
        frac = min(step / args.muon_momentum_warmup_steps, 1.0) if args.muon_momentum_warmup_steps else 1.0
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * mul
                if isinstance(opt, Muon):
                    group["momentum"] = (1 - frac) * args.muon_momentum_warmup_start + frac * args.muon_momentum
        if masked:  # geometric annealing, written into the buffers the (compiled) forward reads
            temp = args.mask_temp_start * (args.mask_temp_end / args.mask_temp_start) ** run_progress(step, elapsed_ms)
            for m in masked:
                m.temperature.fill_(temp)
        loss_sum = torch.zeros((), device=device)
        for micro in range(args.grad_accum_steps):
            x, y = train_loader.next_batch(local_tokens, args.train_seq_len)
            if distributed:
                model.require_backward_grad_sync = micro == args.grad_accum_steps - 1
            with rt.autocast:
                if teacher is None:
                    loss = model(x, y).mean()
                else:
                    with torch.no_grad():
                        teacher_logits = teacher.logits(x)
                    loss = model(x, y, teacher_logits, args.distill_alpha, args.distill_temp).mean()
            loss_sum += loss.detach()
            (loss / args.grad_accum_steps).backward()
        if args.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip_norm)
        for opt in optimizers:
            opt.step()
        base_model.zero_grad(set_to_none=True)  # frozen parameters' gradients included
        loss_sum /= args.grad_accum_steps
        if distributed:  # one tiny all-reduce: every rank sees the same (mean) loss and stops together
            dist.all_reduce(loss_sum, op=dist.ReduceOp.SUM)
            loss_sum /= rt.world_size
        return loss_sum

    # Compile warmup: run a few real steps so compilation happens now, then roll back the
    # weights, optimizer state and data stream so the timed run starts from scratch.
    if args.warmup_steps > 0:
        initial_model = copy.deepcopy(base_model.state_dict())
        initial_opt = [copy.deepcopy(opt.state_dict()) for opt in optimizers]
        for i in range(args.warmup_steps):
            train_step(0, 0.0)
            log(f"warmup_step:{i + 1}/{args.warmup_steps}")
        base_model.load_state_dict(initial_model)
        for opt, state in zip(optimizers, initial_opt):
            opt.load_state_dict(state)
        train_loader = DistributedTokenLoader(args.data_path, args.vocab_size, rt.rank, rt.world_size, device)

    def sync() -> None:
        if rt.use_cuda:
            torch.cuda.synchronize()

    training_ms, step, stop_after = 0.0, 0, None
    if args.resume:
        ckpt = load_checkpoint(args.resume, args)
        if ckpt["frozen"]:
            freeze_parameters(optimizers, progressive)
            progressive = []
        base_model.load_state_dict(ckpt["model"])
        for opt, state in zip(optimizers, ckpt["optimizers"]):
            opt.load_state_dict(state)
        ema.avg = {k: v.to(device) for k, v in ckpt["ema"].items()} if ckpt["ema"] is not None else None
        train_loader.stream.seek(*ckpt["data"])
        step, training_ms = ckpt["step"], ckpt["training_ms"]
        log(f"resumed:{args.resume} step:{step} train_time:{training_ms:.0f}ms")
    def on_sigterm(signum, frame):  # a scheduler's stop (torchrun forwards it to every rank): say so, then exit
        log(f"stopping: SIGTERM at step:{step}/{args.iterations}; no artifact written")
        sys.exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    sync()
    t0 = time.perf_counter()
    while True:
        last_step = step == args.iterations or step == stop_after
        if last_step and ema.avg is not None:  # the artifact and the final evaluation use the averaged weights
            ema.copy_to(base_model)
            log(f"ema: final weights are the EMA (decay {args.ema_decay}, from step {args.ema_start_step})")
        if last_step or (args.val_loss_every > 0 and step % args.val_loss_every == 0):
            sync()
            training_ms += 1000.0 * (time.perf_counter() - t0)
            val_loss, val_bpb, _ = run_eval(None)
            log(f"step:{step}/{args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
                f"train_time:{training_ms:.0f}ms step_avg:{training_ms / max(step, 1):.2f}ms")
            sync()
            t0 = time.perf_counter()
        if last_step:
            break
        train_loss = train_step(step, training_ms + 1000.0 * (time.perf_counter() - t0)).item()
        step += 1
        ema.update(base_model, step)
        elapsed_ms = training_ms + 1000.0 * (time.perf_counter() - t0)
        if not math.isfinite(train_loss):
            log(f"stopping: non-finite train_loss:{train_loss} at step:{step}/{args.iterations}; no artifact written")
            return 3
        if step <= 10 or step % args.train_log_every == 0 or stop_after is not None:
            log(f"step:{step}/{args.iterations} train_loss:{train_loss:.4f} train_time:{elapsed_ms:.0f}ms step_avg:{elapsed_ms / step:.2f}ms")
        check_cap, check_freeze = stop_after is None and args.max_wallclock_seconds > 0, bool(progressive)
        if check_cap or check_freeze:
            flags = torch.tensor([check_cap and elapsed_ms >= 1000.0 * args.max_wallclock_seconds,
                                  check_freeze and run_progress(step, elapsed_ms) >= args.progressive_freeze_frac], device=device, dtype=torch.int32)
            if distributed:  # every rank stops, and freezes, at the same step
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            cap_reached, freeze_now = flags.tolist()
            if cap_reached:
                stop_after = step
                log(f"stopping_early: wallclock_cap train_time:{elapsed_ms:.0f}ms step:{step}/{args.iterations}")
            if freeze_now:
                freeze_parameters(optimizers, progressive)
                log(f"progressive_freeze: froze {len(progressive)} matrices ({','.join(args.targets)})"
                    f" after step:{step} train_time:{elapsed_ms:.0f}ms")
                progressive = []
        if args.checkpoint_every and step % args.checkpoint_every == 0 and step < args.iterations:
            if rt.rank == 0:
                save_checkpoint(args.checkpoint_path, args, base_model, optimizers, ema.avg, train_loader.stream, step, elapsed_ms,
                                args.progressive_freeze_frac > 0 and not progressive)
                log(f"checkpoint:{args.checkpoint_path} step:{step}")

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if rt.use_cuda:
        log(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")
    else:
        log(f"peak memory rss: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")

    # Artifact: the raw state dict, then int8 + zlib, read back and evaluated again.
    code_bytes = len(code.encode("utf-8"))
    artifact_path = Path(args.artifact)
    meta = {"config": args.model_config(), "torch_version": str(torch.__version__), "regenerated": regenerated_checksums(base_model),
            "eval": {"data_path": os.path.abspath(args.data_path), "tokenizer_path": os.path.abspath(args.tokenizer_path),
                     "tokenizer_sha256": tokenizer_sha, "val_batch_size": args.val_batch_size, "eval_stride": args.eval_stride,
                     "eval_batch_seqs": args.eval_batch_seqs}}
    state = {k: v.detach().clone() for k, v in base_model.state_dict().items()}  # kept: loading the round trip overwrites the weights
    if rt.rank == 0:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(Path("final_model.pt"), buf.getvalue())
        log(f"Serialized model: {buf.tell()} bytes")
        log(f"Code size: {code_bytes} bytes")
        log(f"Total submission size: {buf.tell() + code_bytes} bytes")
        nbytes, stats = write_artifact(artifact_path, state, meta, args.int6_blocks)
        log(f"Serialized model int8+zlib: {nbytes} bytes (payload:{stats['payload_bytes']} raw_torch:{stats['raw_torch_bytes']} "
            f"payload_ratio:{stats['float_bytes'] / max(stats['payload_bytes'], 1):.2f}x)")
        log(f"Total submission size int8+zlib: {nbytes + code_bytes} bytes")
        if nbytes + code_bytes > 16_000_000:
            log(f"warning: Total submission size {nbytes + code_bytes} bytes is over the challenge's 16000000-byte cap")
        log(f"artifact_storage {storage_summary(stats)}")
    if distributed:
        dist.barrier()
    loaded, _ = model_from_artifact(artifact_path, expect=args.model_config())
    base_model.load_state_dict(loaded.state_dict(), strict=True)
    bpb = final_evaluation(log, run_eval, args.eval_stride)
    for i, member in enumerate(members if len(members) > 1 else []):
        loss_i, bpb_i, _ = run_eval(None, member)
        log(f"ensemble_member:{i} val_loss:{loss_i:.4f} val_bpb:{bpb_i:.4f} (ensemble {bpb:.4f})")
    if args.int6_blocks:  # what int6 saved and cost, against the same weights all in int8
        int8_data, _ = artifact_bytes(state, meta)
        base_model.load_state_dict(read_artifact(artifact_path, int8_data)[0], strict=True)
        _, bpb8, _ = run_eval(None)
        log(f"int6_layers:{','.join(map(str, args.int6_blocks))} bytes_saved:{len(int8_data) - os.path.getsize(artifact_path)} "
            f"(all-int8 artifact {len(int8_data)} bytes) val_bpb_cost:{bpb - bpb8:+.4f} (all-int8 round trip {bpb8:.4f})")
    return 0


def leave_process_group(clean: bool) -> None:
    """Every exit, training or EVAL_ONLY, ends here. After a clean finish the ranks leave
    together: a gloo rank that exits while a peer still talks to it aborts the whole launch
    ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def cli(argv: list[str]) -> int:
    if argv == ["--env-help"]:
        print(env_help())
        return 0
    try:
        status = main()
    except ConfigError as e:  # bad input: one line that names it, no traceback
        print(f"error: {e}", file=sys.stderr, flush=True)
        status = 2
    leave_process_group(clean=status == 0)
    return status


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
