"""QUANTIZATION AND ARTIFACT: the int8 + zlib export and its weights-only round trip."""

import io
import pickle
import random
import subprocess
import sys
import zlib

import pytest
import torch

from conftest import ROOT, TINY_MODEL, clean_env, log_lines, run_train, write_artifact
from train_gpt import (KEEP_FLOAT_MAX_NUMEL, GPT, ArtifactError, ConfigError, Hyperparameters, artifact_bytes, build_model, build_optimizers,
                       dequantize_state_dict, model_from_artifact, quantize_rows_int8, quantize_state_dict, read_artifact, regenerated_checksums)


def test_scale_floor_is_the_houses():
    """The house clamps per-row scales at 1/127: rows whose clip value is below 1 are stored
    with a step of 1/127 (trained weights are large enough for this to cost little)."""
    q, scale = quantize_rows_int8(torch.full((3, 10), 0.02))
    assert torch.allclose(scale.float(), torch.full((3,), 1 / 127), rtol=1e-3) and (q == 3).all()


def test_int8_rows_error_is_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(64, 300) * torch.linspace(0.5, 3.0, 64)[:, None]
    q, scale = quantize_rows_int8(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float16 and q.abs().max() <= 127
    clip = torch.quantile(w.abs(), 0.9999984, dim=1)
    clipped = torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None])
    err = (q.float() * scale.float()[:, None] - clipped).abs()
    assert (err <= scale.float()[:, None] / 2 + 1e-6).all()


def test_outliers_are_clipped_per_row():
    w = torch.randn(2, 2_000_000)  # the percentile drops about 3 values a row at this size
    w[0, 5] = 1e4  # one extreme value should not blow up the row's scale
    q, scale = quantize_rows_int8(w)
    assert scale[0].item() < 1.0 and q[0, 5].item() == 127


def test_state_dict_rules_follow_the_house():
    big = torch.randn(300, 300)                           # 90,000 > 65,536: int8 per row
    small = torch.randn(KEEP_FLOAT_MAX_NUMEL)             # kept as fp16
    control = torch.randn(2, 512)                         # control tensor: kept fp32
    vec3d = torch.randn(10, 100, 100)                     # large, not 2-D: int8, one scale
    ints = torch.arange(10)
    state = {"blocks.0.mlp.fc.weight": big, "tok_emb.weight": small, "blocks.0.resid_mix": control, "x.conv": vec3d, "ids": ints}
    blob, stats = quantize_state_dict(state)
    assert set(blob["q"]) == {"blocks.0.mlp.fc.weight", "x.conv"} and blob["scale"]["x.conv"].numel() == 1
    assert blob["keep"]["tok_emb.weight"].dtype == torch.float16 and blob["keep"]["blocks.0.resid_mix"].dtype == torch.float32
    assert torch.equal(blob["keep"]["ids"], ints)
    out = dequantize_state_dict(blob)
    assert set(out) == set(state) and all(out[k].shape == state[k].shape for k in state)
    assert torch.equal(out["blocks.0.resid_mix"], control)
    assert (out["blocks.0.mlp.fc.weight"] - big).abs().max() < big.abs().max() / 127
    assert sorted(stats["int8"]) == ["blocks.0.mlp.fc.weight", "x.conv"]


def test_artifact_round_trip_is_weights_only_and_atomic(tmp_path):
    cfg = Hyperparameters({"NUM_LAYERS": "2", "MODEL_DIM": "160", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "MLP_MULT": "4"})
    torch.manual_seed(0)
    model = GPT(cfg)
    with torch.no_grad():  # trained-like magnitudes: rows reach |w| ~ 1 (the house's smallest int8 step is 1/127)
        for p in model.parameters():
            if p.ndim == 2 and p.size(0) > 2:
                p.normal_(0.0, 0.4)
    path = tmp_path / "final_model.int8.ptz"
    n, stats = write_artifact(path, model.state_dict(), {"config": cfg.model_config(), "torch_version": str(torch.__version__)})
    assert path.stat().st_size == n and not list(tmp_path.glob(".*tmp*"))
    assert stats["int8"] == ["tok_emb.weight", "blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight", "blocks.1.mlp.fc.weight", "blocks.1.mlp.proj.weight"]
    state, meta = read_artifact(path)
    assert meta["config"] == cfg.model_config()
    fresh = GPT(cfg)
    fresh.load_state_dict(state, strict=True)
    expected = dequantize_state_dict(quantize_state_dict(model.state_dict())[0])
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    x = torch.randint(0, 1024, (4, 64))
    with torch.no_grad():
        a, b = model(x, x).mean(), fresh(x, x).mean()
    assert abs(a - b) < 0.02 * a


