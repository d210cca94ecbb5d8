"""The CUDA path: bf16 autocast, torch.compile(fullgraph=True) with inductor, regenerated
bases on the GPU, and real train_gpt.py processes on the GPU whose artifacts are evaluated
again on CPU. Every test here is skipped where no CUDA device is visible (CI, laptops); run
them on a GPU box with `bash run.sh test tests/test_cuda.py`."""

import json
import math
import re
import subprocess
import sys
import warnings

import pytest
import sentencepiece as spm
import torch

from conftest import SCRIPT, TINY_MODEL, clean_env, field, log_lines, run_train
from test_faults import blow_up_after_a_checkpoint
from test_random_maps import GOLDEN, INITS, sha
from train_gpt import (GPT, DistributedTokenLoader, FrozenFC, Hyperparameters, bigram_buckets, build_optimizers, evaluate, load_validation_tokens,
                       newton_schulz_orthogonalize, random_matrix, regenerated_checksums, target_bytes)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")]

# (label, FREEZE_MODE and its settings): every mode, and frozen on every projection with a correction
MODES = [("dense", {}), ("adapter", {"FREEZE_MODE": "adapter", "LORA_RANK": "8"}), ("frozen_fc", {"FREEZE_MODE": "frozen"}),
         ("frozen_all_corr", {"FREEZE_MODE": "frozen", "FREEZE_TARGETS": "all", "FROZEN_CORRECTION_RANK": "4"}),
         ("lowrank", {"FREEZE_MODE": "lowrank", "LORA_RANK": "8"}), ("mask", {"FREEZE_MODE": "mask", "BASE_INIT": "rademacher"})]


def small_model(env: dict, seed: int = 0) -> tuple[GPT, Hyperparameters]:
    cfg = Hyperparameters({"VOCAB_SIZE": "1024", "NUM_LAYERS": "2", "MODEL_DIM": "128", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
                           "TRAIN_SEQ_LEN": "64", **env})
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():  # off the zero-initialised projections, so every parameter gets a gradient
        for name, p in model.named_parameters():
            if not name.endswith(".scores"):
                p.add_(0.02 * torch.randn_like(p))
    return model, cfg


@pytest.mark.parametrize("init", INITS)
def test_regenerated_bases_on_cuda_are_the_cpu_golden_bits(init):
    """The generator runs on the host; what lands on the GPU and comes back is the golden bits."""
    on_gpu = random_matrix(96, 200, 2024, init).cuda()
    assert sha(on_gpu.cpu()) == GOLDEN[init]


def test_compiled_bigram_buckets_on_cuda_are_the_cpu_ones():
    """Triton's int64 kernels (the mix32 hash, the fmod) give every token pair the bucket eager gives on the CPU (inductor's C++
    kernels of 2.5 to 2.12 did not, with 256-bit vectors: test_model)."""
    ids = torch.randint(0, 65536, (4, 64), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    compiled = torch.compile(bigram_buckets, fullgraph=True, dynamic=False)
    assert all(torch.equal(compiled(ids.cuda(), n).cpu(), bigram_buckets(ids, n)) for n in (64, 100, 8192))


@pytest.mark.parametrize("label, env", MODES, ids=[m[0] for m in MODES])
def test_compiled_bf16_training_step_on_cuda(label, env):
    """Inductor with fullgraph=True compiles forward and backward of every mode; the bf16 loss
    is the fp32 eager loss within bf16 rounding; the compiled Muon steps; the regenerated
    bases are the bits built on CPU before and after the step."""
    torch._dynamo.reset()
    model, cfg = small_model(env)
    cpu_sums = regenerated_checksums(model)
    model = model.cuda()
    assert regenerated_checksums(model) == cpu_sums
    x = torch.randint(0, 1024, (4, 64), generator=torch.Generator().manual_seed(1)).cuda()
    y = torch.roll(x, -1, 1)
    with torch.no_grad():
        eager_fp32 = model(x, y).mean().item()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = compiled(x, y).mean()
    assert math.isfinite(loss.item()) and abs(loss.item() - eager_fp32) < 0.02 * eager_fp32
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for opt in build_optimizers(model, cfg, compile_muon=True):
        opt.step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert regenerated_checksums(model) == cpu_sums
    assert all(m.base.dtype == torch.float32 for m in model.modules() if isinstance(m, FrozenFC))


@pytest.mark.parametrize("shape", [(512, 512), (256, 512), (1024, 512), (512, 1024), (16, 512)])
def test_compiled_newton_schulz_on_a_stack_matches_eager_per_matrix_on_cuda(shape):
    """Muon orthogonalises a stack of same-shape matrices in one compiled call: each result is
    the eager single-matrix one within bf16 rounding, and no singular value ends above 1.3."""
    g = torch.randn(3, *shape, device="cuda")
    compiled = torch.compile(newton_schulz_orthogonalize)(g, 5).float()
    for i in range(3):
        assert torch.allclose(compiled[i], newton_schulz_orthogonalize(g[i], 5).float(), atol=2e-2)
    s = torch.linalg.svdvals(compiled)
    assert s.shape == (3, min(shape)) and s.max() < 1.3 and s.median() > 0.5


@pytest.fixture(scope="module")
def cuda_val(tiny_data):
    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    tokens = load_validation_tokens(tiny_data["data_path"], 64, 1024)[:64 * 21 + 1]
    return tokens, target_bytes(sp, tokens, 1024)


def test_compiled_sliding_eval_on_cuda_is_plain_at_stride_equal_context_and_never_recompiles(cuda_val):
    """21 windows in batches of 8: the short last batch is padded, so the compiled model sees
    one shape; at stride = context the sliding evaluation is the plain one, bit for bit."""
    tokens, token_bytes = cuda_val
    torch._dynamo.reset()
    model = small_model({})[0].cuda().eval()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)
    bf16 = torch.autocast("cuda", dtype=torch.bfloat16)
    plain = evaluate(compiled, tokens, 64, 64, 8, token_bytes, device=torch.device("cuda"), autocast=bf16)
    with torch._dynamo.config.patch(error_on_recompile=True):
        sliding_at_context = evaluate(compiled, tokens, 64, 64, 8, token_bytes, device=torch.device("cuda"), autocast=bf16)
        sliding = evaluate(compiled, tokens, 64, 16, 8, token_bytes, device=torch.device("cuda"), autocast=bf16)
    assert plain == sliding_at_context and plain[2] == sliding[2] == 64 * 21
    eager_fp32 = evaluate(model, tokens, 64, 16, 8, token_bytes, device=torch.device("cuda"))
    assert abs(sliding[1] - eager_fp32[1]) < 0.01 * eager_fp32[1]


