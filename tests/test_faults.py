"""The fault and bad-input matrix. Every case runs train_gpt.py's real command-line path
(`cli`) and must end with exactly one line on stderr, `error: ...`, that names the culprit,
exit status 2, no traceback, and no good file overwritten. The cases are run in one helper
process (importing torch once), each with its own environment and a shared working folder
that holds good files which must survive.

Sections: every variable (wrong type, out of range, unknown choice), incompatible
combinations, shards, tokenizers, artifacts and checkpoints; then whole runs: a non-finite
loss, SIGKILL while a checkpoint is written, SIGTERM under torchrun.
"""

import hashlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import train_gpt
from conftest import ROOT, SCRIPT, TINY_MODEL, clean_env, log_lines, run_train
from export_corpus import write_shard

# ---- the cases: (id, environment overrides, text the error must contain) ----


def variable_cases():
    cases = []
    for name, default, kind, accepted, _ in train_gpt.ENV_VARS:
        if kind in ("int", "float"):
            cases.append((f"{name}:type", {name: "x1"}, f"{name}='x1': not "))
            lo, hi = accepted
            low = lo - 1 if kind == "int" else (lo - 1.0 if lo > 0 else -0.5)
            cases.append((f"{name}:below", {name: str(low)}, f"{name}={low}: out of range"))
            high = hi + 1 if kind == "int" else hi * 10
            cases.append((f"{name}:above", {name: str(high)}, f"{name}={high}: out of range"))
        elif accepted:
            cases.append((f"{name}:choice", {name: "bogus"}, f"{name}='bogus': unknown value; accepted: {', '.join(accepted)}"))
    return cases


FREE_TEXT_CASES = [
    ("DATA_PATH:missing", {"DATA_PATH": "/nonexistent/shards"}, "DATA_PATH=/nonexistent/shards: no val shards match"),
    ("TOKENIZER_PATH:missing", {"TOKENIZER_PATH": "/nonexistent/tok.model"}, "TOKENIZER_PATH=/nonexistent/tok.model: no such file"),
    ("RUN_ID:path", {"RUN_ID": "../escape"}, "RUN_ID='../escape': accepted letters"),
    ("FREEZE_TARGETS:unknown", {"FREEZE_MODE": "adapter", "FREEZE_TARGETS": "q,mlp,gate"}, "FREEZE_TARGETS='q,mlp,gate': unknown projection 'gate'"),
    ("LORA_RANKS:text", {"FREEZE_MODE": "adapter", "LORA_RANKS": "8,eight"}, "LORA_RANKS='8,eight': not a comma list"),
    ("INT6_LAYERS:index", {"INT6_LAYERS": "0,2"}, "INT6_LAYERS='0,2': accepted 'all' or a comma list of block indices 0 to 1"),
    ("INT6_LAYERS:text", {"INT6_LAYERS": "first"}, "INT6_LAYERS='first'"),
    ("CHECKPOINT_PATH:unwritable", {"CHECKPOINT_EVERY": "2", "CHECKPOINT_PATH": "/proc/1/none/c.pt"}, "CHECKPOINT_PATH=/proc/1/none/c.pt: its folder cannot be written"),
    ("ARTIFACT:missing", {"EVAL_ONLY": "1", "ARTIFACT": "/nonexistent.ptz"}, "ARTIFACT=/nonexistent.ptz: no such artifact"),
    ("RESUME:missing", {"RESUME": "/nonexistent.pt"}, "RESUME=/nonexistent.pt: no such checkpoint"),
    ("DISTILL_TEACHER:missing", {"DISTILL_TEACHER": "/nonexistent.ptz"}, "DISTILL_TEACHER=/nonexistent.ptz: no such artifact"),
]

