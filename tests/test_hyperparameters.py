"""HYPERPARAMETERS: every variable read from the environment and validated up front."""

import re
import subprocess
import sys

import pytest

import train_gpt
from conftest import ROOT, SCRIPT, TINY_MODEL, clean_env, older_python, run_with_stderr_records
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



LONG = 5000  # a file's text pasted into a variable (`NUM_LAYERS=$(cat notes.txt)`): each check used to quote all of it
@pytest.mark.parametrize("name, value_of_length, culprit", [  # value_of_length(n): a refused value of n characters
    ("NUM_LAYERS", lambda n: "x" * n, "not an integer"),
    ("NUM_LAYERS", lambda n: "1" * n, "not an integer"),  # past int()'s 4,300 digits
    ("NUM_LAYERS", lambda n: "1" * (n - 1000), "out of range; accepted 1 to 1024"),  # read, too many
    ("MATRIX_LR", lambda n: "1" * n, "not a finite number"),
    ("MATRIX_LR", lambda n: "x" * n, "not a number"),
    ("COMPILE", lambda n: "y" * n, "unknown value; accepted: auto, 0, 1"),
    ("DATA_PATH", lambda n: "~" * n, "left unexpanded"),
    ("DATA_PATH", lambda n: "a" * (n - 1) + "\r", "holds a control character"),
    ("RUN_ID", lambda n: "a" * n, "accepted 1 to 200 letters"),
])
def test_a_long_value_is_quoted_by_its_start_and_length(name, value_of_length, culprit):
    value = value_of_length(LONG)
    with pytest.raises(ConfigError) as e:
        Hyperparameters({name: value})
    assert re.fullmatch(rf"{name}='{re.escape(value[:60])}'\.\.\. \({len(value):,} characters\): .*{culprit}.*", str(e.value)), str(e.value)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("name, value, quoted", [("COMPILE", "y" * 100, "'" + "y" * 100 + "'"), ("NUM_LAYERS", "1" * 100, "1" * 100),
                                                 ("DATA_PATH", "~" * 100, "'" + "~" * 100 + "'")])
def test_a_value_of_up_to_100_characters_is_quoted_whole(name, value, quoted):
    with pytest.raises(ConfigError, match=f"^{re.escape(name + '=' + quoted)}: "):
        Hyperparameters({name: value})


def test_a_long_value_of_a_misspelt_variable_is_quoted_by_its_start_and_length():
    assert Hyperparameters({"NUM_LAYER": "9" * LONG}).misspelt == [f"NUM_LAYER={'9' * 60}... ({LONG:,} characters) is not a variable of "
                                                                   "train_gpt.py, so this run ignores it; did you mean NUM_LAYERS?"]
    assert Hyperparameters({"NUM_LAYER": "9" * 100}).misspelt[0].startswith(f"NUM_LAYER={'9' * 100} is not")  # short: whole