def test_evaluation_on_cuda_reads_nothing_back_batch_by_batch(cuda_val):
    """The windows are gathered on the GPU and the sums stay there: the synchronising calls torch's debug mode reports are the
    same few for 11 batches as for 3 (the plan's copy to the GPU, the sums read at the end), so the host queues batches ahead."""
    tokens, token_bytes = cuda_val
    model, counts = small_model({})[0].cuda().eval(), []
    for batch_seqs in (8, 2):  # 21 windows: 3 batches, then 11
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = evaluate(model, tokens, 64, 64, batch_seqs, token_bytes, device=torch.device("cuda"))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchronizing" in str(w.message) for w in caught))
        assert result[2] == 64 * 21
    assert 1 <= counts[0] == counts[1], counts  # at least the read at the end: the debug mode saw the syncs


def test_the_train_loader_on_cuda_gives_the_cpu_batches_without_waiting_for_the_gpu(tiny_data):
    """A batch is pinned on the host before its copy, so the copy is asynchronous: with about 50 ms of matrix work queued,
    next_batch returns while the GPU is still busy (the step loop never waits on its own data), and its batches are the CPU
    loader's, bit for bit."""
    cpu, gpu = (DistributedTokenLoader(tiny_data["data_path"], 1024, 0, 1, device) for device in ("cpu", "cuda"))
    a = torch.randn(4096, 4096, device="cuda")
    for _ in range(3):
        torch.cuda.synchronize()
        busy = a
        for _ in range(20):
            busy = (busy @ a) / 64.0
        x, y = gpu.next_batch(8192, 64)
        still_busy = not torch.cuda.current_stream().query()
        xc, yc = cpu.next_batch(8192, 64)
        assert still_busy and x.is_cuda and torch.equal(x.cpu(), xc) and torch.equal(y.cpu(), yc)


def cuda_env(tiny_data, run_id: str, **extra) -> dict:
    return clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                        "RUN_ID": run_id, "CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "4", "MODEL_DIM": "128",
                        "VAL_LOSS_EVERY": "6", "EVAL_STRIDE": "16", **extra})


@pytest.mark.slow
@pytest.mark.parametrize("label, env", MODES, ids=[m[0] for m in MODES])
def test_every_mode_trains_on_cuda_and_its_artifact_evaluates_on_cpu(tiny_data, tmp_path, label, env):
    """A real train_gpt.py process on the GPU (bf16, compile on by default), then EVAL_ONLY on
    the CPU from the artifact alone: the checksums of the regenerated bases recorded on the GPU
    machine pass on CPU, and fp32 CPU scores the bf16-trained model within 1%."""
    r = run_train(tmp_path, cuda_env(tiny_data, "gpu", **env))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "gpu")
    assert any("device:NVIDIA" in l for l in lines)
    assert any(l.endswith("compile:True") for l in lines)
    losses = [float(field(l, "train_loss")) for l in lines if " train_loss:" in l]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses) and min(losses[-3:]) < losses[0]
    gpu_bpb = float(field(next(l for l in lines if l.startswith("final_int8_zlib_roundtrip_sliding_exact")), "val_bpb"))
    r = run_train(tmp_path, clean_env(EVAL_ONLY="1", ARTIFACT=str(tmp_path / "final_model.int8.ptz"), RUN_ID="cpu_eval"))
    assert r.returncode == 0, r.stderr[-3000:]
    cpu_lines = log_lines(tmp_path, "cpu_eval")
    cpu_bpb = float(field(next(l for l in cpu_lines if l.startswith("final_int8_zlib_roundtrip_sliding_exact")), "val_bpb"))
    assert abs(cpu_bpb - gpu_bpb) < 0.01 * gpu_bpb


