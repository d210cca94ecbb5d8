"""HYPERPARAMETERS and MODEL, issue 12's pieces: recipes by name, per-group rank schedules, the full supermask (masked embedding,
per-head and pre-logit scales, He/Xavier init), fp16 embedding and the artifact codecs."""

import hashlib
import json
import lzma
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

from conftest import ROOT, TINY_MODEL, clean_env, field, live_processes, log_lines, run_train
from train_gpt import (CONTROL_TENSOR_NAMES, RECIPES, ArtifactError, ConfigError, Hyperparameters, MaskedRandomLinear, artifact_bytes, build_model,
                       model_that_fits, quantize_state_dict, random_matrix, read_artifact)

SMALL = {"VOCAB_SIZE": "1024", "NUM_LAYERS": "4", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "TRAIN_SEQ_LEN": "32"}


def test_every_recipe_resolves_builds_and_the_environment_wins():
    counts = {name: sum(p.numel() for p in model_that_fits(Hyperparameters({"RECIPE": name}), name).parameters()) for name in RECIPES}
    assert counts["baseline"] == 17_059_912  # the published baseline's model_params
    frozen = model_that_fits(Hyperparameters({"RECIPE": "selective_freeze_12x384"}), "x")
    fixed = sum(m.base.numel() for m in frozen.modules() if hasattr(m, "base"))
    share = fixed / (fixed + sum(p.numel() for p in frozen.parameters()))
    assert 0.34 < share < 0.38  # the write-up froze 37% of the weights
    a = Hyperparameters({"RECIPE": "adapters_5x512", "NUM_LAYERS": "3"})
    assert (a.num_layers, a.freeze_mode, a.attn_ranks, a.recipe_vars["NUM_LAYERS"]) == (3, "adapter", [16] * 3, "5")
    b = Hyperparameters({"RECIPE": "bigram_hash_7l"})
    assert (b.bigram_buckets, b.rope_base, b.muon_wd, b.train_seq_len, b.eval_stride, b.embed_fp16) == (8192, 50000.0, 0.025, 2048, 512, 1)
    with pytest.raises(ConfigError, match=r"RECIPE='nope': unknown value; accepted: baseline, adapters_5x512"):
        Hyperparameters({"RECIPE": "nope"})


def test_rank_schedules_per_group_and_through_depth():
    h = Hyperparameters({**SMALL, "FREEZE_MODE": "lowrank", "LORA_RANKS_ATTN": "32..8", "LORA_RANKS_MLP": "16"})
    assert (h.attn_ranks, h.mlp_ranks) == ([32, 24, 16, 8], [16] * 4)
    model = build_model(h)
    assert [b.attn.q.A.shape[0] for b in model.blocks] == [32, 24, 16, 8] and {b.mlp.fc.A.shape[0] for b in model.blocks} == {16}
    assert Hyperparameters({**SMALL, "FREEZE_MODE": "adapter", "LORA_RANKS": "8"}).mlp_ranks == [8] * 4
    for env, message in ((dict(FREEZE_MODE="lowrank", LORA_RANKS_MLP="4,4"), "LORA_RANKS_MLP='4,4': 2 ranks for NUM_LAYERS=4; accepted one rank for all"),
                         (dict(FREEZE_MODE="lowrank", LORA_RANKS_ATTN="8..x"), "LORA_RANKS_ATTN='8..x': not a range of integers; accepted one rank for all, one per layer or A..B$"),
                         (dict(FREEZE_MODE="lowrank", LORA_RANKS_ATTN="40"), "LORA_RANKS_ATTN=40: above the smallest targeted projection")):
        with pytest.raises(ConfigError, match=message):
            Hyperparameters({**SMALL, **env})


def test_full_supermask_masks_the_embedding_and_learns_only_masks_and_scales():
    h = Hyperparameters({**SMALL, "RECIPE": "supermask"})
    model = build_model(h)
    assert isinstance(model.tok_emb, MaskedRandomLinear) and model.tok_emb.weight.shape == (1024, 64)
    assert model.logit_scale is not None and all(b.attn.head_scale.shape == (4,) for b in model.blocks)
    learned = {n for n, p in model.named_parameters() if not n.endswith(".scores") and not any(c in n for c in CONTROL_TENSOR_NAMES)}
    assert learned == set()  # every learned tensor is a mask or a scale (per block, per head, per channel, before the logits)
    blob, stats = quantize_state_dict(model.state_dict())
    assert stats["int8"] == [] and "tok_emb.scores" in blob["bits"]
    fc, q = model.blocks[0].mlp.fc.base, model.blocks[0].attn.q.base
    assert fc.abs().max() <= (6 / 64) ** 0.5 and fc.abs().max() > (6 / (64 + 128)) ** 0.5  # He on fc, Xavier elsewhere
    assert q.abs().max() <= (6 / 128) ** 0.5
    assert hashlib.sha256(random_matrix(96, 200, 2024, "he_uniform").numpy().tobytes()).hexdigest() == \
        "7d312a8f09bb55bc2eabb318e2e0ed4b933eb47729a93462144fabd85dade95b"
    with pytest.raises(ConfigError, match="emb .* needs FREEZE_MODE=mask and TIE_EMBEDDINGS=1, not adapter"):
        Hyperparameters({**SMALL, "FREEZE_MODE": "adapter", "FREEZE_TARGETS": "all,emb"})


def importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# run.sh test installs zstandard; where it cannot (an offline GPU box) it says so, and only the zstd codec's case skips.
ZSTD = pytest.param("zstd", marks=pytest.mark.skipif(not importable("zstandard"), reason="zstandard is not installed"))


@pytest.mark.parametrize("codec", ["zlib", "lzma", ZSTD])
def test_codecs_round_trip_are_detected_and_corruption_is_refused(tmp_path, codec):
    h = Hyperparameters({**SMALL, "FREEZE_MODE": "adapter"})
    model = build_model(h)
    data, _ = artifact_bytes(model.state_dict(), {"config": h.model_config(), "regenerated": {}}, codec=codec)
    state, meta = read_artifact(tmp_path / "a", data)
    reference, _ = read_artifact(tmp_path / "a", artifact_bytes(model.state_dict(), {"config": h.model_config(), "regenerated": {}})[0])
    assert meta["codec"] == codec and all(torch.equal(state[k], reference[k]) for k in reference)  # the same weights whatever the codec
    for bad in (data[:-20], data[:60] + bytes([data[60] ^ 1]) + data[61:], data + b"junk"):
        with pytest.raises(ArtifactError, match=f"not a {codec}-compressed artifact"):
            read_artifact(tmp_path / "a", bad)
    with pytest.raises(ArtifactError, match="not a compressed artifact"):
        read_artifact(tmp_path / "a", b"")