def test_artifact_loading_refuses_bad_files(tmp_path):
    cfg = Hyperparameters({"NUM_LAYERS": "1", "MODEL_DIM": "64", "NUM_HEADS": "2", "NUM_KV_HEADS": "1"})
    good = tmp_path / "good.ptz"
    write_artifact(good, GPT(cfg).state_dict(), {"config": cfg.model_config()})
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
        "not zlib": b"hello world" * 10,
        "other pickle": zlib.compress(pickle.dumps({"a": 1})),
    }

    class Boom:
        def __reduce__(self):
            return (print, ("code ran",))

    buf = io.BytesIO()
    torch.save({"meta": {"format": "rlm_int8_zlib_v1"}, "x": Boom()}, buf)
    cases["pickle carrying code"] = zlib.compress(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"q": {}}, buf)
    cases["foreign format"] = zlib.compress(buf.getvalue())
    for name, blob in cases.items():
        p = tmp_path / f"{name}.ptz"
        p.write_bytes(blob)
        with pytest.raises(ArtifactError) as e:
            read_artifact(p)
        assert f"ARTIFACT={p}" in str(e.value) and "\n" not in str(e.value), name
    with pytest.raises(ConfigError, match="no such artifact"):
        read_artifact(tmp_path / "missing.ptz")


def test_a_stored_configuration_equal_to_this_scripts_is_used_in_this_scripts_types(tmp_path):
    """A stored MLP hidden size of 128.0 equals 128 and passed the check (the stored configuration is read back through the
    variables that make it, and MLP_MULT is its ratio), then built no model: a float where a size goes, a traceback. The model is
    built from this script's own reading of the configuration, with its types."""
    cfg = Hyperparameters({"NUM_LAYERS": "1", "MODEL_DIM": "64", "NUM_HEADS": "2", "NUM_KV_HEADS": "1"})
    config = dict(cfg.model_config(), mlp_hidden=float(cfg.model_config()["mlp_hidden"]))
    write_artifact(path := tmp_path / "float.ptz", GPT(cfg).state_dict(), {"config": config})
    model, meta = model_from_artifact(path)
    assert type(meta["config"]["mlp_hidden"]) is int and meta["config"] == cfg.model_config()
    assert [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in GPT(cfg).parameters()]


def test_int6_blocks_use_31_levels_and_compress_better():
    torch.manual_seed(0)
    state = {f"blocks.{i}.mlp.fc.weight": torch.randn(300, 400) * 2 for i in range(3)}
    state["blocks.10.mlp.fc.weight"] = torch.randn(300, 400) * 2  # block 10 is not block 1
    state["tok_emb.weight"] = torch.randn(1024, 100)
    blob, stats = quantize_state_dict(state, int6_blocks=(1,))
    assert stats["int6"] == ["blocks.1.mlp.fc.weight"] and "blocks.10.mlp.fc.weight" in stats["int8"]
    q6, q8 = blob["q"]["blocks.1.mlp.fc.weight"], blob["q"]["blocks.0.mlp.fc.weight"]
    assert q6.abs().max() == 31 and q8.abs().max() == 127
    out = dequantize_state_dict(blob)
    w, s = state["blocks.1.mlp.fc.weight"], blob["scale"]["blocks.1.mlp.fc.weight"].float()[:, None]
    clip = torch.quantile(w.abs(), 0.9999984, dim=1)[:, None]
    assert ((out["blocks.1.mlp.fc.weight"] - w.clamp(-clip, clip)).abs() <= s / 2 + 1e-6).all()
    from train_gpt import artifact_bytes
    int8_only, _ = artifact_bytes(state, {})
    int6, _ = artifact_bytes(state, {}, int6_blocks=(0, 1, 2, 10))
    assert len(int6) < 0.85 * len(int8_only)