@pytest.mark.parametrize("world, env, culprit", [
    (3, {}, "WORLD_SIZE=3: must divide 8"),
    (2, {"TRAIN_BATCH_TOKENS": "1000"}, "TRAIN_BATCH_TOKENS=1000: must be a multiple of world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN = 8192"),
    (8, {"VAL_BATCH_SIZE": "4096"}, "VAL_BATCH_SIZE=4096: must hold 8 TRAIN_SEQ_LEN windows (8192): a rank evaluates 1/8 of it at a time"),
    (1, {"VAL_BATCH_SIZE": "4096"}, "VAL_BATCH_SIZE=4096: must hold 8 TRAIN_SEQ_LEN windows (8192)"),  # the house's split, at any world size
    (16, {"GRAD_ACCUM_STEPS": "1", "TRAIN_BATCH_TOKENS": "16384", "VAL_BATCH_SIZE": "8192"}, "VAL_BATCH_SIZE=8192: must hold 16 TRAIN_SEQ_LEN "
     "windows (16384): a rank evaluates 1/16 of it"),
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


# (variable, a value other than its default, settings where it cannot act, settings where it acts)
INERT = [
    ("LORA_RANK", "8", {}, {"FREEZE_MODE": "adapter"}),
    ("LORA_RANKS", "8", {"FREEZE_MODE": "mask"}, {"FREEZE_MODE": "lowrank"}),
    ("LORA_RANKS_ATTN", "8", {"FREEZE_MODE": "frozen"}, {"FREEZE_MODE": "adapter"}),
    ("LORA_RANKS_MLP", "8..4", {}, {"FREEZE_MODE": "lowrank"}),
    ("MASK_LR", "0.1", {"FREEZE_MODE": "adapter"}, {"FREEZE_MODE": "mask"}),
    ("MASK_INIT_SCORE", "2", {}, {"FREEZE_MODE": "mask"}),
    ("MASK_TEMP_START", "2", {"FREEZE_MODE": "lowrank"}, {"FREEZE_MODE": "mask"}),
    ("MASK_TEMP_END", "0.05", {}, {"RECIPE": "supermask"}),
    ("BASE_SEED", "5", {"FREEZE_MODE": "lowrank"}, {"FREEZE_MODE": "frozen"}),
    ("BASE_INIT", "uniform", {}, {"FREEZE_MODE": "adapter"}),
    ("TIED_EMBED_LR", "0.1", {"TIE_EMBEDDINGS": "0"}, {}),
    ("TIED_EMBED_LR", "0.1", {"RECIPE": "supermask"}, {"RECIPE": "supermask", "BIGRAM_BUCKETS": "64"}),  # the bigram table trains at it
    ("EMBED_LR", "0.1", {}, {"TIE_EMBEDDINGS": "0"}),
    ("HEAD_LR", "0.1", {}, {"TIE_EMBEDDINGS": "0"}),
    ("TIED_EMBED_INIT_STD", "0.01", {"RECIPE": "supermask"}, {"TIE_EMBEDDINGS": "0"}),
    ("EMBED_FP16", "1", {"RECIPE": "supermask"}, {}),
    ("BIGRAM_DIM", "64", {}, {"BIGRAM_BUCKETS": "64"}),
    ("EMA_START_STEP", "5", {}, {"EMA_DECAY": "0.9"}),
    ("DISTILL_ALPHA", "0.2", {}, {"DISTILL_TEACHER": "teacher.ptz"}),
    ("DISTILL_TEMP", "3", {}, {"DISTILL_TEACHER": "teacher.ptz"}),
    ("EVAL_BATCH_SEQS", "4", {}, {"EVAL_STRIDE": "64"}),
    ("CHECKPOINT_PATH", "c.pt", {}, {"CHECKPOINT_EVERY": "10"}),
    ("COMPILE_BACKEND", "eager", {"COMPILE": "0"}, {"COMPILE": "1"}),
]


def test_a_variable_that_cannot_act_is_named_in_a_warning():
    """Set where it cannot act (even to its default), a variable gets one warning that names it, what it needs and this run's
    value of that; the run goes on (a sweep over modes may set it for all). Where it acts, or set by the recipe, no warning."""
    assert {name for name, *_ in INERT} == {n for names, *_ in train_gpt.NO_EFFECT_UNLESS for n in names.split()}
    for name, value, inert, acting in INERT:
        (warning,) = Hyperparameters({**inert, name: value}).no_effect
        assert re.fullmatch(rf"{name}={re.escape(value)} has no effect: it needs .+; this run has [A-Z_]+=.+", warning), warning
        assert Hyperparameters({**acting, name: value}).no_effect == [], (name, acting)
    assert Hyperparameters({}).no_effect == []
    # the recipe's rank acts in its own mode; switched to frozen, the rank is the recipe's, not a mistake of this command line
    assert Hyperparameters({"RECIPE": "mlp_adapter_12l_r160", "FREEZE_MODE": "frozen"}).no_effect == []
    assert Hyperparameters({"LORA_RANK": "8", "MASK_LR": "0.2"}).no_effect == [
        "LORA_RANK=8 has no effect: it needs FREEZE_MODE=adapter or lowrank; this run has FREEZE_MODE=none",
        "MASK_LR=0.2 has no effect: it needs FREEZE_MODE=mask; this run has FREEZE_MODE=none"]


def test_a_misspelt_variable_is_named_in_a_warning_with_the_variable_meant(tiny_data, tmp_path):
    """`NUM_LAYER=12 torchrun ... train_gpt.py` trained the 9-layer default without a word: a name that is nearly one of ours
    (a letter off, another case, an underscore dropped) gets a warning naming the variable meant, and the run goes on (SEEDS
    may be a wrapper's own). What a shell, torchrun, CUDA or the other scripts set is no near miss."""
    for name in train_gpt.ENV_NAMES:
        for typo in {name.lower(), name[:-1] if name.endswith("S") else name + "S", name.replace("_", "", 1)} - set(train_gpt.ENV_NAMES):
            assert Hyperparameters({typo: "1"}).misspelt == [f"{typo}=1 is not a variable of train_gpt.py, so this run ignores it; "
                                                              f"did you mean {name}?"]
    theirs = {"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
              "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "0", "NCCL_DEBUG": "INFO", "HF_HOME": "/tmp/hf", "PATH": "/bin",
              "MATCHED_FINEWEB_REPO_ID": "a/b", "TORCHINDUCTOR_CUDAGRAPHS": "1", "TTT_ENABLED": "1", "EVAL_SEQ_LEN": "2048"}
    assert Hyperparameters(theirs).misspelt == []
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                       env=clean_env(**{**TINY_MODEL, "ITERATIONS": "1", "NUM_LAYER": "3", "DATA_PATH": tiny_data["data_path"],
                                        "TOKENIZER_PATH": tiny_data["tokenizer_path"]}))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "warning: NUM_LAYER=3 is not a variable of train_gpt.py, so this run ignores it; did you mean NUM_LAYERS?" in r.stdout.splitlines()


def test_bad_variable_stops_the_script_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, env=clean_env(NUM_HEADS="7"), capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: MODEL_DIM=512: not divisible by NUM_HEADS=7"
    assert r.stdout == "" and not (tmp_path / "logs").exists()  # stopped before any work


@pytest.mark.parametrize("version, refused", [
    ("2.4.1+cu121", True), ("1.13.1", True), ("2.4", True),  # 2.4.1's CUDA build failed at the first attention, a TypeError (README)
    ("2.5.0", False), ("2.5.1+cu124", False), ("2.13.0+cpu", False), ("2.6.0a0+git1234", False),
    ("2.10.0.dev20251201", False),  # as text "2.10" < "2.5": the comparison must be by numbers
])
def test_a_torch_older_than_the_floor_is_one_line(version, refused):
    if refused:
        with pytest.raises(ConfigError) as e:
            train_gpt.check_torch(version)
        assert str(e.value).startswith(f"PyTorch {version}: too old for train_gpt.py; accepted 2.5 or newer (pip install -U torch")
    else:
        train_gpt.check_torch(version)
    train_gpt.check_torch(train_gpt.torch.__version__)  # the torch the suite runs on


@pytest.mark.parametrize("minor", [8, 9])
def test_a_python_older_than_3_10_is_one_line(tmp_path, minor):
    """RHEL 9's python3 is 3.9, Ubuntu 20.04's 3.8: the script failed at import, in a TypeError from a `bytes | None` signature
    (with torch there) or a ModuleNotFoundError. Now one line before any import, exit 2; a Python too old to parse the script
    (3.7, which lacks `:=`) still fails in a SyntaxError, as any program would."""
    python = older_python(minor) or pytest.skip(f"no Python 3.{minor} here")
    r = subprocess.run([python, str(SCRIPT)], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True).stdout.strip()
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: Python {version}: too old for train_gpt.py; accepted 3.10 or newer\n")


def test_requirements_name_the_torch_floor_the_script_checks():
    floor = re.search(r"^torch>=(\d+)\.(\d+)$", (ROOT / "requirements.txt").read_text(), flags=re.M)
    assert floor and tuple(map(int, floor.groups())) == train_gpt.check_torch.__defaults__[0]


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, *_ in train_gpt.ENV_VARS if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document {missing}"
    # and its table is --env-help's, row for row: a default, range or meaning changed in the script shows here
    assert "\n" + train_gpt.env_help() + "\n" in readme, "README.md's variable table differs from `python3 train_gpt.py --env-help`"


def test_env_help_lists_every_variable():
    out = subprocess.run([sys.executable, str(SCRIPT), "--env-help"], capture_output=True, text=True, check=True).stdout
    names = re.findall(r"^\| `([A-Z0-9_]+)`", out, flags=re.M)
    assert names == [name for name, *_ in train_gpt.ENV_VARS]


ARGUMENTS = {  # what people pass on the command line, and what the script says (before any work)
    "an_option": (["--iterations", "100"], 2, "error: train_gpt.py takes no arguments (got --iterations 100); its settings are environment "
                  "variables: NAME=VALUE python train_gpt.py (--env-help lists them)\n"),
    "a_variable": (["ITERATIONS=100"], 2, "error: train_gpt.py takes no arguments (got ITERATIONS=100); its settings are environment "
                   "variables: NAME=VALUE python train_gpt.py (--env-help lists them)\n"),
    "launchs_local_rank": (["--local-rank=0"], 2, "error: ITERATIONS='x': not an integer\n"),  # taken, and the run goes on to its checks
    "launchs_old_spelling": (["--local_rank=0"], 2, "error: ITERATIONS='x': not an integer\n")}


@pytest.mark.parametrize("given", ARGUMENTS)
def test_an_argument_is_refused_in_one_line_since_the_settings_are_variables(tmp_path, given):
    """`python train_gpt.py --iterations 100` (or `torchrun ... train_gpt.py ITERATIONS=100`) started the default run, the argument
    ignored: on a GPU box, the whole baseline. Now one line says where settings go; torch.distributed.launch's --local-rank=N, which
    LOCAL_RANK repeats, is taken. (ITERATIONS=x stops a run that gets past its arguments before any work.)"""
    argv, status, said = ARGUMENTS[given]
    r = subprocess.run([sys.executable, str(SCRIPT), *argv], cwd=tmp_path, env=clean_env(ITERATIONS="x"), capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (status, "", said)
    assert not (tmp_path / "logs").exists()


def test_the_error_line_is_one_write_since_torchruns_ranks_share_stderr(tmp_path):
    """torchrun starts each rank as `python -u train_gpt.py`, whose stderr passes every write call straight on: print() wrote the
    line and its newline in two, and two ranks refusing the same variable at once gave `error: ITERATIONS='abc': not an
    integererror: ITERATIONS='abc': not an integer` and an empty line (the suite under Debian's Python, 2026-12-06). One write now."""
    r, records = run_with_stderr_records([sys.executable, "-u", str(SCRIPT)], cwd=tmp_path, env=clean_env(ITERATIONS="x"), timeout=120)
    assert (r.returncode, r.stdout, records) == (2, "", [b"error: ITERATIONS='x': not an integer\n"])


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_flags_print_the_variables(flag):
    out = subprocess.run([sys.executable, str(SCRIPT), flag], capture_output=True, text=True, check=True).stdout
    assert out == train_gpt.env_help() + "\n"