def test_a_missing_zstandard_is_one_line_that_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['zstandard'] = None; sys.path.insert(0, %r); import train_gpt as t; "
            "sys.exit(t.cli([]))" % str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=clean_env(ARTIFACT_CODEC="zstd", **SMALL, DATA_PATH=str(tmp_path), TOKENIZER_PATH=str(tmp_path / "t")))
    assert r.returncode == 2 and r.stderr.startswith("error: ARTIFACT_CODEC=zstd: needs the zstandard package; install it with")


def test_fp16_embedding_is_stored_unquantized():
    state = build_model(Hyperparameters({**SMALL, "MODEL_DIM": "128"})).state_dict()  # an embedding above the kept-as-is size
    blob, _ = quantize_state_dict(state, embed_fp16=True)
    assert blob["keep"]["tok_emb.weight"].dtype == torch.float16 and torch.equal(blob["keep"]["tok_emb.weight"], state["tok_emb.weight"].half())
    assert "tok_emb.weight" in quantize_state_dict(state)[0]["q"]


@pytest.mark.slow
def test_a_recipe_run_logs_what_it_resolved_and_its_codec(tiny_data, tmp_path):
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"], "RUN_ID": "rs",
                       "RECIPE": "supermask", "ITERATIONS": "4", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "ARTIFACT_CODEC": "lzma",
                       "EMBED_FP16": "1"})
    r = run_train(tmp_path, env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = log_lines(tmp_path, "rs")
    assert "recipe:supermask FREEZE_MODE=mask FREEZE_TARGETS=all,emb BASE_INIT=xavier_he" in lines
    # the embedding is a masked random matrix, stored as mask bits: EMBED_FP16 cannot act, and the log says so before training
    warning = "warning: EMBED_FP16=1 has no effect: it needs a learned token embedding (no emb in FREEZE_TARGETS); this run has FREEZE_TARGETS=all,emb"
    assert lines.index(warning) < next(i for i, l in enumerate(lines) if l.startswith("step:"))
    config = next(l for l in lines if l.startswith("config: "))
    assert "freeze_mode:mask" in config and "base_init:xavier_he" in config and "num_layers:2" in config
    assert any(l.startswith("Serialized model int8+lzma: ") for l in lines) and any(l.startswith("Total submission size int8+lzma: ") for l in lines)
    exact = next(l for l in lines if l.startswith("final_int8_lzma_roundtrip_exact "))
    data = (tmp_path / "final_model.int8.ptz").read_bytes()
    assert data.startswith(b"\xfd7zXZ") and lzma.decompress(data)
    r = run_train(tmp_path, clean_env(EVAL_ONLY="1", RUN_ID="ev"))
    assert r.returncode == 0, r.stderr[-3000:]
    again = next(l for l in log_lines(tmp_path, "ev") if l.startswith("final_int8_lzma_roundtrip_exact "))
    assert field(again, "val_bpb") == field(exact, "val_bpb")


def test_bench_claims_rows_are_valid_runs_and_verdicts_follow_the_spread():
    """Every row of `bash run.sh bench claims` is a configuration train_gpt.py accepts (a bad row would fail hours into the
    benchmark), and a verdict says 'within the seed spread' exactly when the difference is no larger than the two spreads."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bench_claims as bc
    for quick in (True, False):
        for claim in bc.claims(quick):
            for label, (cfg, timed) in claim["rows"].items():
                env = {**bc.common(quick, timed), **{k: v for k, v in cfg.items() if k != "DISTILL_TEACHER"}}
                assert Hyperparameters(env).num_layers >= 2, (claim["name"], label)
    row = lambda bpb, spread: {"bpb": bpb, "spread": spread, "bytes": 1, "bpbs": [bpb - spread, bpb + spread]}
    rows = {"a": row(2.00, 0.01), "b": row(2.05, 0.01), "c": row(2.015, 0.01)}
    assert [bc.better(rows, "a", x)[1] for x in ("b", "c")] == ["holds", "within the seed spread"]
    assert bc.better(rows, "b", "a")[1] == bc.worse(rows, "a", "b")[1] == "does not hold"
    assert bc.worse(rows, "b", "a", margin=0.05)[1] == "does not hold"  # 2.5% worse, not the 5% claimed
    assert bc.both(bc.better(rows, "a", "b"), bc.better(rows, "a", "c"))[1] == "within the seed spread"
    depth = {f"adapter r16, {n} layers": row(v, 0.001) for n, v in ((2, 2.3), (4, 2.1), (5, 2.12), (8, 2.2), (20, 2.49))}
    assert bc.verdict_depth({**depth, "untrained, 20 layers": row(2.5, 0.0)})[1] == "holds"  # 20 layers made 1/40 of the best's gain
    assert bc.verdict_depth({**depth, "untrained, 20 layers": row(2.9, 0.0)})[1] == "does not hold"


def test_bench_quality_rows_are_valid_runs_and_the_control_is_stored_alike():
    """Every row of `bash run.sh bench quality` is a configuration train_gpt.py accepts; each sweep row that uses issue 12's
    pieces differs from the others; the size-matched control takes the tuned row's codec and fp16 setting and the dense
    shape whose estimate is nearest; a mask row's seed picks its random base (the learned weights' seed cannot vary a mask)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bench_quality as bq
    for budget in bq.BUDGETS.values():
        rows = budget["rows"] + budget["tune"] + [("control", c) for c in budget["controls"]]
        for label, cfg in rows:
            assert Hyperparameters({**bq.common(150), **cfg}).num_layers >= 2, label
        assert len({bq.describe(cfg) for _, cfg in budget["tune"]}) == len(budget["tune"])
    controls = bq.BUDGETS["B"]["controls"]
    tuned = next(cfg for label, cfg in bq.BUDGETS["B"]["tune"] if "fp16" in label)
    control = bq.size_matched_control(controls, {**tuned, "ARTIFACT_CODEC": "lzma"})
    assert control["EMBED_FP16"] == "1" and control["ARTIFACT_CODEC"] == "lzma" and control.get("FREEZE_MODE") is None
    gap = abs(bq.estimate_bytes(control) - bq.estimate_bytes(tuned))
    assert all(gap <= abs(bq.estimate_bytes({**c, "EMBED_FP16": "1"}) - bq.estimate_bytes(tuned)) for c in controls)
    assert bq.estimate_bytes({**controls[0], "EMBED_FP16": "1"}) > bq.estimate_bytes(controls[0])
    mask = next(cfg for label, cfg in bq.BUDGETS["A"]["rows"] if label == "mask")
    one, two = bq.jobs(mask, [1, 2], 150)
    assert (one.env["BASE_SEED"], two.env["BASE_SEED"]) == ("1", "2") and one.folder != two.folder
    assert "BASE_SEED" not in bq.jobs(controls[0], [1], 150)[0].env