COMBINATION_CASES = [
    ("heads:divide", {"MODEL_DIM": "66", "NUM_HEADS": "4"}, "MODEL_DIM=66: not divisible by NUM_HEADS=4"),
    ("heads:rope", {"MODEL_DIM": "48", "NUM_HEADS": "16", "NUM_KV_HEADS": "2"}, "head dim MODEL_DIM/NUM_HEADS=3 must be even for RoPE"),
    ("kv_heads:divide", {"NUM_KV_HEADS": "3"}, "NUM_KV_HEADS=3: must divide NUM_HEADS=4"),
    ("world:divide8", {"WORLD_SIZE": "3", "GRAD_ACCUM_STEPS": "0"}, "WORLD_SIZE=3: must divide 8"),
    ("batch:divide", {"TRAIN_BATCH_TOKENS": "1000"}, "TRAIN_BATCH_TOKENS=1000: must be a multiple of"),
    ("val_batch:small", {"VAL_BATCH_SIZE": "32"}, "VAL_BATCH_SIZE=32: must hold at least one TRAIN_SEQ_LEN window"),
    ("stride:context", {"EVAL_STRIDE": "65"}, "EVAL_STRIDE=65: larger than TRAIN_SEQ_LEN=64"),
    ("LORA_RANKS:length", {"FREEZE_MODE": "lowrank", "LORA_RANKS": "4,4,4"}, "needs 2 positive ranks (one per layer, NUM_LAYERS=2), got 3"),
    ("LORA_RANKS:zero", {"FREEZE_MODE": "lowrank", "LORA_RANKS": "4,0"}, "needs 2 positive ranks"),
    ("LORA_RANKS:mode", {"FREEZE_MODE": "mask", "LORA_RANKS": "4,4"}, "LORA_RANKS='4,4': applies to FREEZE_MODE=adapter or lowrank, not mask"),
    ("LORA_RANK:dims", {"FREEZE_MODE": "adapter", "LORA_RANK": "40"}, "LORA_RANK=40: above the smallest targeted projection dimension 32"),
    ("correction:proj_learned", {"FREEZE_MODE": "frozen", "FREEZE_TARGETS": "fc", "FROZEN_CORRECTION_RANK": "4"}, "FROZEN_CORRECTION_RANK=4: needs FREEZE_MODE=frozen with both fc and proj"),
    ("correction:mode", {"FREEZE_MODE": "lowrank", "FROZEN_CORRECTION_RANK": "4"}, "FROZEN_CORRECTION_RANK=4: needs FREEZE_MODE=frozen"),
    ("targets:none", {"FREEZE_TARGETS": "fc"}, "FREEZE_TARGETS='fc': has no effect with FREEZE_MODE=none"),
    ("progressive:mode", {"FREEZE_MODE": "adapter", "PROGRESSIVE_FREEZE_FRAC": "0.5"}, "PROGRESSIVE_FREEZE_FRAC=0.5: trains the targets as dense matrices"),
    ("mask:temps", {"FREEZE_MODE": "mask", "MASK_TEMP_START": "0.1", "MASK_TEMP_END": "0.5"}, "MASK_TEMP_END=0.5: must not exceed MASK_TEMP_START=0.1"),
    ("vocab:tokenizer", {"VOCAB_SIZE": "512"}, "vocabulary of 1024 tokens, but VOCAB_SIZE=512"),
]