# Every variable that shapes the model or its export, with values small enough for a CPU test: drawn at random (seeded), they make
# combinations no hand-written test names (two mask models with a bigram table and int6 blocks, per-layer adapter ranks untied, ...).
SHAPING = {"NUM_LAYERS": ["1", "2", "3"], "MODEL_DIM": ["16", "32", "48", "64"], "NUM_HEADS": ["1", "2", "4"], "NUM_KV_HEADS": ["1", "2"],
           "MLP_MULT": ["1", "2", "3"], "TIE_EMBEDDINGS": ["0", "1"], "FREEZE_MODE": ["none", "adapter", "frozen", "lowrank", "mask"],
           "FREEZE_TARGETS": ["all", "q,k", "fc", "mlp", "attn", "fc,proj", "all,emb", "v,o", "proj"], "LORA_RANK": ["1", "2", "4", "8"],
           "LORA_RANKS": ["1..4", "4,2,1", "2,2"], "LORA_RANKS_ATTN": ["2", "1..3"], "LORA_RANKS_MLP": ["3"], "FROZEN_CORRECTION_RANK": ["0", "2"],
           "BIGRAM_BUCKETS": ["0", "64"], "BIGRAM_DIM": ["8", "16"], "NUM_MODELS": ["1", "2"], "BASE_INIT": ["gaussian", "xavier_he", "orthogonal",
           "rademacher"], "EMBED_FP16": ["0", "1"], "INT6_LAYERS": ["0", "all"], "PROGRESSIVE_FREEZE_FRAC": ["0", "0.5"], "TRAIN_SEQ_LEN": ["16", "32"]}


def accepted_configurations(count: int, seed: int = 0):
    """The first `count` random environments (each variable set or not, at random) that Hyperparameters accepts, the modes in turn."""
    rng, found, tried, modes = random.Random(seed), [], 0, SHAPING["FREEZE_MODE"]
    while len(found) < count and tried < 50 * count:
        tried += 1
        env = {"VOCAB_SIZE": "64", "SEED": str(tried), **{k: rng.choice(v) for k, v in SHAPING.items() if rng.random() < 0.5},
               "FREEZE_MODE": modes[len(found) % len(modes)]}
        try:
            found.append((env, Hyperparameters(env)))
        except ConfigError:
            continue
    return found


@pytest.mark.slow
def test_every_configuration_the_environment_accepts_steps_exports_and_loads_back_as_the_same_model():
    """A configuration Hyperparameters accepts must not fail later: built, one optimizer step, exported, and read back from its
    artifact bytes alone (the regenerated matrices from their seeds, checked against the stored checksums), the loaded model scores
    exactly what the trained model scores with the artifact's dequantized weights."""
    for env, cfg in accepted_configurations(15):
        torch.manual_seed(0)
        model = build_model(cfg)
        x, y = torch.randint(0, 64, (2, cfg.train_seq_len)), torch.randint(0, 64, (2, cfg.train_seq_len))
        model(x, y).mean().backward()
        for opt in build_optimizers(model, cfg):
            opt.step()
        data = artifact_bytes(model.state_dict(), {"config": cfg.model_config(), "regenerated": regenerated_checksums(model)},
                              cfg.int6_blocks, cfg.embed_fp16, cfg.artifact_codec)[0]
        loaded, _ = model_from_artifact("in-memory.ptz", data=data)
        model.load_state_dict(read_artifact("in-memory.ptz", data=data)[0], strict=False)
        with torch.no_grad():
            assert torch.equal(loaded(x, y), model(x, y)), env


@pytest.mark.slow
def test_an_artifact_of_the_published_record_script_is_scored_as_that_script_scored_it(tiny_data, tmp_path):
    """records/.../2026-11-23_CPUSmokeExample/train_gpt.py is this project as it was published that day (one rank list for both
    projection groups, stored as `ranks`): its artifacts of a dense and an adapter model are read by today's script, which scores
    them to the last digit as the older one did. (Its supermask stored other tensors; such an artifact is refused, naming one.)"""
    older = ROOT / "records/track_non_record_16mb/2026-11-23_CPUSmokeExample/train_gpt.py"
    for mode in ("none", "adapter", "mask"):
        env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"], "ITERATIONS": "3",
                           "VAL_LOSS_EVERY": "0", "FREEZE_MODE": mode, "LORA_RANK": "4", "RUN_ID": f"older_{mode}"})
        work = tmp_path / mode
        work.mkdir()
        made = subprocess.run([sys.executable, str(older)], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert made.returncode == 0, made.stderr[-2000:]
        now = run_train(work, clean_env(DATA_PATH=tiny_data["data_path"], TOKENIZER_PATH=tiny_data["tokenizer_path"], EVAL_ONLY="1",
                                        VAL_BATCH_SIZE=TINY_MODEL["VAL_BATCH_SIZE"], RUN_ID=f"now_{mode}"))
        if mode == "mask":
            assert now.returncode != 0 and "final_model.int8.ptz: its tensors do not match its configuration (first: " in now.stderr
            continue
        assert now.returncode == 0, now.stderr[-2000:]
        exact = lambda run_id: next(l for l in log_lines(work, run_id) if l.startswith("final_int8_zlib_roundtrip_exact ")).split()[:3]
        assert exact(f"now_{mode}") == exact(f"older_{mode}")