def test_bench_flop_count_is_the_dense_models_own_matrices():
    """The FLOP/s columns of `bash run.sh bench` and `bench gpu --peer` count 6 per weight per token of every matrix the dense
    model multiplies (each block's projections once, the tied embedding once as the head) plus causal attention; the count
    once took the embedding, which FREEZE_TARGETS=emb made a projection, once a layer."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bench
    for env in (SMALL, {}, {"NUM_LAYERS": "5", "MLP_MULT": "3", "NUM_KV_HEADS": "8"}):
        cfg = Hyperparameters(env)
        model = build_model(cfg)
        matrices = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and not any(c in n for c in CONTROL_TENSOR_NAMES))
        attention = cfg.num_layers * cfg.num_heads * cfg.train_seq_len * (cfg.model_dim // cfg.num_heads)
        assert bench.dense_step_flops(cfg, 1000) == 6.0 * 1000 * (matrices + attention)


def test_the_benchmarks_demo_is_run_shs_demo():
    """`bash run.sh bench --peer` and `bash run.sh bench` time and score the demo that `bash run.sh` runs: their settings are
    run.sh's cpu_defaults, read from run.sh itself (a demo change that skipped a benchmark would make its README tables wrong)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bench
    import bench_peer
    script = 'eval "$(sed -n "/^default() {/,/^}/p;/^cpu_defaults() {/,/^}/p" run.sh)"; cpu_defaults; env'
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=clean_env(), capture_output=True, text=True, check=True).stdout
    demo = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    ours = {k: v for k, v in {**bench_peer.DEMO, **bench_peer.SHAPES["demo"], **bench_peer.OURS}.items() if k != "TRAIN_LOG_EVERY"}
    assert {k: demo[k] for k in ours} == ours
    assert (demo["TRAIN_BATCH_TOKENS"], demo["GRAD_ACCUM_STEPS"]) == (str(bench.DEMO_BATCH_TOKENS), str(bench.DEMO_MICRO))


