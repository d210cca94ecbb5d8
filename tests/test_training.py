"""TRAINING: train_gpt.py end to end as real processes (one process and torchrun with gloo),
on shards the tests build."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_MODEL, Terminal, clean_env, field, live_processes, log_lines, run_train, run_with_closed_terminal
from train_gpt import GPT, Hyperparameters, read_artifact

pytestmark = pytest.mark.slow


def env_for(tiny_data, run_id, **extra):
    return clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"], "RUN_ID": run_id, **extra})


def losses(lines):
    return {int(field(l, "step").split("/")[0]): float(field(l, "train_loss")) for l in lines if "train_loss:" in l}


@pytest.fixture(scope="module")
def single_run(tiny_data, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("single")
    r = run_train(cwd, env_for(tiny_data, "single"))
    assert r.returncode == 0, r.stderr[-3000:]
    return cwd, log_lines(cwd, "single"), r


def test_end_to_end_run_logs_the_house_lines(single_run):
    cwd, lines, r = single_run
    text = (cwd / "logs" / "single.txt").read_text()
    assert text.startswith('"""\ntrain_gpt.py')  # the log starts with the full source
    order = ["model_params:", "world_size:1 grad_accum_steps:8", "warmup_step:2/2", "step:0/12 val_loss:", "step:1/12 train_loss:",
             "step:6/12 val_loss:", "step:12/12 val_loss:", "Serialized model:", "Code size:", "Total submission size:",
             "Serialized model int8+zlib:", "Total submission size int8+zlib:", "final_int8_zlib_roundtrip ",
             "final_int8_zlib_roundtrip_exact ", "final_int8_zlib_roundtrip_sliding ", "final_int8_zlib_roundtrip_sliding_exact "]
    positions = [next(i for i, l in enumerate(lines) if l.startswith(o)) for o in order]
    assert positions == sorted(positions)
    code_bytes = len((Path(__file__).parent.parent / "train_gpt.py").read_bytes())
    assert f"Code size: {code_bytes} bytes" in lines
    artifact = cwd / "final_model.int8.ptz"
    total = next(l for l in lines if l.startswith("Total submission size int8+zlib:"))
    assert int(total.split()[-2]) == artifact.stat().st_size + code_bytes
    assert re.search(r"stride:32 eval_time:\d+ms$", next(l for l in lines if l.startswith("final_int8_zlib_roundtrip_sliding ")))
    assert r.stdout.count("final_int8_zlib_roundtrip_exact") == 1  # printed once, by rank 0
    rss = int(re.fullmatch(r"peak memory rss: (\d+) MiB", next(l for l in lines if l.startswith("peak memory rss:"))).group(1))
    # in MiB whatever getrusage's unit (KiB on Linux, bytes on macOS): more than torch alone, less than the machine
    assert 100 < rss < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def test_the_log_says_how_many_times_training_went_over_its_shards(single_run, tiny_data):
    """12 steps of 2,048 tokens over shards of about 60k tokens: 0.40 passes. A long run over few shards (`--train-shards 1`, a
    non-record run of hours) sees data again without a word otherwise: the line says so in its number of passes."""
    _, lines, _ = single_run
    total = sum(int(np.fromfile(f, dtype="<i4", count=3)[2]) for f in Path(tiny_data["data_path"]).glob("*_train_*.bin"))
    line = next(l for l in lines if l.startswith("train_data:"))
    assert line == f"train_data: {12 * 2048} tokens trained, {12 * 2048 / total:.2f} passes over the train shards"
    assert lines.index(line) == next(i for i, l in enumerate(lines) if l.startswith("peak memory")) - 1  # after training, before the export


