"""HYPERPARAMETERS: every variable read from the environment and validated up front."""

import re
import subprocess
import sys

import pytest

import train_gpt
from conftest import ROOT, SCRIPT, clean_env
from train_gpt import ConfigError, Hyperparameters


def test_defaults_are_the_naive_baseline():
    a = Hyperparameters({})
    assert (a.num_layers, a.model_dim, a.num_heads, a.num_kv_heads, a.mlp_hidden, a.vocab_size) == (9, 512, 8, 4, 1024, 1024)
    assert (a.train_seq_len, a.train_batch_tokens, a.iterations, a.warmup_steps, a.warmdown_iters) == (1024, 524288, 20000, 20, 1200)
    assert (a.max_wallclock_seconds, a.tie_embeddings, a.tied_embed_init_std, a.logit_softcap, a.rope_base) == (600.0, 1, 0.005, 30.0, 10000.0)
    assert (a.matrix_lr, a.scalar_lr, a.tied_embed_lr, a.qk_gain_init) == (0.04, 0.04, 0.05, 1.5)
    assert (a.muon_momentum, a.muon_momentum_warmup_start, a.muon_momentum_warmup_steps, a.muon_backend_steps) == (0.95, 0.85, 500, 5)
    assert (a.beta1, a.beta2) == (0.9, 0.95)
    a.check_world(8)
    assert a.grad_accum_steps == 1
    b = Hyperparameters({})
    b.check_world(1)
    assert b.grad_accum_steps == 8


@pytest.mark.parametrize("env, culprit", [
    ({"NUM_LAYERS": "nine"}, "NUM_LAYERS='nine': not an integer"),
    ({"NUM_LAYERS": "2.5"}, "NUM_LAYERS='2.5': not an integer"),
    ({"NUM_LAYERS": "0"}, "NUM_LAYERS=0: out of range"),
    ({"MATRIX_LR": "fast"}, "MATRIX_LR='fast': not a number"),
    ({"MATRIX_LR": "-0.1"}, "MATRIX_LR=-0.1: out of range"),
    ({"MATRIX_LR": "nan"}, "MATRIX_LR='nan': not a finite number"),
    ({"MUON_MOMENTUM": "1.5"}, "MUON_MOMENTUM=1.5: out of range"),
    ({"BETA2": "1"}, "BETA2=1: out of range; accepted 0.0 to 0.999999"),
    ({"TIED_EMBED_LR": "1e39"}, "TIED_EMBED_LR=1e39: out of range"),
    ({"VOCAB_SIZE": "70000"}, "VOCAB_SIZE=70000: out of range"),
    ({"COMPILE": "yes"}, "COMPILE='yes': unknown value; accepted: auto, 0, 1"),
    ({"COMPILE_BACKEND": "tvm"}, "COMPILE_BACKEND='tvm': unknown value"),
    ({"MODEL_DIM": "500"}, "MODEL_DIM=500: not divisible by NUM_HEADS=8"),
    ({"MODEL_DIM": "24", "NUM_HEADS": "8", "NUM_KV_HEADS": "4"}, "head dim MODEL_DIM/NUM_HEADS=3 must be even"),
    ({"NUM_KV_HEADS": "3"}, "NUM_KV_HEADS=3: must divide NUM_HEADS=8"),
    ({"EVAL_STRIDE": "2048"}, "EVAL_STRIDE=2048: larger than TRAIN_SEQ_LEN=1024"),
])
def test_bad_values_name_the_variable(env, culprit):
    with pytest.raises(ConfigError) as e:
        Hyperparameters(env)
    assert culprit in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("world, env, culprit", [
    (3, {}, "WORLD_SIZE=3: must divide 8"),
    (2, {"TRAIN_BATCH_TOKENS": "1000"}, "TRAIN_BATCH_TOKENS=1000: must be a multiple of world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN = 8192"),
    (8, {"VAL_BATCH_SIZE": "4096"}, "VAL_BATCH_SIZE=4096: must hold at least one TRAIN_SEQ_LEN window per rank (8192)"),
])
def test_world_size_checks(world, env, culprit):
    a = Hyperparameters(env)
    with pytest.raises(ConfigError) as e:
        a.check_world(world)
    assert culprit in str(e.value)


def test_three_processes_allowed_with_explicit_accumulation():
    a = Hyperparameters({"GRAD_ACCUM_STEPS": "1", "TRAIN_BATCH_TOKENS": str(3 * 1024)})
    a.check_world(3)
    assert a.grad_accum_steps == 1


def test_empty_value_is_refused_where_it_could_only_mean_a_mistake():
    """An empty number or choice is refused (it used to mean the default, silently); an empty
    text variable means what the table says (RUN_ID: a random id; FREEZE_TARGETS: the mode's)."""
    for name in ("NUM_LAYERS", "ITERATIONS", "FREEZE_MODE", "COMPILE"):
        with pytest.raises(ConfigError, match=f"^{name}='': empty; unset it for the default"):
            Hyperparameters({name: ""})
    assert Hyperparameters({"RUN_ID": "", "FREEZE_TARGETS": ""}).targets == ()


def test_bad_variable_stops_the_script_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, env=clean_env(NUM_HEADS="7"), capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: MODEL_DIM=512: not divisible by NUM_HEADS=7"
    assert r.stdout == "" and not (tmp_path / "logs").exists()  # stopped before any work


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, *_ in train_gpt.ENV_VARS if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_env_help_lists_every_variable():
    out = subprocess.run([sys.executable, str(SCRIPT), "--env-help"], capture_output=True, text=True, check=True).stdout
    names = re.findall(r"^\| `([A-Z0-9_]+)`", out, flags=re.M)
    assert names == [name for name, *_ in train_gpt.ENV_VARS]