def test_run_sh_help_lists_every_command_it_accepts_and_an_unknown_one_names_them():
    """`bash run.sh help` printed a fixed range of its header, and the three commands added below it (sweep, summary, record)
    never showed. Every command of run.sh's case statements, read from run.sh itself, must be in the help; an unknown command
    is one line naming every command, exit 2."""
    text = (ROOT / "run.sh").read_text()
    commands = re.findall(r"^  ([a-z]+)\)$", text, re.M)
    bench = re.findall(r"^      ([a-z]+)\) shift;", text, re.M)
    assert len(commands) >= 8 and "profile" in bench
    shown = subprocess.run(["bash", "run.sh", "help"], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("The entry point.")
    said = [(re.match(r"bash run\.sh ([a-z]+)", l.strip()) or [0, "cpu"])[1] for l in shown.stdout.splitlines() if "bash run.sh" in l]
    assert sorted(set(said)) == sorted(commands), said
    assert all(f"bash run.sh bench {name}" in shown.stdout for name in bench) and "bash run.sh bench --peer P" in shown.stdout
    wrong = subprocess.run(["bash", "run.sh", "tset"], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and wrong.stdout == "" and wrong.stderr.count("\n") == 1
    assert wrong.stderr.startswith("run.sh: unknown command 'tset'; accepted: ") and all(f" {c}" in wrong.stderr for c in commands)



MISPLACED = {  # what people type after `bash run.sh`, and the one line that says where it goes
    "variable_as_command": (["ITERATIONS=100"], "run.sh: ITERATIONS=100: variables go before the command, as in: ITERATIONS=100 bash run.sh"),
    "variables_then_command": (["ITERATIONS=100", "RUN_ID=a b", "cpu"], "run.sh: ITERATIONS=100 RUN_ID=a\\ b: variables go before the command, "
                               "as in: ITERATIONS=100 RUN_ID=a\\ b bash run.sh cpu"),
    "variable_after_cpu": (["cpu", "ITERATIONS=100"], "run.sh: ITERATIONS=100: variables go before the command, as in: ITERATIONS=100 bash run.sh cpu"),
    "option_after_fineweb": (["fineweb", "--variant", "sp8192"], "run.sh fineweb: takes no arguments, got '--variant sp8192'; its settings are "
                             "variables, set before it: NAME=VALUE bash run.sh fineweb")}


@pytest.mark.parametrize("typed", MISPLACED)
def test_run_sh_says_where_a_variable_goes_when_it_is_typed_after_the_command(typed):
    """`bash run.sh cpu ITERATIONS=100` ran the whole 300 s demo, the variable silently ignored (as were `bash run.sh
    fineweb --variant sp8192`'s options), and `bash run.sh ITERATIONS=100` was an unknown command: each is now refused, before
    anything is installed or run, in one line that shows the command as it should have been typed."""
    args, said = MISPLACED[typed]
    r = subprocess.run(["bash", "run.sh", *args], cwd=ROOT, env=clean_env(DATA_PATH="no_such_folder"), capture_output=True, text=True,
                       timeout=60)  # the DATA_PATH: where the variable is ignored again, the run it starts ends at once, not in 300 s
    assert (r.returncode, r.stdout, r.stderr) == (2, "", said + "\n")


def test_run_sh_offline_says_pip_could_not_install_not_that_no_release_exists(tmp_path):
    """On a laptop without a network (or behind a proxy pip is not told of), `bash run.sh` ended on pip's last words, `No matching
    distribution found for torch==2.13.0`, as if that release did not exist, with pip's exit status 1. Now one line of run.sh's
    follows, saying what pip could not install, into which Python, and what is accepted; exit 2, before anything is run. The
    index is a real pip's, pointed at a port where nothing listens."""
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "v")], check=True, capture_output=True, timeout=120)
    offline = dict(PYTHON=str(tmp_path / "v" / "bin" / "python"), PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="", PIP_RETRIES="0",
                   PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_EXTRA_INDEX_URL="", TORCH_SPEC="torch==2.13.0")  # on a GPU box too
    r = subprocess.run(["bash", "run.sh"], cwd=ROOT, env=clean_env(**offline), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "", r.stderr[-2000:]
    assert r.stderr.splitlines()[-1] == (f"run.sh: pip could not install torch==2.13.0 into {tmp_path / 'v' / 'bin' / 'python'} (pip's "
                                         "reason above; offline, it says no release matches); accepted: a network that reaches PyPI (or "
                                         "the index PIP_INDEX_URL names), or the package installed beforehand; nothing was run")


def test_run_sh_called_by_a_relative_path_or_through_a_link_finds_its_project(tmp_path):
    """`bash main/run.sh help` from the folder above read main/run.sh from inside main/ and printed nothing but sed's complaint, and
    a link to run.sh (~/bin/pg) took the link's folder for the project. Both now find the project that holds run.sh itself."""
    help_text = subprocess.run(["bash", "run.sh", "help"], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60).stdout
    (tmp_path / "pg").symlink_to(ROOT / "run.sh")
    (tmp_path / "run.txt").write_text("final_int8_zlib_roundtrip_exact val_loss:2.50000000 val_bpb:1.48000000\n")
    for cwd, script in ((ROOT.parent, f"{ROOT.name}/run.sh"), (tmp_path, "pg")):
        shown = subprocess.run(["bash", script, "help"], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and shown.stdout == help_text and shown.stderr == "", shown.stderr
    r = subprocess.run(["bash", "pg", "summary", "run.txt", "--format", "csv"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("run,1.4800,"), r.stderr


def test_run_sh_bench_takes_the_peer_flag_anywhere_among_its_arguments(tmp_path):
    """`bash run.sh bench --steps 4 --peer P` and `bench gpu --dry-run --peer P` went to the benchmarks without a peer, whose
    argparse refused `--peer` as unknown: --peer (or --peer=P) anywhere picks the side-by-side benchmark, CPU or GPU."""
    missing = tmp_path / "peer.py"
    for args in (["--steps", "4", "--peer", str(missing)], [f"--peer={missing}"], ["gpu", "--dry-run", "--peer", str(missing)]):
        r = subprocess.run(["bash", "run.sh", "bench", *args], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and f"error: bench_peer: --peer {missing}: not a file" in r.stderr, r.stderr
        assert "unrecognized arguments" not in r.stderr


def test_run_sh_fineweb_refuses_missing_shards_a_bad_nproc_and_a_bad_variable_in_one_line(tmp_path):
    """`bash run.sh fineweb` checks before torchrun starts: no shards in DATA_PATH, NPROC that is not a count (it was passed to
    a shell test as it was, and on to torchrun), and train_gpt.py's variables and evaluation data against NPROC processes: each
    process printed a bad variable's line (a missing tokenizer's, and a teacher's, until 2026-12-05), then torchrun its 40-line report
    of their exits."""
    from export_corpus import write_shard
    write_shard(tmp_path / "fineweb_val_000000.bin", np.zeros(16, dtype=np.uint16))
    (tmp_path / "big").mkdir()
    write_shard(tmp_path / "big" / "fineweb_val_000000.bin", np.zeros(20_000, dtype=np.uint16))
    big = {"DATA_PATH": str(tmp_path / "big"), "NPROC": "2"}
    tok = {"TOKENIZER_PATH": str(ROOT / "data" / "tokenizers" / "shakespeare_1024_bpe.model")}  # the embedded corpus's: 1,024 tokens
    peer = ROOT / "tests" / "fixtures" / "peer_artifact" / "peer_final_model.int8.ptz"
    for env, said in (({"DATA_PATH": str(tmp_path / "none")}, f"run.sh: no FineWeb shards in DATA_PATH={tmp_path / 'none'}; fetch them with"),
                      ({"DATA_PATH": str(tmp_path), "NPROC": "abc"}, "run.sh: NPROC=abc: accepted a count of processes (1, 2, ...)"),
                      ({"DATA_PATH": str(tmp_path), "NPROC": "0"}, "run.sh: NPROC=0: accepted a count of processes"),
                      ({"DATA_PATH": str(tmp_path), "NPROC": "2", "ITERATIONS": "abc"}, "error: ITERATIONS='abc': not an integer"),
                      ({"DATA_PATH": str(tmp_path), "NPROC": "3"}, "error: WORLD_SIZE=3: must divide 8 (1, 2, 4 or 8 processes)"),
                      ({"DATA_PATH": str(tmp_path), "NPROC": "2", "TRAIN_BATCH_TOKENS": "1000"}, "error: TRAIN_BATCH_TOKENS=1000: must be a "
                       "multiple of world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN = 8192"),
                      # the evaluation data: no tokenizer at the default path, one of another vocabulary, a split shorter than a window
                      (big, f"error: TOKENIZER_PATH=./data/tokenizers/fineweb_1024_bpe.model: no such file (relative paths are to {ROOT}); "
                       "build or fetch the data first (`bash run.sh data`)"),
                      ({**big, **tok, "VOCAB_SIZE": "8192"}, f"error: TOKENIZER_PATH={tok['TOKENIZER_PATH']}: vocabulary of 1024 tokens, but "
                       "VOCAB_SIZE=8192"),
                      ({"DATA_PATH": str(tmp_path), "NPROC": "2", **tok}, f"error: DATA_PATH={tmp_path}: validation split has 16 tokens, fewer "
                       "than TRAIN_SEQ_LEN+1=1025"),
                      # without a GPU, each process's micro-step against its share of the free memory (the 9 x 512 model, counted)
                      ({**big, **tok, "TRAIN_BATCH_TOKENS": str(2**33)}, f"error: TRAIN_BATCH_TOKENS={2**33}: a "
                       f"micro-step of {2**33 // 8 // 1024} sequences of 1024 tokens needs about"),
                      # and the largest evaluation batch: 18,433 sliding windows of 20,000 validation tokens, half a process
                      ({**big, **tok, "TRAIN_BATCH_TOKENS": "16384", "EVAL_STRIDE": "1", "EVAL_BATCH_SEQS": str(1 << 20)},
                       f"error: EVAL_BATCH_SEQS={1 << 20}: an evaluation batch of 9217 sequences of 1024 tokens needs about"),
                      # a teacher to distil from (until 2026-12-05 read only by each process): none there, the challenge script's artifact
                      ({**big, **tok, "DISTILL_TEACHER": str(tmp_path / "teacher.ptz")}, f"error: DISTILL_TEACHER={tmp_path / 'teacher.ptz'}: "
                       "no such artifact"),
                      ({**big, **tok, "DISTILL_TEACHER": str(peer)}, f"error: DISTILL_TEACHER={peer}: not an artifact of format rlm_int8_zlib_v1 "
                       "but int8_clean_per_row_v1, the challenge script's: convert it with `bash run.sh import FILE --out NEW`")):
        r = subprocess.run(["bash", "run.sh", "fineweb"], cwd=ROOT, env=clean_env(**env, RUN_ID="fineweb_checked"), capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and r.stderr.startswith(said) and r.stderr.count("\n") == 1, r.stderr
        assert not (ROOT / "logs" / "fineweb_checked.txt").exists()  # refused before torchrun: no process began a log


def test_run_sh_sourced_or_started_by_another_shell_is_one_line_and_the_callers_shell_lives_on(tmp_path):
    """`source run.sh summary x` ran run.sh's `set -euo pipefail` and `cd` in the caller's shell, and its `exec` replaced that shell
    with the tool: the echo after it never ran (at a terminal, the terminal closed when the tool ended). `sh run.sh` (dash) ended in
    `set: Illegal option -o pipefail`. Each is one line now, exit status 2, and a shell that sourced it goes on as it was."""
    said = lambda how: f"run.sh: {how}; run it: bash run.sh summary x\n"
    after = 'echo "status:$? in:$PWD flags:$-"; shopt -qo pipefail && echo pipefail'
    r = subprocess.run(["bash", "-c", f"cd {tmp_path} && source {ROOT / 'run.sh'} summary x; {after}"], capture_output=True, text=True)
    assert r.stdout == f"status:2 in:{tmp_path} flags:hBc\n" and r.stderr == said(
        "do not source it (its settings, cd and exec would act on this shell)"), (r.stdout, r.stderr)
    others = [shell for shell in ("dash", "zsh") if shutil.which(shell)]
    if not others:
        pytest.skip("no dash or zsh here to start run.sh with another shell")
    for shell in others:
        r = subprocess.run([shell, str(ROOT / "run.sh"), "summary", "x"], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == "" and r.stderr == said("needs bash (another shell started it, as `sh run.sh` does)"), r
        r = subprocess.run([shell, "-c", f". {ROOT / 'run.sh'} summary x; echo status:$?"], cwd=tmp_path, capture_output=True, text=True)
        assert r.stdout == "status:2\n" and r.stderr in [said("needs bash (another shell started it, as `sh run.sh` does)").replace(
            " summary x", args) for args in (" summary x", "")], (shell, r)  # (dash passes no arguments to a script it sources)


@pytest.mark.slow
@pytest.mark.parametrize("target, signum", [("group", signal.SIGINT), ("bench", signal.SIGTERM)], ids=["ctrl_c", "kill"])
def test_a_signal_stops_a_benchmark_and_the_run_it_was_timing(target, signum):
    """Ctrl-C (SIGINT to the terminal's process group) or `kill PID` of a benchmark while it times a run: the run gets the signal
    once, the benchmark waits for it to end and says so in one line, exit status 128 + the signal's number, nothing left running
    (every benchmark and the GPU session start their runs through records/tools.py start_run). Before, Ctrl-C ended in a traceback
    and `kill` left the run going: on a GPU, an orphan holding the device through every later measurement."""
    bench = subprocess.Popen([sys.executable, str(ROOT / "tests" / "bench.py"), "--steps", "100000", "--repeats", "1", "--modes", "dense",
                              "--layers", "1", "--dim", "64", "--seq", "64", "--batch-tokens", "1024", "--micro", "1"],
                             env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    parent_is_bench = lambda proc: (proc / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(bench.pid)
    for _ in range(600):  # the timed run (a worker process) has started
        runs = live_processes(parent_is_bench)
        if runs:
            break
        time.sleep(0.05)
    time.sleep(1.0)  # and is under way
    (os.killpg if target == "group" else os.kill)(bench.pid, signum)
    out, err = bench.communicate(timeout=120)
    assert bench.returncode == 128 + signum and err == (f"error: bench: stopped by {signal.Signals(signum).name}; the runs under way got "
                                                        "it and have ended, no later run was started\n"), err[-2000:]
    assert runs and not live_processes(lambda proc: proc.name in runs)


def test_bench_profile_records_whole_steps_of_both_scripts_in_a_dry_run_on_cpu(tmp_path):
    """`bench profile` in its --dry-run: real processes (our script standing in for the peer, on the peer's data links), each
    profiled from outside by a global optimizer hook and stopped after the recorded steps, before any export. The window is
    whole steps: aten::mm runs exactly 3 times (forward, two in backward) per matrix per micro-step, 2 layers x 6 projections
    plus the tied head, in 8 micro-steps (the peer's, the default) and in ours' 4. A second run into the same --out is refused."""
    out = tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "tests" / "bench_profile.py"), "--dry-run", "--modes", "dense,mask", "--steps", "3", "--top", "40",
           "--peer", str(ROOT / "train_gpt.py"), "--out", "runs", "--ours-env", "MUON_BACKEND_STEPS=4"]  # relative: its runs start elsewhere
    r = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in r.stdout.split("\n## ")[0].splitlines() if re.match(r"\| [a-z]", l)]
    assert [row[0] for row in rows] == ["run", "peer: dense", "dense", "mask"]
    assert all(float(row[i].replace(",", "")) > 0 for row in rows[1:] for i in (1, 2, 4, 6)) and rows[0][6] == "operators a step", rows
    for folder, micro in (("peer_dense", 8), ("dense", 4), ("mask", 4)):
        prof = json.loads((out / folder / "profile.json").read_text())
        mm = next((e for e in prof["top"] if e["name"] == "aten::mm"), {})
        assert prof["steps"] == 3 and mm["calls"] == micro * 3 * (2 * 6 + 1) and mm.get("matrix"), (folder, prof["top"])
        log = (out / folder / "logs" / "profiled.txt").read_text().split("=" * 100 + "\n", 1)[1]  # after the source
        assert "step:10/" in log and "final_int8" not in log and not (out / folder / "final_model.int8.ptz").exists()
        assert ("MUON_BACKEND_STEPS=4" in log.split("\nenv: ", 1)[1].split("\n")[0]) == (folder != "peer_dense")  # ours alone
    again = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and again.stderr.strip().startswith(f"error: bench profile: --out {out}: not empty;")


def test_bench_profile_clock_times_every_operator_of_whole_steps_inside_their_wall_time(tmp_path):
    """--clock (a TorchDispatchMode around every operator, on a CPU) sees the same operators as the profiler: aten::mm exactly
    3 times per matrix per micro-step (ours' 4), under the profiler's name; the clocks of one thread sum to less than the wall."""
    out = tmp_path / "runs"
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "bench_profile.py"), "--dry-run", "--clock", "--steps", "2", "--top", "40",
                        "--out", str(out)], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "a clock around each operator" in r.stdout, r.stderr[-2000:]
    prof = json.loads((out / "dense" / "profile.json").read_text())
    names = {e["name"]: e for e in prof["top"]}
    assert names["aten::mm"]["calls"] == 4 * 3 * (2 * 6 + 1) and names["aten::mm"]["matrix"] and "aten::mul" in names, names
    assert 0 < prof["matrix_ms"] < prof["busy_ms"] < prof["wall_ms"] and sum(e["ms"] for e in prof["top"]) <= prof["busy_ms"] * (1 + 1e-9)


def test_bench_profile_says_in_one_line_when_a_script_ends_before_its_profiled_steps(tmp_path):
    """A script that exits (here with status 3, as ours on a non-finite loss) or returns before the hook's last profiled step
    leaves no profile: one line that says which run, how far it got and where its log is, exit status 1, no table."""
    for body, said in (("import sys\nsys.exit(3)\n", "ended (exit status 3) after 0 steps"), ("x = 1\n", "returned after 0 steps")):
        (tmp_path / "early.py").write_text("# stands in for the challenge's script: class Hyperparameters, val_bpb\n" + body)
        out = tmp_path / f"out_{len(body)}"
        r = subprocess.run([sys.executable, str(ROOT / "tests" / "bench_profile.py"), "--dry-run", "--steps", "2", "--peer",
                            str(tmp_path / "early.py"), "--out", str(out)], env=clean_env(), capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and r.stdout == "" and r.stderr.splitlines()[-1] == (
            f"error: bench profile: peer: dense failed: early.py {said}, before step 16; its log and stderr are in {out / 'peer_dense'}")


def test_bench_peer_stops_a_real_run_at_a_log_line_and_times_the_steps_between_its_logs(tiny_data, tmp_path):
    """`bench --peer` (CPU and GPU) stops each real process at a line of its log; on the GPU it logs every 10th step, so a step's
    time is a logged span divided by the steps in it, and it waits for the `peak memory` line that follows the last step."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bench_peer
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "20", "TRAIN_LOG_EVERY": "5", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0"})
    log = bench_peer.run(ROOT / "train_gpt.py", env, tmp_path / "to_memory", "r", r"^peak memory", 600)
    times = {int(field(l, "step").split("/")[0]): float(field(l, "train_time"))
             for l in log.split("=" * 100 + "\n", 1)[1].splitlines() if " train_loss:" in l}  # the lines after the code
    assert sorted(times) == [*range(1, 11), 15, 20] and "\npeak memory rss: " in log
    spans = [(times[15] - times[10]) / 5, (times[20] - times[15]) / 5]
    assert bench_peer.step_ms(log, first=10) == (spans[0] + spans[1]) / 2  # the median of the two spans of 5 steps
    per_step = [times[s + 1] - times[s] for s in range(3, 10)] + spans
    assert bench_peer.step_ms(log) == sorted(per_step)[4]  # from step 3 (the CPU table's): the single steps and the two spans
    # stopped mid-run by SIGTERM once step 3 is logged, its stderr in a file (a pipe left unread can fill and stall a process)
    log = bench_peer.run(ROOT / "train_gpt.py", {**env, "ITERATIONS": "100000"}, tmp_path / "mid_run", "m", bench_peer.at_step(3), 600)
    assert "\nstopping: SIGTERM at step:" in log and "\npeak memory" not in log and (tmp_path / "mid_run" / "stderr.txt").is_file()


def test_bench_peer_names_a_run_that_failed_after_its_log_began_with_its_stderr(tmp_path):
    """A script that writes its log and then fails (the peer's CPU copy, given shards it could not find, logged its source and its
    settings first) ended the benchmark with `a run logged fewer than two steps from step 10 on`, its reason unsaid; now the
    benchmark names the script, its exit status and its folder, and ends with the tail of its stderr."""
    sys.path.insert(0, str(ROOT / "tests"))
    import bench_peer
    script = tmp_path / "fails.py"
    script.write_text("import os, sys\nos.makedirs('logs')\nopen(f\"logs/{os.environ['RUN_ID']}.txt\", 'w').write('step:1/9 train_loss:7.0\\n')\n"
                      "sys.exit('FileNotFoundError: No files found for pattern: peer_data/fineweb_val_*.bin')\n")
    with pytest.raises(SystemExit) as stopped:
        bench_peer.run(script, {}, tmp_path / "run", "r", bench_peer.at_step(10), 120)
    said = str(stopped.value)
    assert said.startswith(f"error: bench_peer: {script} exited with status 1 in {tmp_path / 'run'}; its stderr ({tmp_path / 'run' / 'stderr.txt'}) "
                           "ends:\n") and said.endswith("No files found for pattern: peer_data/fineweb_val_*.bin\n"), said


@pytest.mark.slow
def test_bench_gpu_peer_makes_its_whole_table_in_a_dry_run_on_cpu(tmp_path):
    """`bench gpu --peer` has no GPU to run on here: its --dry-run takes the same flow on the CPU at a tiny shape (our own script
    standing in for the peer, both as real processes), and every row of the table comes out with a step time and a peak memory.
    The modes' rows are one code path with other variables: two of them stand for the five. Every run's folder is kept under --out,
    and an --out that already holds runs is refused (the peer appends to its logs, so a rerun there would read the old steps).
    A table split over several commands (a GPU session's time limits): a mode row without a dense row runs the peer's dense step."""
    def bench(out, *args, timeout=900):
        cmd = [sys.executable, str(ROOT / "tests" / "bench_peer.py"), "--peer", str(ROOT / "train_gpt.py"), "--gpu", "--dry-run", "--pairs", "1",
               "--gpu-steps", "20", "--out", os.path.relpath(out, tmp_path), *args]  # relative: the runs start in folders of their own
        r = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=timeout)
        rows = [[c.strip() for c in l.strip("|").split("|")] for l in r.stdout.splitlines() if re.match(r"\| [a-z]", l)]
        for row in rows[1:]:  # peer and ours step times, ratio, tokens/s, peak memory of each: numbers, none of them NaN
            assert all(float(re.sub(r" \(.*\)$", "", c).replace(",", "")) > 0 for c in row[1:7]), row
        return r, [row[0] for row in rows], sorted(p.relative_to(out).as_posix() for p in out.glob("*/logs/*.txt"))

    out = tmp_path / "runs"
    r, rows, kept = bench(out, "--gpu-modes", "frozen all + corr 16")
    assert r.returncode == 0, r.stderr[-2000:]
    assert rows == ["configuration", "dense 1,024", "dense 8,192", "frozen all + corr 16 1,024"] and f"kept under {out}" in r.stderr
    assert kept == ["dense_1,024_ours_0/logs/ours_0.txt", "dense_1,024_peer_0/logs/peer_0.txt", "dense_8,192_ours_0/logs/ours_0.txt",
                    "dense_8,192_peer_0/logs/peer_0.txt", "frozen_all_+_corr_16_1,024_ours_0/logs/ours_0.txt"]
    again, _, kept_after = bench(out, timeout=120)
    assert again.returncode == 1 and again.stderr.strip() == (f"error: bench_peer: --out {out}: not empty; give a new or empty folder "
                                                              "(the runs already there are left as they are)") and kept_after == kept
    r, rows, kept = bench(tmp_path / "modes", "--gpu-tokens", "", "--gpu-modes", "mask", "--ours-env", "MUON_BACKEND_STEPS=4")
    assert r.returncode == 0 and rows == ["configuration", "mask 1,024"], r.stderr[-2000:]
    assert kept == ["mask_1,024_ours_0/logs/ours_0.txt", "mask_1,024_peer_0/logs/peer_0.txt"] and "; ours with MUON_BACKEND_STEPS=4" in r.stdout
    env_line = lambda who: (tmp_path / "modes" / f"mask_1,024_{who}_0" / "logs" / f"{who}_0.txt").read_text().split("\nenv: ", 1)[1].split("\n")[0]
    assert "FREEZE_MODE" not in env_line("peer") and "MUON_BACKEND_STEPS" not in env_line("peer")  # --ours-env: ours alone
    assert "FREEZE_MODE=mask" in env_line("ours") and "MUON_BACKEND_STEPS=4" in env_line("ours")


@pytest.mark.parametrize("bench, argv, text", [
    ("bench", ["--modes", "frozen"], "error: bench: --modes 'frozen': unknown 'frozen'; accepted, comma-separated: dense, adapter, frozen fc, "),
    ("bench_gpu", ["--dry-run", "--modes", ""], "error: bench gpu: --modes '': unknown ''; accepted, comma-separated: dense, "),
    ("bench_peer", ["--gpu", "--dry-run", "--gpu-modes", "mask,dense"], "error: bench_peer: --gpu-modes 'mask,dense': unknown 'dense'; "),
    ("bench_peer", ["--gpu", "--dry-run", "--gpu-tokens", "65536,1000"], "error: bench_peer: --gpu-tokens '65536,1000': accepted a comma list of "),
    ("bench_quality", ["--budgets", "A,C"], "error: bench quality: --budgets 'A,C': unknown 'C'; accepted, comma-separated: A, B"),
    ("bench_quality", ["--stage", "mian"], "error: bench quality: --stage 'mian': unknown 'mian'; accepted, comma-separated: main, tune"),
    ("bench_claims", ["--seeds", "1,x"], "error: bench claims: --seeds '1,x': accepted a comma list of whole numbers (1,2)"),
    ("bench_peer", ["--gpu", "--dry-run", "--ours-env", "CUDAGRAPHS"], "error: bench_peer: --ours-env 'CUDAGRAPHS': accepted NAME=VALUE "),
    ("bench_profile", ["--peer", str(ROOT / "tests")], f"error: bench profile: --peer {ROOT / 'tests'}: not a file; accepted the challenge's "),
    ("bench_profile", ["--modes", "dense,frozen"], "error: bench profile: --modes 'dense,frozen': unknown 'frozen'; accepted, comma-separated: "),
    ("bench", ["--steps", "-1"], "error: bench: --steps -1: accepted 1 or more"),
    ("bench_peer", ["--pairs", "0"], "error: bench_peer: --pairs 0: accepted 1 or more"),
    ("bench_peer", ["--micro", "4,0"], "error: bench_peer: --micro '4,0': accepted a comma list of micro-steps a step, 1 to 9999 each (e.g. 4,8)"),
    ("bench_peer", ["--shapes", "demo,10x10"], "error: bench_peer: --shapes 'demo,10x10': unknown '10x10'; accepted, comma-separated: demo, 9x512"),
    ("bench_gpu", ["--dry-run", "--steps", "0"], "error: bench gpu: --steps 0: accepted 1 or more"),
    ("bench_quality", ["--steps", "0"], "error: bench quality: --steps 0: accepted 1 or more"),
    ("bench_claims", ["--workers", "0"], "error: bench claims: --workers 0: accepted 1 or more"),
    ("bench_claims", ["--workers", "100000"], "error: bench claims: --workers 100000: accepted 1 to "),  # every job at once
    ("bench_quality", ["--workers", "100000"], "error: bench quality: --workers 100000: accepted 1 to ")])
def test_a_benchmark_refuses_an_unknown_name_in_one_line_before_it_runs_anything(bench, argv, text, tmp_path, monkeypatch):
    """A misspelt mode, budget or stage used to be skipped without a word (a table with no rows, or a traceback where none was left);
    a count below what a median needs (--steps -1, --pairs 0) and an unknown --shapes were tracebacks after the first runs."""
    import importlib
    monkeypatch.chdir(tmp_path)
    argv = ["--peer", str(ROOT / "train_gpt.py"), "--out", str(tmp_path / "out"), *argv] if bench == "bench_peer" else argv
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(bench).main(argv)
    assert str(stop.value).startswith(text) and "\n" not in str(stop.value) and not any(tmp_path.iterdir())


def test_a_peer_that_is_not_the_challenges_script_or_not_the_copy_for_this_device_is_refused_before_any_run(tmp_path, monkeypatch):
    """`bench --peer /etc/passwd` set up both scripts' runs, ran it, and ended with its SyntaxError; the CUDA script given to the CPU
    benchmark ended with its own `CUDA is required`. Each is one line now, before anything runs; `bench profile` checks the same.
    (This project's train_gpt.py, with the line that marks each copy appended, stands in for the challenge's two copies.)"""
    import bench_peer
    import bench_profile
    monkeypatch.chdir(tmp_path)
    ours = (ROOT / "train_gpt.py").read_text()
    cases = [("passwd", "root:x:0:0:root:/root:/bin/bash\n", [], "not the challenge's train_gpt.py (no Hyperparameters class, no val_bpb)"),
             ("cuda.py", ours + '#     raise RuntimeError("CUDA is required")\n', [], "the challenge's CUDA script, which refuses to start"),
             ("cpu.py", ours + '#     device = torch.device("cpu")\n', ["--gpu"], "the challenge's script forced onto the CPU; --gpu runs the")]
    for name, text, flags, refused in cases:
        (tmp_path / name).write_text(text)
        for main, label in [(bench_peer.main, "bench_peer")] + [(bench_profile.main, "bench profile")] * (not flags):
            with pytest.raises(SystemExit) as stop:
                main(["--peer", str(tmp_path / name), "--out", str(tmp_path / "out"), *flags])
            assert str(stop.value).startswith(f"error: {label}: --peer {tmp_path / name}: {refused}"), str(stop.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.py", "cuda.py", "passwd"]  # no run folder, no output


def test_bench_gpu_says_why_a_run_failed_in_its_one_line(tmp_path):
    """A run that train_gpt.py refuses (a step that no micro-step divides) said only 'see stderr.txt': the line says the script's reason."""
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "bench_gpu.py"), "--dry-run", "--steps", "2", "--batch-tokens", "100", "--modes",
                        "dense", "--out", str(tmp_path)], env=clean_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.splitlines()[-1] == (
        "error: bench gpu: dense failed (error: TRAIN_BATCH_TOKENS=100: must be a multiple of world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN "
        f"= 64); its log and stderr are in {tmp_path / 'dense'}"), r.stderr


@pytest.mark.slow
def test_bench_gpu_makes_its_table_in_a_dry_run_on_cpu(tmp_path):
    """`bench gpu` (train_gpt.py alone, per mode) in its --dry-run on the CPU: each mode a real process whose log lines
    fill a row (parameters, step time, memory, artifact bytes, val_bpb, evaluation time)."""
    cmd = [sys.executable, str(ROOT / "tests" / "bench_gpu.py"), "--dry-run", "--steps", "20", "--batch-tokens", "2048", "--modes", "dense,mask",
           "--out", str(tmp_path)]
    r = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in r.stdout.splitlines() if re.match(r"\| (dense|mask) ", l)]
    assert [row[0] for row in rows] == ["dense", "mask"] and rows[0][2] == "0" and int(rows[1][2].replace(",", "")) > 0  # regenerated
    assert all(float(c.rstrip("x").replace(",", "")) > 0 for row in rows for c in row[3:])


@pytest.mark.slow
def test_gpu_session_runs_its_stages_under_one_deadline_in_a_dry_run_on_cpu(tmp_path):
    """`bench gpu-session`, the prepared script for a lent GPU (15 minutes a session): its stages' commands are the benchmarks'
    and the CUDA tests' real ones (their --dry-run here), every stage's output lands under --out as it goes, a stage expected to
    take longer than the time left is skipped and named for the next command, and bad arguments are one line before anything."""
    session = lambda *args: subprocess.run([sys.executable, str(ROOT / "tests" / "gpu_session.py"), "--dry-run", "--peer", str(ROOT / "train_gpt.py"),
                                            *args], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=900)
    out = tmp_path / "session"
    r = session("--out", str(out), "--budget", "400", "machine", "dense", "e2e")  # e2e: expected 420 s, more than the whole budget
    assert r.returncode == 0, r.stderr[-2000:]
    log = (out / "session.txt").read_text()
    assert re.search(r"^machine: exit status 0 after \d+ s$", log, re.M) and re.search(r"^dense: exit status 0 after \d+ s$", log, re.M), log
    assert re.search(r"^e2e: skipped, expected to take about 420 s and \d+ s are left$", log, re.M) and \
        log.endswith("not run, for the next command: e2e\n") and not (out / "e2e.md").exists()
    assert "| dense 1,024 |" in (out / "dense.md").read_text() and sorted(p.name for p in (out / "dense").glob("*/logs/*.txt")) == \
        ["ours_0.txt", "peer_0.txt"] and "torch" in (out / "machine.md").read_text()
    # the CUDA stages' selections: the quick tests with the non-finite stop, and then the per-mode end-to-end runs alone
    import gpu_session
    plan = gpu_session.stages(gpu_session.argparse.Namespace(peer=ROOT / "train_gpt.py", out=tmp_path, dry_run=True))
    collected = {name: subprocess.run(plan[name][1][0] + ["--collect-only"], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                                      timeout=300).stdout for name in ("cuda", "e2e")}
    assert "test_a_non_finite_loss_at_a_step_that_does_not_log" in collected["cuda"] and "every_mode_trains" not in collected["cuda"]
    assert "every_mode_trains_on_cuda" in collected["e2e"] and "non_finite" not in collected["e2e"]
    # the deadline stops a stage's whole process group and says so
    t0 = time.time()
    ended = gpu_session.run_stage([["bash", "-c", f"sleep 60 & echo $! > {tmp_path / 'pid'}; wait"]], tmp_path, "slow", time.time() + 2)
    sleeper = int((tmp_path / "pid").read_text())  # (a stage runs in the project's root: the pid file goes by its full path)
    assert ended == "stopped at the deadline (what it made is kept)" and time.time() - t0 < 20
    try:
        state = Path(f"/proc/{sleeper}/status").read_text()
    except FileNotFoundError:  # gone already (reaped)
        state = "State:\tZ"
    assert "State:\tZ" in state, state  # the stage's background child was stopped with it
    for args, text in [(("--out", str(out)), f"--out {out}: not empty; give a new or empty folder"),
                       (("--out", str(tmp_path / "new"), "dense", "mdoes"), "stage 'mdoes': unknown; accepted: machine, dense, cuda, "),
                       (("--out", str(tmp_path / "new"), "--budget", "0"), "--budget 0: accepted a positive number of seconds"),
                       (("--out", str(tmp_path / "new"), "--peer", str(tmp_path / "nope.py")), f"--peer {tmp_path / 'nope.py'}: not a file; copy "),
                       (("--out", str(out / "session.txt")), f"--out {out / 'session.txt'}: cannot be made (File exists); give a new ")]:
        r = session(*args)
        assert r.returncode == 2 and r.stderr.startswith(f"error: gpu_session: {text}") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "new").exists()