def shard_cases(root: Path):
    """Broken shard folders, made here; each case points DATA_PATH at one."""
    good_val = np.arange(5, 900, dtype=np.uint16)
    good_train = np.arange(5, 3000, dtype=np.uint16) % 1000
    specs = {
        "missing": None,
        "no_val": {"d_train_000000.bin": ("good", good_train)},
        "no_train": {"d_val_000000.bin": ("good", good_val)},
        "val_empty_file": {"d_val_000000.bin": ("raw", b"")},
        "val_truncated": {"d_val_000000.bin": ("cut", good_val)},
        "val_magic": {"d_val_000000.bin": ("magic", good_val)},
        "val_version": {"d_val_000000.bin": ("version", good_val)},
        "val_odd_size": {"d_val_000000.bin": ("odd", good_val)},
        "val_token_range": {"d_val_000000.bin": ("good", np.append(good_val, 1024).astype(np.uint16))},
        "train_magic": {"d_train_000001.bin": ("magic", good_train)},
        "train_token_range": {"d_train_000000.bin": ("good", np.append(good_train, 5000).astype(np.uint16))},
        "val_too_short": {"d_val_000000.bin": ("good", good_val[:10])},
    }
    cases = []
    for name, files in specs.items():
        folder = root / f"shards_{name}"
        expected = {"missing": "no val shards match", "no_val": "no val shards match", "no_train": "no train shards match",
                    "val_empty_file": "0 bytes, shorter than the 1024-byte shard header", "val_truncated": "but the file has",
                    "val_magic": "magic 4242, expected 20240520", "val_version": "version 7, expected 1", "val_odd_size": "but the file has",
                    "val_token_range": "token id 1024 is not below VOCAB_SIZE=1024", "train_magic": "magic 4242, expected 20240520",
                    "train_token_range": "token id 5000 is not below VOCAB_SIZE=1024",
                    "val_too_short": "validation split has 10 tokens, fewer than TRAIN_SEQ_LEN+1=65"}[name]
        if files is not None:
            folder.mkdir()
            base = {"d_train_000000.bin": ("good", good_train), "d_val_000000.bin": ("good", good_val)}
            if name == "no_val":
                base = {}
            if name == "no_train":
                base = {}
            for fname, (how, tokens) in {**base, **files}.items():
                path = folder / fname
                if how == "raw":
                    path.write_bytes(tokens)
                    continue
                write_shard(path, tokens)
                data = bytearray(path.read_bytes())
                if how == "cut":
                    data = data[:-6]
                elif how == "magic":
                    data[0:4] = np.array([4242], dtype="<i4").tobytes()
                elif how == "version":
                    data[4:8] = np.array([7], dtype="<i4").tobytes()
                elif how == "odd":
                    data += b"\x00"
                path.write_bytes(bytes(data))
        culprit = str(folder)  # the folder, or a file in it
        cases.append((f"shards:{name}", {"DATA_PATH": str(folder)}, expected, culprit))
    return cases


def tokenizer_and_artifact_cases(root: Path, tiny_data: dict, good: dict):
    garbage_tok = root / "garbage.model"
    garbage_tok.write_bytes(b"not a sentencepiece model" * 10)
    data = good["artifact"].read_bytes()
    files = {
        "truncated.ptz": data[: len(data) // 3],
        "flipped.ptz": data[:200] + bytes([data[200] ^ 0x40]) + data[201:],
        "text.ptz": b"this is a README, not an artifact\n",
        "empty.ptz": b"",
    }
    buf = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buf)
    files["foreign.ptz"] = zlib.compress(buf.getvalue())
    marker = root / "CODE_RAN"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    files["code.ptz"] = zlib.compress(pickle.dumps({"meta": {"format": train_gpt.ARTIFACT_FORMAT}, "q": Payload()}, protocol=2))
    for name, blob in files.items():
        (root / name).write_bytes(blob)
    a = lambda name: {"EVAL_ONLY": "1", "ARTIFACT": str(root / name)}
    cases = [
        ("tokenizer:garbage", {"TOKENIZER_PATH": str(garbage_tok)}, "not a SentencePiece model", str(garbage_tok)),
        ("artifact:truncated", a("truncated.ptz"), "not a zlib-compressed artifact (truncated or corrupted)", str(root / "truncated.ptz")),
        ("artifact:flipped_byte", a("flipped.ptz"), "not a zlib-compressed artifact (truncated or corrupted)", str(root / "flipped.ptz")),
        ("artifact:not_an_artifact", a("text.ptz"), "not a zlib-compressed artifact", str(root / "text.ptz")),
        ("artifact:empty", a("empty.ptz"), "not a zlib-compressed artifact", str(root / "empty.ptz")),
        ("artifact:foreign_format", a("foreign.ptz"), "not an artifact of format rlm_int8_zlib_v1", str(root / "foreign.ptz")),
        ("artifact:pickle_with_code", a("code.ptz"), "refused by weights-only loading (UnpicklingError: Trying to load unsupported GLOBAL posix.system", str(root / "code.ptz")),
        ("artifact:other_config", {**a("good.ptz"), "MODEL_DIM": "128"}, "built with MODEL_DIM=64, this run has MODEL_DIM=128", ""),
        ("artifact:other_base_seed", {**a("good.ptz"), "BASE_SEED": "11"}, "built with BASE_SEED=0, this run has BASE_SEED=11", ""),
        ("artifact:other_tokenizer", {**a("good.ptz"), "TOKENIZER_PATH": good["other_tokenizer"]}, "not the tokenizer the artifact", ""),
        ("teacher:corrupted", {"DISTILL_TEACHER": str(root / "flipped.ptz")}, "not a zlib-compressed artifact", str(root / "flipped.ptz")),
        ("resume:artifact_not_checkpoint", {"RESUME": str(root / "good.ptz")}, "not a readable checkpoint", ""),
        ("resume:other_config", {"RESUME": str(good["checkpoint"]), "NUM_LAYERS": "3"}, "written with NUM_LAYERS=2, this run has 3", ""),
        ("resume:other_mode", {"RESUME": str(good["checkpoint"]), "FREEZE_MODE": "lowrank", "LORA_RANK": "4"}, "written with FREEZE_MODE='none', this run has 'lowrank'", ""),
    ]
    return cases, marker