@pytest.mark.slow
def test_a_non_finite_loss_at_a_step_that_does_not_log_stops_the_gpu_run_with_nothing_written(tiny_data, tmp_path):
    """On the GPU a step that does not log reads nothing back: the loss stays on the device and a non-finite one is flagged there,
    read at the next check point (a logging step, about every 2 s of steps, the last step). The run still stops by step 30 with
    exit status 3, and the outputs of the run before it are left as they were."""
    r, good = blow_up_after_a_checkpoint(tmp_path, cuda_env(tiny_data, "good", VAL_LOSS_EVERY="0", EVAL_STRIDE="0"))
    assert r.returncode == 3, r.stderr[-2000:]
    lines = log_lines(tmp_path, "nan")
    assert any("device:NVIDIA" in l for l in lines) and not any(re.match(r"step:(1[1-9]|2\d)/30 train_loss", l) for l in lines)
    assert re.fullmatch(r"stopping: non-finite train_loss:(nan|-?inf) at step:(2[5-9]|30)/30; no artifact written", lines[-1])
    assert all((tmp_path / name).read_bytes() == data for name, data in good.items())


# Runs train_gpt.py as __main__ with torch's sync debug mode on, and writes down every synchronising call reached from a timed
# training step (the stack passes through main's `loss = train_step(step, ...)`; the warm-up's steps, which compile, do not).
SYNC_WATCH = """
import json, os, runpy, sys, traceback, warnings
import torch
found = {"total": 0, "in_timed_steps": []}
def show(message, category, filename, lineno, file=None, line=None):
    if "synchroniz" in str(message):
        found["total"] += 1
        stack = [f for f in traceback.extract_stack()[:-1] if not f.filename.endswith("warnings.py")]
        if any(f.name == "main" and "= train_step(step" in (f.line or "") for f in stack):
            found["in_timed_steps"].append(" <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in stack[::-1][:4]))
warnings.showwarning = show
warnings.simplefilter("always")
torch.cuda.set_sync_debug_mode("warn")
sys.argv = [sys.argv[1]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    open(os.environ["SYNC_WATCH_OUT"], "w").write(json.dumps(found))
"""


@pytest.mark.slow
def test_a_training_step_that_does_not_log_makes_no_host_sync_on_the_gpu(tiny_data, tmp_path):
    """The issue's first GPU change: 30 timed steps (compiled, bf16) of which steps 1-10 log; every synchronising call torch's
    debug mode reports is reached from the check points in main (logging steps, the last step), never from inside a step: not
    from the forward, backward, Muon or Adam, nor from the pinned copy of the next batch."""
    (tmp_path / "watch.py").write_text(SYNC_WATCH)
    env = cuda_env(tiny_data, "watched", ITERATIONS="30", TRAIN_LOG_EVERY="1000", VAL_LOSS_EVERY="0", EVAL_STRIDE="0",
                   SYNC_WATCH_OUT=str(tmp_path / "syncs.json"))
    r = subprocess.run([sys.executable, str(tmp_path / "watch.py"), str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads((tmp_path / "syncs.json").read_text())
    assert found["total"] > 0 and found["in_timed_steps"] == [], found["in_timed_steps"][:10]  # the mode saw syncs, none in a step


@pytest.mark.slow
def test_more_processes_than_gpus_is_refused_in_one_line(tiny_data, tmp_path):
    n = torch.cuda.device_count() + 1
    r = run_train(tmp_path, cuda_env(tiny_data, "over", CUDA_VISIBLE_DEVICES=",".join(map(str, range(n - 1)))), nproc=n)
    assert r.returncode != 0
    assert "error: LOCAL_RANK=" in r.stderr and "GPU(s) visible" in r.stderr


@pytest.mark.slow
def test_a_batch_too_large_for_the_gpu_stops_in_one_logged_line(tiny_data, tmp_path):
    """torch.OutOfMemoryError (compiled, bf16): 64M tokens in one micro-step want far more than any GPU holds (256 GiB of fp32 logits
    alone). The run logs where it was and what to lower, exits 3, and writes nothing; the CPU twin is in test_faults."""
    r = run_train(tmp_path, cuda_env(tiny_data, "oom", TRAIN_BATCH_TOKENS=str(1 << 26), GRAD_ACCUM_STEPS="1"))
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr[-3000:]
    last = log_lines(tmp_path, "oom")[-1]
    assert re.fullmatch(r"stopping: out of memory \((tried to allocate [\d.]+ [KMGT]iB|out of memory|ALLOC_FAILED)\) at step:0/12; no artifact "
                        r"written; lower TRAIN_BATCH_TOKENS or raise GRAD_ACCUM_STEPS .*", last), last
    assert not (tmp_path / "final_model.int8.ptz").exists() and not (tmp_path / "final_model.pt").exists()