def test_end_to_end_run_learns_and_round_trips(single_run, tiny_data):
    cwd, lines, _ = single_run
    vals = [float(field(l, "val_bpb")) for l in lines if " val_bpb:" in l and l.startswith("step:")]
    assert vals[0] > 3.5 and vals[-1] < vals[0] - 0.5  # learned in 12 steps
    exact = next(l for l in lines if l.startswith("final_int8_zlib_roundtrip_exact"))
    rt = float(field(exact, "val_bpb"))
    assert abs(rt - vals[-1]) < 0.02  # int8 costs little
    sliding = next(l for l in lines if l.startswith("final_int8_zlib_roundtrip_sliding_exact"))
    n_val = sum((Path(p).stat().st_size - 1024) // 2 for p in Path(tiny_data["data_path"]).glob("*_val_*.bin"))
    assert int(field(sliding, "scored_tokens")) == int(field(exact, "scored_tokens")) == ((n_val - 1) // 64) * 64
    # The artifact on disk rebuilds the model and gives the logged number again.
    state, meta = read_artifact(cwd / "final_model.int8.ptz")
    cfg = Hyperparameters({k: v for k, v in TINY_MODEL.items()})
    assert meta["config"] == cfg.model_config()
    model = GPT(cfg)
    model.load_state_dict(state, strict=True)
    import sentencepiece as spm
    from train_gpt import evaluate, load_validation_tokens, target_bytes
    val = load_validation_tokens(tiny_data["data_path"], 64, 1024)
    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    loss, bpb, _ = evaluate(model.eval(), val, 64, 64, 4096 // 64, target_bytes(sp, val, 1024))
    assert f"val_loss:{loss:.8f} val_bpb:{bpb:.8f}" in exact


def test_warmup_steps_are_rolled_back_exactly(tiny_data, tmp_path, single_run):
    r = run_train(tmp_path, env_for(tiny_data, "nowarm", WARMUP_STEPS="0", EVAL_STRIDE="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert losses(log_lines(tmp_path, "nowarm")) == losses(single_run[1])


def test_torchrun_two_processes_match_one(tiny_data, tmp_path, single_run):
    r = run_train(tmp_path, env_for(tiny_data, "ddp"), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Warning" not in r.stderr, r.stderr[-3000:]  # torch 2.13 renamed DDP's broadcast_buffers: its old name warned on every rank
    lines = log_lines(tmp_path, "ddp")
    assert "world_size:2 grad_accum_steps:4" in lines
    one, two = losses(single_run[1]), losses(lines)
    assert one.keys() == two.keys() and len(one) == 12
    for step in one:  # the same tokens and the same maths, summed in another order
        assert abs(one[step] - two[step]) < 2e-4 * max(1.0, step / 4), (step, one[step], two[step])
    pick = lambda ls, key: float(field(next(l for l in ls if l.startswith(key + " ")), "val_bpb"))
    for key in ("final_int8_zlib_roundtrip_exact", "final_int8_zlib_roundtrip_sliding_exact"):
        assert abs(pick(single_run[1], key) - pick(lines, key)) < 2e-3
    assert (tmp_path / "final_model.int8.ptz").exists()


def test_a_one_layer_model_trains_under_torchrun(tiny_data, tmp_path):
    """NUM_LAYERS=1 (its range starts there) has no skip connection: its skip_weights is empty and never in the loss. One process
    never minded; under torchrun every rank died at its second step in DDP's `Expected to have finished reduction in the prior
    iteration` (a parameter without a grad). The empty skip_weights now takes no grad, and the run writes its artifact."""
    r = run_train(tmp_path, env_for(tiny_data, "one_layer", NUM_LAYERS="1", ITERATIONS="3", VAL_LOSS_EVERY="0", EVAL_STRIDE="0"), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    assert any(l.startswith("final_int8_zlib_roundtrip_exact ") for l in log_lines(tmp_path, "one_layer"))
    assert read_artifact(tmp_path / "final_model.int8.ptz")[0]["skip_weights"].shape == (0, 64)


def test_compiled_run_with_periodic_validation(tiny_data, tmp_path):
    """COMPILE=1 on CPU (eager backend: no C++ toolchain needed) and validation between steps."""
    r = run_train(tmp_path, env_for(tiny_data, "compiled", COMPILE="1", COMPILE_BACKEND="eager", ITERATIONS="4", VAL_LOSS_EVERY="2", EVAL_STRIDE="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "compiled")
    assert any("compile:True" in l for l in lines) and any(l.startswith("step:2/4 val_loss:") for l in lines)


def test_wallclock_cap_stops_early(tiny_data, tmp_path):
    r = run_train(tmp_path, env_for(tiny_data, "capped", ITERATIONS="100000", MAX_WALLCLOCK_SECONDS="1.5", VAL_LOSS_EVERY="0",
                                    TRAIN_LOG_EVERY="1000", EVAL_STRIDE="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "capped")
    stop = next(l for l in lines if l.startswith("stopping_early: wallclock_cap"))
    step = int(field(stop, "step").split("/")[0])
    assert 1 <= step < 100000 and any(l.startswith(f"step:{step}/100000 val_loss:") for l in lines)


def test_data_errors_stop_with_one_line(tiny_data, tmp_path):
    cases = [
        (dict(DATA_PATH=str(tmp_path)), "no val shards match"),
        (dict(TOKENIZER_PATH=str(tmp_path / "none.model")), "TOKENIZER_PATH="),
        (dict(VOCAB_SIZE="2048"), "vocabulary of 1024 tokens, but VOCAB_SIZE=2048"),
    ]
    for extra, msg in cases:
        r = run_train(tmp_path, env_for(tiny_data, "bad", **extra))
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr[-2000:])
        assert "Traceback" not in r.stderr


# ---- EMA, eval-only, checkpoint and resume, distillation, ensembles, int6 ----

@pytest.mark.parametrize("start", [0, 3])
def test_ema_equals_the_closed_form(start):
    from train_gpt import EMA
    p = torch.nn.Parameter(torch.zeros(3))
    model = torch.nn.Module()
    model.p = p
    values = [torch.tensor([float(i), 2.0 * i, -i]) for i in range(1, 9)]
    ema, d = EMA(0.7, start), 0.7
    for step, v in enumerate(values, 1):
        p.data.copy_(v)
        ema.update(model, step)
    kept = [v for step, v in enumerate(values, 1) if step >= start]
    # a copy at the first step, then avg = d avg + (1 - d) v: d^(n-1) v_1 + sum (1 - d) d^(n-k) v_k
    n = len(kept)
    expected = d ** (n - 1) * kept[0] + sum((1 - d) * d ** (n - k) * kept[k - 1] for k in range(2, n + 1))
    assert torch.allclose(ema.avg["p"], expected, atol=1e-6)
    ema.copy_to(model)
    assert torch.equal(p.data, ema.avg["p"])


def test_eval_only_reproduces_the_training_run_exactly(single_run, tmp_path):
    cwd, lines, _ = single_run
    r = run_train(tmp_path, clean_env(EVAL_ONLY="1", ARTIFACT=str(cwd / "final_model.int8.ptz"), RUN_ID="eval"))
    assert r.returncode == 0, r.stderr[-3000:]
    keys = ("final_int8_zlib_roundtrip_exact ", "final_int8_zlib_roundtrip_sliding_exact ")
    assert [l for l in log_lines(tmp_path, "eval") if l.startswith(keys)] == [l for l in lines if l.startswith(keys)]
    data = (cwd / "final_model.int8.ptz").read_bytes()
    for name, blob in [("truncated", data[:-100]), ("flipped", data[:50] + bytes([data[50] ^ 1]) + data[51:])]:
        (tmp_path / name).write_bytes(blob)
        r = run_train(tmp_path, clean_env(EVAL_ONLY="1", ARTIFACT=str(tmp_path / name)))
        assert r.returncode == 2 and r.stderr.startswith(f"error: ARTIFACT={tmp_path / name}: ") and len(r.stderr.strip().splitlines()) == 1
    r = run_train(tmp_path, clean_env(EVAL_ONLY="1", ARTIFACT=str(cwd / "final_model.int8.ptz"), BASE_SEED="9"))
    assert r.returncode == 2 and "built with BASE_SEED=0, this run has BASE_SEED=9" in r.stderr


def test_interrupted_and_resumed_equals_uninterrupted(tiny_data, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from conftest import SCRIPT
    common = dict(ITERATIONS="40", VAL_LOSS_EVERY="0", EVAL_STRIDE="0", TRAIN_LOG_EVERY="10", CHECKPOINT_EVERY="4",
                  EMA_DECAY="0.9", EMA_START_STEP="10", FREEZE_MODE="mask", BIGRAM_BUCKETS="256", BIGRAM_DIM="8")
    full, part, resumed = tmp_path / "full", tmp_path / "part", tmp_path / "resumed"
    for d in (full, part, resumed):
        d.mkdir()
    r = run_train(full, env_for(tiny_data, "full", **common))
    assert r.returncode == 0, r.stderr[-3000:]
    # The same run, killed (SIGKILL, no chance to clean up) once a checkpoint exists.
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=part, env=env_for(tiny_data, "part", **common),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = part / "checkpoints" / "part.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 4 <= step < 40 and step % 4 == 0
    r = run_train(resumed, env_for(tiny_data, "resumed", RESUME=str(ckpt), **common))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed:{ckpt} step:{step}" in " ".join(log_lines(resumed, "resumed"))
    a, b = torch.load(full / "final_model.pt", weights_only=True), torch.load(resumed / "final_model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (full / "final_model.int8.ptz").read_bytes() == (resumed / "final_model.int8.ptz").read_bytes()
    # A checkpoint of another configuration is refused before any work.
    r = run_train(resumed, env_for(tiny_data, "other", RESUME=str(ckpt), **{**common, "MODEL_DIM": "128"}))
    assert r.returncode == 2 and "written with MODEL_DIM=64, this run has MODEL_DIM=128" in r.stderr


def test_an_ema_that_never_started_leaves_the_trained_weights_and_the_log_says_so(single_run, tiny_data, tmp_path):
    """EMA_START_STEP past the step the run stops at (ITERATIONS here; the wallclock cap in a real run): the artifact is the plain
    run's, bit for bit, and the log says the EMA was not used rather than nothing."""
    r = run_train(tmp_path, env_for(tiny_data, "ema_late", EMA_DECAY="0.9", EMA_START_STEP="13"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "final_model.int8.ptz").read_bytes() == (single_run[0] / "final_model.int8.ptz").read_bytes()
    assert "ema: not used: the run stopped at step 12, before EMA_START_STEP=13; the final weights are the trained ones" in log_lines(
        tmp_path, "ema_late")
    (tmp_path / "on").mkdir()
    r = run_train(tmp_path / "on", env_for(tiny_data, "ema_on", EMA_DECAY="0.9", EMA_START_STEP="12"))  # the last step: a copy of it
    assert r.returncode == 0 and "ema: final weights are the EMA (decay 0.9, from step 12)" in log_lines(tmp_path / "on", "ema_on")
    assert (tmp_path / "on/final_model.int8.ptz").read_bytes() == (single_run[0] / "final_model.int8.ptz").read_bytes()


def test_distillation_with_alpha_zero_equals_plain_training(single_run, tiny_data, tmp_path):
    teacher = single_run[0] / "final_model.int8.ptz"
    r = run_train(tmp_path, env_for(tiny_data, "distill", DISTILL_TEACHER=str(teacher), DISTILL_ALPHA="0", EVAL_STRIDE="0"))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "distill")
    assert any(l.startswith(f"distill_teacher:{teacher} ") for l in lines)
    assert losses(lines) == losses(single_run[1])
    r = run_train(tmp_path, env_for(tiny_data, "distill2", DISTILL_TEACHER=str(teacher), DISTILL_ALPHA="0.7", NUM_LAYERS="1",
                                    MODEL_DIM="32", NUM_HEADS="2", NUM_KV_HEADS="1", EVAL_STRIDE="0"))
    assert r.returncode == 0, r.stderr[-3000:]  # a student of another shape
    assert losses(log_lines(tmp_path, "distill2")) != losses(single_run[1])


def test_ensemble_int6_and_bigram_end_to_end(tiny_data, tmp_path):
    r = run_train(tmp_path, env_for(tiny_data, "ens", NUM_MODELS="2", FREEZE_MODE="frozen", INT6_LAYERS="all", MODEL_DIM="160",
                                    MLP_MULT="4", BIGRAM_BUCKETS="1024", BIGRAM_DIM="16", EVAL_STRIDE="0", ITERATIONS="6",
                                    MATRIX_LR="1.0"))  # large weights at once: rows above the house's 1/127 scale floor
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "ens")
    ensemble = float(field(next(l for l in lines if l.startswith("final_int8_zlib_roundtrip_exact")), "val_bpb"))
    members = [float(field(l, "val_bpb")) for l in lines if l.startswith("ensemble_member:")]
    assert len(members) == 2 and ensemble < max(members)
    int6 = next(l for l in lines if l.startswith("int6_layers:0,1"))
    assert int(field(int6, "bytes_saved")) > 0 and "val_bpb_cost:" in int6
    storage = next(l for l in lines if l.startswith("artifact_storage"))
    assert "int6: members.0.mlp.proj.weight x2, members.1.mlp.proj.weight x2" in storage and "members.0.bigram.weight" in storage


@pytest.mark.parametrize("tokenizer", ["byte260", "char"])
def test_the_challenges_json_tokenizers_train_and_score_each_utf8_byte_once(tiny_data, tmp_path, tokenizer):
    """The challenge's byte260 variant and its character-level one (JSON tokenizers; VOCAB_SIZE=260, or 4 + the characters) end to end:
    val_bpb is the loss over the scored targets' UTF-8 bytes, one a byte id, 1 to 4 a character id; BOS counts none. EVAL_ONLY gives the
    same lines; another VOCAB_SIZE is refused in one line."""
    import json
    import math

    import numpy as np
    from export_corpus import export
    from train_gpt import load_validation_tokens

    val_docs = ["café — 中文 😀"] + tiny_data["val_docs"][:12]  # first: the split's end is cut to whole contexts
    folder = export(tiny_data["train_docs"][:150], val_docs, tmp_path / "data", "tiny", shard_tokens=40_000, tokenizer=tokenizer)
    tok = tmp_path / f"data/tokenizers/tiny_{'pure_byte_260' if tokenizer == 'byte260' else 'char'}.json"
    spec = json.loads(tok.read_text(encoding="utf-8"))
    n, chars = spec["vocab_size"], spec["config"].get("chars")
    sizes = np.array([0] * 4 + ([1] * 256 if chars is None else [len(c.encode()) for c in chars]))  # each id's bytes, by the format alone
    env = env_for(tiny_data, "json", DATA_PATH=str(folder), TOKENIZER_PATH=str(tok), VOCAB_SIZE=str(n), TRAIN_SEQ_LEN="128", VAL_LOSS_EVERY="0")
    r = run_train(tmp_path, env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "json")
    assert f"val_bpb:enabled tokenizer_kind={spec['tokenizer_type']} tokenizer_path={tok}" in lines
    exact = next(l for l in lines if l.startswith("final_int8_zlib_roundtrip_exact"))
    loss, bpb, scored = (float(field(exact, k)) for k in ("val_loss", "val_bpb", "scored_tokens"))
    targets = load_validation_tokens(str(folder), 128, n).numpy()[1:int(scored) + 1]
    assert int(scored) == (targets.size // 128) * 128 and bpb == pytest.approx(loss / math.log(2) * scored / sizes[targets].sum(), rel=1e-7)
    assert (sizes[targets] > 1).any() == (tokenizer == "char")  # the multi-byte characters are scored as such
    r = run_train(tmp_path, clean_env(EVAL_ONLY="1", ARTIFACT=str(tmp_path / "final_model.int8.ptz"), RUN_ID="json_eval"))
    assert r.returncode == 0, r.stderr[-3000:]
    keys = ("final_int8_zlib_roundtrip_exact ", "final_int8_zlib_roundtrip_sliding_exact ")
    assert [l for l in log_lines(tmp_path, "json_eval") if l.startswith(keys)] == [l for l in lines if l.startswith(keys)]
    r = run_train(tmp_path, {**env, "VOCAB_SIZE": "1024", "RUN_ID": "json_1024"})
    assert r.returncode == 2 and r.stderr.strip() == f"error: TOKENIZER_PATH={tok}: vocabulary of {n} tokens, but VOCAB_SIZE=1024"


def test_resume_under_torchrun_equals_an_uninterrupted_torchrun_run(tiny_data, tmp_path):
    """Two processes: the checkpoint (written by rank 0) holds every rank's state, Muon's
    momentum included, so resuming under torchrun ends bit-identical too."""
    common = dict(ITERATIONS="10", VAL_LOSS_EVERY="0", EVAL_STRIDE="0", FREEZE_MODE="adapter", WARMUP_STEPS="0")
    full, first, resumed = tmp_path / "full", tmp_path / "first", tmp_path / "resumed"
    for d in (full, first, resumed):
        d.mkdir()
    assert run_train(full, env_for(tiny_data, "full", **common), nproc=2).returncode == 0
    r = run_train(first, env_for(tiny_data, "first", CHECKPOINT_EVERY="5", **common), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_train(resumed, env_for(tiny_data, "resumed", RESUME=str(first / "checkpoints" / "first.pt"), **common), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(full / "final_model.pt", weights_only=True), torch.load(resumed / "final_model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def project_copy(folder: Path) -> None:
    """run.sh and train_gpt.py copied to `folder`, with links to the embedded corpus: what a clone holds once `bash run.sh data` ran."""
    if not (ROOT / "data" / "datasets" / "shakespeare_sp1024" / "manifest.json").exists():
        pytest.skip("embedded dataset not built (bash run.sh data)")
    for name in ("run.sh", "train_gpt.py"):
        shutil.copy(ROOT / name, folder / name)
    for sub, name in (("datasets", "shakespeare_sp1024"), ("tokenizers", "shakespeare_1024_bpe.model")):
        (folder / "data" / sub).mkdir(parents=True)
        os.symlink(ROOT / "data" / sub / name, folder / "data" / sub / name)


@pytest.mark.parametrize("elsewhere", [False, True], ids=["in_the_project", "from_another_folder_with_artifact_set"])
def test_the_readme_first_command_trains_the_demo_and_prints_its_summary(tmp_path, elsewhere):
    """`bash run.sh`, the README's first command, as a real process from a copy of the project (run.sh works in its own folder):
    it finds what it needs installed and the embedded corpus built, trains run.sh's demo model (3 steps here, not 300 s), writes
    the artifact and the log beside itself and ends with the summary the README shows, a warning: line included. Called from
    another folder, with ARTIFACT set, the summary gave the log's path as the project saw it and the default artifact's name."""
    project = tmp_path / "project"
    project.mkdir()
    project_copy(project)
    env = clean_env(PYTHON=sys.executable, ITERATIONS="3", RUN_ID="demo", LORA_RANK="8",  # LORA_RANK: no effect in the dense demo
                    **({"ARTIFACT": "demo.ptz"} if elsewhere else {}))
    if "OMP_NUM_THREADS" not in os.environ:  # torch's own thread count, as in the shell the README's reader types into
        del env["OMP_NUM_THREADS"]
    r = subprocess.run(["bash", "project/run.sh" if elsewhere else "run.sh"], cwd=tmp_path if elsewhere else project, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = r.stdout[r.stdout.rindex("\n---\n") + 5:].splitlines()
    assert summary[0] == "warning: LORA_RANK=8 has no effect: it needs FREEZE_MODE=adapter or lowrank; this run has FREEZE_MODE=none"
    assert summary[1] == "model_params:2101776"  # the README's demo lines
    assert summary[2].startswith("Total submission size int8+zlib: ") and summary[3].startswith("final_int8_zlib_roundtrip val_loss:")
    assert summary[4].startswith("final_int8_zlib_roundtrip_sliding val_loss:") and " stride:128 " in summary[4]
    artifact = project / ("demo.ptz" if elsewhere else "final_model.int8.ptz")
    assert summary[5] == f"log: {f'{project}/' if elsewhere else ''}logs/demo.txt  artifact: {artifact}" and len(summary) == 6
    assert read_artifact(artifact)[1]["config"]["num_layers"] == 4
    assert "step:3/3 val_loss:" in (project / "logs" / "demo.txt").read_text()


def test_the_demo_under_a_closed_terminal_ends_as_its_run_did(tmp_path):
    """`setsid bash run.sh` (or `bash run.sh &` then `disown`), the terminal closed: no SIGHUP comes, and every write to the
    terminal fails with EIO. The run ended at its next line with a traceback, its log cut short (train_gpt.py took only a broken
    pipe for a console gone); once it finished, run.sh's summary failed its first echo and set -e ended run.sh with status 1.
    Now the run finishes, logging that its console went, and run.sh ends 0 with the run (here the terminal closed from the start)."""
    project_copy(tmp_path)
    env = clean_env(PYTHON=sys.executable, ITERATIONS="3", RUN_ID="alone", **TINY_DEMO)
    assert run_with_closed_terminal(["bash", "run.sh"], cwd=tmp_path, env=env, timeout=600).returncode == 0
    lines = log_lines(tmp_path, "alone")
    assert "console: stdout closed (input/output error); the run goes on, logging to logs/alone.txt only" in lines
    assert lines[-1].startswith("total_eval_time:") and (tmp_path / "final_model.int8.ptz").exists()


@pytest.mark.parametrize("signum, to_group", [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)],
                         ids=["kill", "hangup", "ctrl_c"])
def test_a_signal_to_run_sh_stops_the_run_it_waits_on_once(signum, to_group, tmp_path):
    """`kill PID` of `bash run.sh` (or `docker stop`, where run.sh is a container's first process) killed run.sh alone: the demo
    trained on with no one waiting for it, holding its outputs' locks. run.sh now passes each signal it gets to the run, once, and
    waits for it: the run logs one `stopping:` line and writes no artifact, run.sh exits 128 + the signal's number, and nothing of
    it is left running. Ctrl-C (SIGINT to run.sh's whole process group, as a terminal sends it) reaches the run once too."""
    project_copy(tmp_path)
    env = clean_env(PYTHON=sys.executable, RUN_ID="stopped", ITERATIONS="100000", MAX_WALLCLOCK_SECONDS="0", NUM_LAYERS="1", MODEL_DIM="64",
                    TRAIN_SEQ_LEN="64", TRAIN_BATCH_TOKENS="2048", GRAD_ACCUM_STEPS="1", TRAIN_LOG_EVERY="1", EVAL_STRIDE="0")
    run_sh = subprocess.Popen(["bash", "run.sh"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        log = tmp_path / "logs" / "stopped.txt"
        for _ in range(1200):
            if run_sh.poll() is not None or log.exists() and "\nstep:3/" in log.read_text():
                break
            time.sleep(0.25)
        (os.killpg if to_group else os.kill)(run_sh.pid, signum)
        out, err = run_sh.communicate(timeout=120)
    finally:  # the old run.sh left its run training: stop it, or the suite's later tests share the machine with it
        for pid in processes_in(tmp_path):
            os.kill(int(pid), signal.SIGKILL)
    stopped = [l for l in log.read_text().splitlines() if l.startswith("stopping:")]
    assert run_sh.returncode == 128 + signum and "\n---\n" not in out, (run_sh.returncode, err[-2000:])
    assert len(stopped) == 1 and re.fullmatch(rf"stopping: {signum.name} at step:\d+/100000; no artifact written", stopped[0]), stopped
    assert not (tmp_path / "final_model.int8.ptz").exists() and not processes_in(tmp_path)


TINY_DEMO = dict(NUM_LAYERS="1", MODEL_DIM="64", TRAIN_SEQ_LEN="64", TRAIN_BATCH_TOKENS="2048", GRAD_ACCUM_STEPS="1", EVAL_STRIDE="0")


def processes_in(folder: Path, script: str = "") -> list[str]:  # the live processes working in folder (running script: `python3 script`)
    return live_processes(lambda proc: Path(os.readlink(proc / "cwd")) == folder and
                          (not script or (proc / "cmdline").read_bytes().split(b"\0")[1:2] == [script.encode()]))


@contextlib.contextmanager
def demo_at_a_terminal(folder: Path, run_id: str, tostop=False, background=False, command=(), **env):
    """`bash run.sh` (a tiny demo; `command`: `fineweb`) typed at a Terminal in a copy of the project in folder; yields the terminal and
    the run's log. What is still alive at the end is killed: the old run.sh left its run training, or stopped for good, outside the shell's job."""
    project_copy(folder)
    term = Terminal(["bash", "run.sh", *command], folder, clean_env(PYTHON=sys.executable, RUN_ID=run_id, **TINY_DEMO, **env), tostop, background)
    try:
        yield term, folder / "logs" / f"{run_id}.txt"
    finally:
        term.close()
        for pid in processes_in(folder):
            os.kill(int(pid), signal.SIGKILL)


ENDLESS = dict(ITERATIONS="100000", MAX_WALLCLOCK_SECONDS="0", TRAIN_LOG_EVERY="1")


def stopping_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("stopping:")]


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background_job"])
def test_run_sh_at_a_terminal_set_stty_tostop_runs_to_its_end(background, tmp_path):
    """`stty tostop` stops a background process group at its first write to the terminal. run.sh ran its demo in a group of its
    own, never the terminal's foreground, so at such a terminal `bash run.sh` stopped at the run's first line, for good, with nothing
    on the screen. In the foreground the run now shares run.sh's group; as a background job (`bash run.sh &`) it ignores SIGTTOU
    and writes on (run.sh itself is stopped at its summary, as tostop asks, and prints it on `fg`)."""
    with demo_at_a_terminal(tmp_path, "tostop", tostop=True, background=background, ITERATIONS="3") as (term, log):
        if background:
            term.wait_for("[shell] stopped")
            assert "final_int8_zlib_roundtrip_exact" in term.screen.decode() and "\n---\n" not in term.screen.decode()
            term.type(b"fg\n")
        term.wait_for("[shell] exit ")
    assert "[shell] exit 0" in term.screen.decode() and "\nlog: logs/tostop.txt  artifact: " in term.screen.decode().replace("\r", "")


@pytest.mark.parametrize("key, signum", [(b"\x03", signal.SIGINT), (b"\x1c", signal.SIGQUIT)], ids=["ctrl_c", "ctrl_backslash"])
def test_run_sh_at_a_terminal_pauses_on_ctrl_z_and_stops_on_its_stop_keys(key, signum, tmp_path):
    """At a terminal, Ctrl-Z paused run.sh alone: its run, in a process group of its own, trained on while the shell said
    `Stopped`, and Ctrl-\\ killed run.sh and left the run training. Now the run is in the terminal's foreground group with run.sh:
    Ctrl-Z stops it (no step is logged until `fg`), and after `fg` Ctrl-C stops it with one `stopping:` line (exit 130) and
    Ctrl-\\ kills it at once (run.sh exits 131); nothing is left running either way. Its input is the terminal, as a pdb
    breakpoint() needs: bash gives a background child /dev/null."""
    with demo_at_a_terminal(tmp_path, "keys", **ENDLESS) as (term, log):
        term.wait_for("step:3/100000 ")
        run = term.pause_and_continue(log, lambda: processes_in(tmp_path, "train_gpt.py"))
        assert len(run) == 1 and os.readlink(f"/proc/{run[0]}/fd/0").startswith("/dev/pts/")  # the terminal (breakpoint()); bash gave /dev/null
        term.type(key)
        term.wait_for("[shell] exit ")
        assert f"[shell] exit {128 + signum}" in term.screen.decode() and not processes_in(tmp_path), term.screen[-1500:]
    stopped = stopping_lines(log)
    assert stopped == ([] if signum == signal.SIGQUIT else [stopped[0]]) and all(" SIGINT at step:" in line for line in stopped)


def test_run_sh_started_in_the_background_then_brought_to_the_foreground_pauses_its_run_on_ctrl_z(tmp_path):
    """`bash run.sh &`, then `fg`: the run keeps the process group of its own it was given in the background (run.sh looks once,
    at the start), so the terminal's Ctrl-Z reaches run.sh alone; run.sh stops the run's group and itself, and the next `fg`
    continues both. Ctrl-C then reaches the run once, through run.sh (exit 130)."""
    with demo_at_a_terminal(tmp_path, "later", background=True, **ENDLESS) as (term, log):
        for _ in range(1200):
            if log.exists() and "\nstep:3/" in log.read_text():
                break
            time.sleep(0.1)
        term.type(b"fg\n")
        time.sleep(0.5)
        assert len(term.pause_and_continue(log, lambda: processes_in(tmp_path, "train_gpt.py"))) == 1
        term.type(b"\x03")
        term.wait_for("[shell] exit ")
        assert "[shell] exit 130" in term.screen.decode() and not processes_in(tmp_path), term.screen[-1500:]
    assert len(stopping_lines(log)) == 1 and stopping_lines(log)[0].startswith("stopping: SIGINT at step:")


def test_run_sh_fineweb_at_a_terminal_pauses_torchruns_workers_on_ctrl_z_and_ends_on_ctrl_c_in_130(tmp_path):
    """torchrun starts each worker in a session of its own, out of the terminal's reach: at a terminal, Ctrl-Z under `bash run.sh
    fineweb` stopped run.sh and torchrun, the shell said `Stopped`, and both workers trained on, writing to the terminal (135 steps
    in 3 s, 2026-12-05); Ctrl-C then ended run.sh with torchrun's status, 1. Now (2 gloo processes on this CPU, the embedded corpus
    as the data) Ctrl-Z stops both workers with run.sh and `fg` continues them; Ctrl-C stops them in one logged line, exit 130."""
    data = {"DATA_PATH": str(tmp_path / "data" / "datasets" / "shakespeare_sp1024"), "VOCAB_SIZE": "1024",
            "TOKENIZER_PATH": str(tmp_path / "data" / "tokenizers" / "shakespeare_1024_bpe.model")}
    workers = lambda: live_processes(lambda proc: Path(os.readlink(proc / "cwd")) == tmp_path  # noqa: E731 (torchrun's, not torchrun)
                                     and (proc / "cmdline").read_bytes().split(b"\0")[1:3] == [b"-u", b"train_gpt.py"])
    with demo_at_a_terminal(tmp_path, "fw", command=("fineweb",), NPROC="2", WARMUP_STEPS="0", VAL_LOSS_EVERY="0", **data, **ENDLESS) as (term, log):
        term.wait_for("step:3/100000 ", 180)
        assert len(term.pause_and_continue(log, workers)) == 2
        term.type(b"\x03")
        term.wait_for("[shell] exit ")
        assert "[shell] exit 130" in term.screen.decode() and not processes_in(tmp_path), term.screen[-1500:]
    assert len(stopping_lines(log)) == 1 and stopping_lines(log)[0].startswith("stopping: SIGINT at step:")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["kill", "hangup"])
def test_run_sh_at_a_terminal_stops_its_run_once_on_a_kill_or_a_hangup(signum, tmp_path):
    """At a terminal the run shares run.sh's process group, so run.sh passes on only what no terminal sends: a `kill` of run.sh's
    pid reaches the run once, through run.sh (exit 143); a closed terminal sends SIGHUP to the whole group, and the run gets it
    once, from the terminal, not again from run.sh. Either way one `stopping:` line, no artifact, nothing left running."""
    with demo_at_a_terminal(tmp_path, "gone", **ENDLESS) as (term, log):
        term.wait_for("step:3/100000 ")
        if signum == signal.SIGTERM:
            os.kill(int(processes_in(tmp_path, "run.sh")[0]), signum)
            term.wait_for("[shell] exit 143")
        else:
            term.hang_up()
        for _ in range(600):
            if not processes_in(tmp_path):
                break
            time.sleep(0.1)
        assert not processes_in(tmp_path)
    stopped = stopping_lines(log)
    assert len(stopped) == 1 and stopped[0].startswith(f"stopping: {signum.name} at step:"), stopped
    assert not (tmp_path / "final_model.int8.ptz").exists()


@pytest.mark.parametrize("command", ["cpu", "test", "summary"])
def test_the_readme_first_command_names_a_missing_or_old_python_in_one_line(command, tmp_path):
    """A laptop's python3 may be 3.8, or PYTHON may be misspelt: run.sh says so in one line and exits 2, before pip (which would
    find no torch for 3.8) or a syntax error could say something else. The old interpreter is a stand-in that reports 3.8.10."""
    old = tmp_path / "python3.8"
    old.write_text("#!/bin/sh\necho 3.8.10\nexit 1\n")
    old.chmod(0o755)
    for python, said in (("python9", ""), (str(old), "Python 3.8.10, ")):
        r = subprocess.run(["bash", str(ROOT / "run.sh"), command], env=clean_env(PYTHON=python), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stdout == "" and r.stderr == (f"run.sh: PYTHON={python}: {said}not a usable interpreter; accepted Python "
                                                                     "3.10 or newer (set PYTHON to one)\n"), r.stderr



def test_the_readme_first_command_names_an_interpreter_without_pip_in_one_line(tmp_path):
    """A Python with nothing installed and no pip (a venv made --without-pip stands for a distribution's bare python3): one line
    that names what it would install and how to get pip, exit 2, before anything is made."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    python = tmp_path / "bare" / "bin" / "python"
    r = subprocess.run(["bash", str(ROOT / "run.sh")], env=clean_env(PYTHON=str(python)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and r.stderr == (
        f"run.sh: PYTHON={python} has no pip to install torch numpy sentencepiece with; install pip (python3 -m ensurepip, or apt install "
        "python3-pip) or set PYTHON to an interpreter that has it\n"), r.stderr


def test_the_readme_test_command_runs_offline_without_its_optional_packages(tmp_path):
    """A lent GPU box reaches no network and lacks zstandard: `bash run.sh test` stopped at pip, so the CUDA tests could not run
    through it. Now what pip cannot install is said in one line and the tests that need it skip (here the zstd codec's case and
    the download tests); with CI set the same line is an error before any test runs, so CI never hides a missing install step.
    The two packages are hidden by modules that refuse to import, and pip runs for real with no index to reach. Files named
    after `test` run alone: `bash run.sh test tests/test_cuda.py` ran the whole suite as well. A passing run leaves no folder in
    TMPDIR: pytest kept those of its last three runs (about 2 GB a run of the whole suite)."""
    (scratch := tmp_path / "scratch").mkdir()
    for name in ("zstandard", "huggingface_hub"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ModuleNotFoundError('hidden: stands for a box where pip cannot reach PyPI')\n")
    env = clean_env(PYTHON=sys.executable, PYTHONPATH=str(tmp_path), PIP_NO_INDEX="1", PIP_REQUIRE_VIRTUALENV="1", TMPDIR=str(scratch))
    env.pop("CI", None)
    said = "run.sh: could not install huggingface_hub zstandard datasets"  # datasets imports huggingface_hub: missing with it
    test = ["bash", str(ROOT / "run.sh"), "test", "tests/test_recipes.py", "tests/test_download.py", "-k", "codecs_round_trip", "-rs"]
    r = subprocess.run(test, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and f"{said} (offline?); the tests that need them are skipped\n" in r.stderr, r.stderr[-3000:]
    skips = sorted(re.findall(r"^SKIPPED \[1\] (tests/test_\w+\.py)", r.stdout, re.M))  # the zstd case and test_download.py's module
    counts = re.search(r"\b2 passed, 2 skipped, (\d+) deselected\b", r.stdout)  # the two files named, not the whole suite besides
    assert counts and int(counts[1]) < 100 and skips == ["tests/test_download.py", "tests/test_recipes.py"], r.stdout[-3000:]
    made = list(scratch.glob("pytest-of-*"))  # the session's folder was made here (the suite's autouse scratch TMPDIR), then deleted
    assert made and not [p.name for p in made[0].iterdir() if re.fullmatch(r"pytest-\d+", p.name)], list(made[0].iterdir())
    r = subprocess.run(test, env={**env, "CI": "true"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.splitlines()[-1] == (
        f"{said} (CI=true: every test must run); accepted: a network that reaches PyPI, or the packages installed"), r.stderr


SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian's and Ubuntu's own: their packages belong to apt, and pip refuses to install there


def system_managed(python: Path) -> bool:
    probe = ("import importlib.util, os, sys, sysconfig; sys.exit(sys.version_info < (3, 10) or importlib.util.find_spec('ensurepip') is None "
             "or not os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))")
    return python.exists() and subprocess.run([str(python), "-c", probe]).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not system_managed(SYSTEM_PYTHON), reason="no PEP 668 system Python 3.10+ with venv at /usr/bin/python3")
def test_the_readme_first_command_installs_into_a_venv_where_the_system_python_refuses_pip(tmp_path):
    """On Debian 12 or Ubuntu 24.04, `bash run.sh` with the system's python3 met pip's externally-managed-environment refusal. With
    this machine's real Debian Python: run.sh makes .venv, installs torch and the rest there and trains; the next `bash run.sh`, with
    only the system's python3 on PATH, takes .venv at once (no PEP 668 line, nothing to install)."""
    project_copy(tmp_path)
    tiny = {**TINY_MODEL, "ITERATIONS": "1", "EVAL_STRIDE": "0", "VAL_BATCH_SIZE": "16384"}
    first = subprocess.run(["bash", "run.sh"], cwd=tmp_path, env=clean_env(**tiny, PYTHON=str(SYSTEM_PYTHON), RUN_ID="first"),
                           capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    said = [l for l in first.stderr.splitlines() if l.startswith("run.sh:")]
    assert said[:2] == [f"run.sh: {SYSTEM_PYTHON}'s packages belong to the system (PEP 668): making .venv to install into (later runs use it)",
                        "run.sh: installing torch==2.13.0"], said
    assert "final_int8_zlib_roundtrip_exact" in (tmp_path / "logs" / "first.txt").read_text()
    venv = tmp_path / ".venv" / "bin" / "python"
    assert subprocess.run([str(venv), "-c", "import torch, numpy, sentencepiece"]).returncode == 0
    path = os.pathsep.join(d for d in ("/usr/bin", "/bin") if Path(d).is_dir())  # python3 here is the system's, without torch
    bare = {k: v for k, v in clean_env(**tiny, RUN_ID="second").items() if k != "PYTHON"}  # no PYTHON: run.sh picks .venv itself
    second = subprocess.run(["bash", "run.sh"], cwd=tmp_path, env={**bare, "PATH": path},
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and not [l for l in second.stderr.splitlines() if l.startswith("run.sh:")], second.stderr[-3000:]
    assert "final_int8_zlib_roundtrip_exact" in (tmp_path / "logs" / "second.txt").read_text()
    for name in ("shakespeare.py", "export_corpus.py"):  # PYTHON set to the system's: .venv is said and used
        shutil.copy(ROOT / "data" / name, tmp_path / "data")
    again = subprocess.run(["bash", "run.sh", "data", "--help"], cwd=tmp_path, env=clean_env(PYTHON=str(SYSTEM_PYTHON)), capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.startswith("usage: shakespeare.py") and again.stderr.splitlines() == [
        f"run.sh: {SYSTEM_PYTHON}'s packages belong to the system (PEP 668): using .venv"], again.stderr
    # that line to a terminal already closed (a job `setsid` or `disown` kept alive): EIO, and set -e ended run.sh 1 before the run
    closed = run_with_closed_terminal(["bash", "run.sh"], cwd=tmp_path, env=clean_env(**tiny, PYTHON=str(SYSTEM_PYTHON), RUN_ID="closed"),
                                      timeout=600)
    assert closed.returncode == 0 and "final_int8_zlib_roundtrip_exact" in (tmp_path / "logs" / "closed.txt").read_text()