HARNESS = r"""
import contextlib, io, json, os, sys
sys.path.insert(0, sys.argv[1])
import train_gpt
cases, base = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
results = {}
for case_id, env in cases:
    os.environ.clear()
    os.environ.update(base)
    os.environ.update(env)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = train_gpt.cli([])
        except BaseException as e:  # anything but a clean refusal escapes here
            import traceback
            err.write("Traceback (escaped):\n" + traceback.format_exc())
            rc = -1
    results[case_id] = {"rc": rc, "stderr": err.getvalue()}
json.dump(results, open(sys.argv[4], "w"))
"""


@pytest.fixture(scope="module")
def matrix(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    work = root / "work"
    work.mkdir()
    base = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                        "ITERATIONS": "2", "WARMUP_STEPS": "0", "RUN_ID": "fault", "CHECKPOINT_EVERY": "1"})
    # Good files that must survive every case: an artifact, a raw state dict, a checkpoint.
    r = run_train(work, {**base, "ITERATIONS": "2", "CHECKPOINT_PATH": str(work / "good.pt")})
    assert r.returncode == 0, r.stderr[-2000:]
    (root / "good.ptz").write_bytes((work / "final_model.int8.ptz").read_bytes())
    from export_corpus import export
    from conftest import synthetic_documents
    other = export(synthetic_documents(120, seed=9)[20:], synthetic_documents(120, seed=9)[:20], root / "other", "other", 1024, 50_000)
    good = {"artifact": root / "good.ptz", "checkpoint": work / "good.pt",
            "other_tokenizer": str(root / "other" / "tokenizers" / "other_1024_bpe.model")}
    survivors = [work / "final_model.int8.ptz", work / "final_model.pt", work / "good.pt", root / "good.ptz"]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in survivors}
    cases = [(cid, env, text, cid.split(":")[0]) for cid, env, text in variable_cases() + FREE_TEXT_CASES]
    cases += [(cid, env, text, "") for cid, env, text in COMBINATION_CASES]
    cases += shard_cases(root)
    extra, marker = tokenizer_and_artifact_cases(root, tiny_data, good)
    cases += extra
    (root / "cases.json").write_text(json.dumps([[cid, env] for cid, env, _, _ in cases]))
    (root / "base.json").write_text(json.dumps({**base, "CHECKPOINT_EVERY": "0"}))
    (root / "harness.py").write_text(HARNESS)
    r = subprocess.run([sys.executable, str(root / "harness.py"), str(ROOT), str(root / "cases.json"), str(root / "base.json"),
                        str(root / "results.json")], cwd=work, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())
    print(f"\nfault matrix: {len(cases)} bad-input cases")
    return {"cases": {cid: (text, culprit) for cid, _, text, culprit in cases}, "results": results, "marker": marker,
            "before": before, "survivors": survivors}


ALL_IDS = [cid for cid, *_ in variable_cases() + FREE_TEXT_CASES + COMBINATION_CASES] + \
          [f"shards:{n}" for n in ("missing", "no_val", "no_train", "val_empty_file", "val_truncated", "val_magic", "val_version",
                                   "val_odd_size", "val_token_range", "train_magic", "train_token_range", "val_too_short")] + \
          ["tokenizer:garbage", "artifact:truncated", "artifact:flipped_byte", "artifact:not_an_artifact", "artifact:empty",
           "artifact:foreign_format", "artifact:pickle_with_code", "artifact:other_config", "artifact:other_base_seed",
           "artifact:other_tokenizer", "teacher:corrupted", "resume:artifact_not_checkpoint", "resume:other_config", "resume:other_mode"]


@pytest.mark.slow
def test_matrix_size(matrix):
    assert sorted(matrix["cases"]) == sorted(ALL_IDS)
    assert len(ALL_IDS) > 150, len(ALL_IDS)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", ALL_IDS)
def test_bad_input_gives_one_clear_line(matrix, case_id):
    expected, culprit = matrix["cases"][case_id]
    result = matrix["results"][case_id]
    lines = result["stderr"].strip().splitlines()
    assert result["rc"] == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result["stderr"], result["stderr"][-2000:]
    assert expected in lines[0], lines[0]
    assert culprit in lines[0], (culprit, lines[0])


@pytest.mark.slow
def test_no_good_file_was_overwritten_and_no_code_ran(matrix):
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in matrix["survivors"]}
    assert after == matrix["before"]
    assert not matrix["marker"].exists()  # the pickle's payload never executed


# ---- whole runs ----

@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_good_artifact(tiny_data, tmp_path):
    good = b"an earlier good artifact"
    (tmp_path / "final_model.int8.ptz").write_bytes(good)
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "RUN_ID": "nan", "TIED_EMBED_LR": "1e30", "WARMUP_STEPS": "0"})
    r = run_train(tmp_path, env)
    assert r.returncode == 3
    msg = next(l for l in log_lines(tmp_path, "nan") if l.startswith("stopping: non-finite"))
    assert msg.startswith("stopping: non-finite train_loss:nan at step:") and msg.endswith("/12; no artifact written")
    assert (tmp_path / "final_model.int8.ptz").read_bytes() == good and not (tmp_path / "final_model.pt").exists()


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tiny_data, tmp_path):
    """A checkpoint of a few tens of MB written every step; the process is killed while a
    temporary file is being written; the checkpoint left in place must load and resume."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "RUN_ID": "kill", "ITERATIONS": "400", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0",
                       "CHECKPOINT_EVERY": "1", "MODEL_DIM": "256", "NUM_LAYERS": "4", "NUM_HEADS": "4", "TRAIN_BATCH_TOKENS": "512",
                       "TRAIN_SEQ_LEN": "64", "GRAD_ACCUM_STEPS": "1"})
    caught = False
    for attempt in range(5):
        work = tmp_path / f"try{attempt}"
        work.mkdir()
        proc = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        folder, deadline = work / "checkpoints", time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if folder.exists() and (folder / "kill.pt").exists() and list(folder.glob(".kill.pt.tmp*")):
                proc.send_signal(signal.SIGKILL)
                caught = True
                break
            time.sleep(0.001)
        proc.wait()
        if caught:
            break
    assert caught, "never saw a checkpoint being written"
    assert list(folder.glob(".kill.pt.tmp*"))  # the half-written file is there ...
    step = torch.load(folder / "kill.pt", weights_only=True)["step"]  # ... and the last good checkpoint loads
    # ITERATIONS is not part of the checkpoint's configuration: the run continues from `step` to step + 2.
    r = run_train(work, {**env, "RESUME": str(folder / "kill.pt"), "ITERATIONS": str(step + 2), "CHECKPOINT_EVERY": "0", "RUN_ID": "resumed"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed:{folder / 'kill.pt'} step:{step}" in " ".join(log_lines(work, "resumed"))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["torchrun", "one_rank"])
def test_sigterm_under_torchrun_ends_every_rank(tiny_data, tmp_path, target):
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "RUN_ID": "term", "ITERATIONS": "100000", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0"})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = tmp_path / "logs" / "term.txt"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "step:3/" in log.read_text()):
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    os.kill(proc.pid if target == "torchrun" else int(workers[-1]), signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("torchrun did not exit within 60 s of SIGTERM")
    assert rc != 0
    time.sleep(1)
    alive = [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text().lower()]
    assert not alive, alive
    if target == "torchrun":  # rank 0 received it too, and said so
        assert any(l.startswith("stopping: SIGTERM at step:") for l in log_lines(tmp_path, "term"))
    assert not (tmp_path / "final_model.int8.ptz").exists()
