"""Tooling around the script: sweeps, the summary of any challenge log, and records folders
(records/tools.py), on real logs of real runs and on logs in the public formats."""

import io
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import (ROOT, TINY_MODEL, Terminal, clean_env, live_processes, log_lines, run_train, run_with_closed_console, run_with_closed_terminal,
                      small_disk, train_command)

sys.path.insert(0, str(ROOT / "records"))
import tools  # noqa: E402

TOOLS = [sys.executable, str(ROOT / "records" / "tools.py")]

# ---- logs in the formats others' runs print (FACTS.md, "What the records look like") ----

CONSOLE_LOG = """W1120 12:00:00.000000 torch/distributed/run.py:793] Setting OMP_NUM_THREADS environment variable for each process
logs/0f3a.txt
model_params:17059912
world_size:8 grad_accum_steps:1
step:0/20000 val_loss:6.9357 val_bpb:4.1077 train_time:0ms step_avg:0.01ms
step:1/20000 train_loss:6.9370 train_time:43ms step_avg:43.12ms
step:7000/20000 train_loss:2.0512 train_time:599000ms step_avg:85.57ms
step:7000/20000 val_loss:2.0261 val_bpb:1.2000 train_time:599100ms step_avg:85.59ms
stopping_early: wallclock_cap train_time:599950ms step:7001/20000
Serialized model int6+zstd: 15500000 bytes
Total submission size int6+zstd: 15580000 bytes
final_int6_roundtrip val_loss:2.0123 val_bpb:1.1918 eval_time:2100ms
final_int6_roundtrip_exact val_loss:2.01234567 val_bpb:1.19181234
final_int6_sliding_window val_loss:1.9812 val_bpb:1.1731 stride:64 eval_time:80000ms
final_int6_sliding_window_exact val_loss:1.98123456 val_bpb:1.17312345
"""

HYPERPARAMETER_LOG = """Hyperparameters:
  seed: 1337
  num_layers: 11
  train_seq_len: 2048
1/9000 train_loss: 6.9312 train_time: 0.0m tok/s: 1234
500/9000 train_loss: 2.5012 train_time: 1.2m tok/s: 700000
4000/9000 train_loss: 2.0101 train_time: 9.9m tok/s: 702000
4000/9000 val_loss: 2.0100 val_bpb: 1.1904 train_time: 9.9m
Total submission size int6+lzma-9: 15,900,123 bytes
final_sliding val_loss: 1.9500 val_bpb: 1.1550
legal_ttt_exact val_loss:1.94010000 val_bpb:1.14901234
"""

TTT_LOG = """model_params:26500000
step:5000/20000 val_loss:1.9900 val_bpb:1.1800 train_time:590000ms step_avg:118.00ms
Total submission size quantized+brotli: 15123456 bytes
quantized_sliding_window val_loss:1.9200 val_bpb:1.1370 eval_time:90000ms
quantized_ttt_lora val_loss: 1.8975 val_bpb: 1.1238
"""

# The later records' script (GPTQ and phased TTT, in public logs of April 2026): spaces after the colons of stopping_early,
# diagnostic lines named by several words before the first key:value, the compressed code size beside the uncompressed one, phased TTT last.
DIAGNOSTIC_LOG = """Hyperparameters:
  seed: 42
  num_layers: 11
model_params:35900000
0/20000 val_loss: 9.0100 val_bpb: 4.1200
500/20000 train_loss: 2.5800 train_time: 4.4m tok/s: 1470000
4800/20000 val_loss: 2.3600 val_bpb: 1.0800
stopping_early: wallclock_cap train_time: 596000ms step: 4800/20000
peak memory allocated: 41000 MiB reserved: 46000 MiB
diagnostic pre-quantization post-ema val_loss:2.33000000 val_bpb:1.06500000 eval_time:18000ms
diagnostic pre-quantization post-ema sliding_window val_loss:2.31000000 val_bpb:1.05600000 eval_time:90000ms
Code size (uncompressed): 140000 bytes
Code size (compressed): 36000 bytes
Serialized model quantized+brotli: 15900000 bytes
Total submission size quantized+brotli: 15936000 bytes
diagnostic quantized val_loss:2.35000000 val_bpb:1.07300000 eval_time:30000ms
diagnostic quantized_sliding_window val_loss:2.33500000 val_bpb:1.06600000 eval_time:95000ms
quantized_ttt_phased val_loss:2.32000000 val_bpb:1.06000000 eval_time:500000ms
total_eval_time:500.0s
"""

CRASHED_LOG = """model_params:17059912
step:1/20000 train_loss:6.9370 train_time:43ms step_avg:43.12ms
step:200/20000 val_loss:3.1000 val_bpb:1.8400 train_time:9000ms step_avg:45.00ms
Traceback (most recent call last):
  File "train_gpt.py", line 1100, in <module>
torch.OutOfMemoryError: CUDA out of memory.
"""


@pytest.fixture
def public_tree(tmp_path):
    """A records tree as the challenge's repository lays it out, with files that are not logs."""
    a = tmp_path / "records/track_10min_16mb/2026-03-20_Int6Sliding"
    b = tmp_path / "records/track_10min_16mb/2026-04-02_LegalTTT"
    c = tmp_path / "records/track_non_record_16mb/2026-04-10_Brotli"
    for d in (a, b, c):
        d.mkdir(parents=True)
        (d / "README.md").write_text("# a record\n")
        (d / "submission.json").write_text("{}")
    (a / "train.log").write_text(CONSOLE_LOG)
    (a / "requirements.txt").write_text("zstandard\nnumpy\n")
    (b / "train_seed1337.txt").write_text(HYPERPARAMETER_LOG)
    (b / "crashed_seed7.log").write_text(CRASHED_LOG)
    (c / "run.log").write_text(TTT_LOG)
    (c / "weights.log").write_bytes(b"\x00\x01binary")
    (c / "empty.txt").write_text("")
    return tmp_path / "records"


def test_every_public_format_is_read_with_its_final_score(public_tree):
    logs = {r["run_id"]: r for r in tools.read_logs([str(public_tree)], note=lambda m: None)}
    assert sorted(logs) == ["crashed_seed7", "run", "train", "train_seed1337"]
    c = logs["train"]  # torchrun console output, no source header, sliding last
    assert (c["val_bpb"], c["score_line"], c["roundtrip_val_bpb"], c["sliding_val_bpb"]) == \
        (1.17312345, "final_int6_sliding_window_exact", 1.19181234, 1.17312345)
    assert (c["pre_quant_val_bpb"], c["bytes_total"], c["steps"], c["train_time_ms"], c["world_size"]) == (1.2, 15580000, 7001, 599950, 8)
    assert c["source"] is None and c["eval_time_ms"] == 82100
    h = logs["train_seed1337"]  # N/M lines without step:, a Hyperparameters block, TTT last
    assert (h["val_bpb"], h["val_loss"], h["score_line"], h["sliding_val_bpb"]) == (1.14901234, 1.9401, "legal_ttt_exact", 1.155)
    assert (h["seed"], h["steps"], h["bytes_total"], h["config"]["num_layers"]) == (1337, 4000, 15900123, "11")
    assert math.isclose(h["train_time_ms"], 9.9 * 60000) and h["pre_quant_val_bpb"] == 1.1904
    t = logs["run"]
    assert (t["val_bpb"], t["score_line"], t["sliding_val_bpb"], t["bytes_total"]) == (1.1238, "quantized_ttt_lora", 1.137, 15123456)
    x = logs["crashed_seed7"]
    assert x["traceback"] and x["val_bpb"] == 1.84 and x["score_line"] == "step" and x["bytes_total"] is None


def test_the_later_records_diagnostic_format_is_read_whole(tmp_path):
    """A public log of the later records' script stopped the summary with a traceback (`step: 4800` has a space after its
    colon); its diagnostic lines are the pre-quant, round-trip and sliding scores, never the final one."""
    (tmp_path / "train_seed42.log").write_text(DIAGNOSTIC_LOG)
    r = tools.parse_log(tmp_path / "train_seed42.log")
    assert (r["val_bpb"], r["score_line"], r["steps"], r["train_time_ms"], r["seed"]) == (1.06, "quantized_ttt_phased", 4800, 596000, 42)
    assert (r["pre_quant_val_bpb"], r["roundtrip_val_bpb"], r["sliding_val_bpb"]) == (1.065, 1.073, 1.066)
    assert (r["bytes_total"], r["bytes_code"], r["eval_time_ms"]) == (15936000, 36000, 500000)
    shown = subprocess.run(TOOLS + ["summary", str(tmp_path)], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stderr == "" and "| train_seed42 | 1.0600 | quantized_ttt_phased | 1.0730 | 1.0660 | 1.0650 | 4800 |" in shown.stdout
    # a script of another family names its int6 round trip only by the width: `final_int6`, `final_int6_exact`
    (tmp_path / "int6.log").write_text("model_params:20000000\nfinal_int6 val_loss:1.9000 val_bpb:1.1300 eval_time:2000ms\n"
                                       "final_int6_exact val_loss:1.90001234 val_bpb:1.13001234\n")
    r = tools.parse_log(tmp_path / "int6.log")
    assert (r["val_bpb"], r["score_line"], r["roundtrip_val_bpb"], r["sliding_val_bpb"]) == (1.13001234, "final_int6_exact", 1.13001234, None)


LOG_STARTS = ["step:", "", "stopping_early:", "Total submission size", "Code size", "Code size (compressed)", "model_params", "seed", "world_size:",
              "env: ", "pytorch_version:", "total_eval_time:", "val_loader:shards pattern=", "warning: ", "Hyperparameters:", "  ", "final_int6",
              "diagnostic quantized", "12/300", "tokenizer_path=", "=" * 100]
LOG_BITS = [":", "=", " ", "1", "12", "/", "nan", "inf", "-1", "1e400", "ms", "m", "s", ",", "val_bpb:", "val_loss:", "train_loss:", "train_time:",
            "step_avg:", "step:", "'", '"', "A=", "hardware:", "x", "*_val_*.bin", "9" * 30, ".5", "1.", "eval_time:", "\r", "\t", "\u00e9"]


def test_any_text_is_read_as_a_log_or_skipped_and_every_table_format_holds_it(tmp_path):
    """Hostile or mangled logs (seeded random lines of the markers the reader looks for): each is a log or a NotALog skip, never
    a traceback (a `stopping_early:` without `step:`, a `model_params:nan`, `Total submission size: ,` each was one), and the
    table of any of them is made in every format, the JSON strict (a diverged run's nan is the text "nan", not NaN)."""
    rng, logs = random.Random(0), []
    for i in range(2000):
        lines = [rng.choice(LOG_STARTS) + "".join(rng.choice(LOG_BITS) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 12))]
        path = tmp_path / f"fuzz{i}.log"
        path.write_text("\n".join(lines))
        try:
            logs.append({**tools.parse_log(path), "run": path.stem})
        except tools.NotALog:
            continue
    assert len(logs) > 200  # about a sixth are logs by the reader's rule (a val_bpb, step or model_params line)
    for group in (logs[i:i + 25] for i in range(0, len(logs), 25)):
        assert tools.summary_table(group, "md").count("\n") == len(group) + 1 and tools.summary_table(group, "csv")
        rows = json.loads(tools.summary_table(group, "json"), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
        assert len(rows) == len(group)


BIG = "9" * 5000  # past the 4,300 digits Python's int() reads: a ValueError, not the reader's NotALog


@pytest.mark.parametrize("line, field", [(f"step:{BIG}/20000 train_loss:2.0 train_time:1ms", "steps"),
                                         (f"step:1/{BIG} train_loss:2.0 train_time:1ms", "iterations"),
                                         (f"Total submission size int8+zlib: {BIG} bytes", "bytes_total"), (f"Code size: {BIG} bytes", "bytes_code"),
                                         (f"Hyperparameters:\n  seed: {BIG}", "seed"), (f"[default{BIG}]:world_size:8", "world_size")],
                         ids=["step", "iterations", "total_size", "code_size", "seed", "rank_tag"])
def test_a_count_of_thousands_of_digits_is_no_count_and_the_log_is_still_read(tmp_path, line, field):
    """Each number of the public logs' lines replaced in turn (22,032 mangled logs through summary, --against and record): a count of
    5,000 digits in any of these places ended `summary` in a traceback, until 2026-12-07. It is no count now; the score is read."""
    (tmp_path / "run.txt").write_text(f"model_params:10\n{line}\nfinal_int8_zlib_roundtrip val_loss:2.0 val_bpb:1.2\n")
    r = tools.parse_log(tmp_path / "run.txt")
    assert r[field] is None and (r["val_bpb"], r["model_params"]) == (1.2, 10)
    out = subprocess.run(TOOLS + ["summary", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == "" and out.stdout.splitlines()[2].startswith("| run | 1.2000 |"), (out.stdout, out.stderr)


def test_a_sweeps_process_count_is_read_from_its_launch_command_or_left_to_torchrun():
    """A sweep checks every run's batch against the processes torchrun will start. "²" is a digit to str.isdigit() and no int: that
    launch, and a count of 5,000 digits, were tracebacks until 2026-12-07; what is not a count is left to torchrun to refuse."""
    launches = ["python3", "torchrun --standalone --nproc_per_node=8", "torchrun --nproc-per-node 4", "torchrun --nproc_per_node=gpu",
                "torchrun --nproc_per_node=\u00b2", f"torchrun --nproc_per_node={BIG}", "torchrun --nproc_per_node=0", "torchrun --nproc_per_node"]
    assert [tools.launch_processes(launch.split()) for launch in launches] == [1, 8, 4, None, None, None, None, None]


def test_a_markdown_summary_keeps_its_columns_for_pipes_and_long_lines(tmp_path):
    """A | in a run's folder name or in a value of its env line split a cell of the Markdown table (every later column shifted), and
    a 5 KB run of words before a val_bpb was a 5 KB "final line" cell: the | is escaped, a cell is cut at 80 characters with "...";
    CSV and JSON keep both whole."""
    for folder in ("a|b", "c"):
        (tmp_path / folder).mkdir()
    words = " ".join(["word"] * 1000)
    for folder, env in (("a|b", "X=1|2"), ("c", "X=3")):
        (tmp_path / folder / "run.txt").write_text(f"env: {env}\nstep:10/10 train_loss:2.0 train_time:100ms step_avg:10.00ms\n"
                                                   f"{words} val_loss:2.0 val_bpb:1.2\n")
    r = subprocess.run(TOOLS + ["summary", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    head, _, *rows = r.stdout.splitlines()
    columns = len(re.findall(r"(?<!\\)\|", head))
    assert [len(re.findall(r"(?<!\\)\|", row)) for row in rows] == [columns, columns] and head.startswith("| run | X | score | final line |")
    assert rows[0].startswith(f"| a\\|b/run | 1\\|2 | 1.2000 | {'word_' * 15}wo... |") and all(len(c) <= 82 for c in re.split(r"(?<!\\)\|", rows[0]))
    as_json = json.loads(subprocess.run(TOOLS + ["summary", "--format", "json", str(tmp_path)], capture_output=True, text=True).stdout)
    assert as_json[0]["score_line"] == "_".join(["word"] * 1000) and as_json[0]["env"] == {"X": "1|2"}


def test_the_lines_the_challenges_own_script_logged_are_read_as_it_meant_them(tmp_path):
    """tests/fixtures/peer_artifact/reference.json keeps lines the challenge's script itself printed (run as a process by that folder's
    make.py), not lines written for this test: read as a log, they give its round trip as the score, its last validation as the
    pre-quantization score, its steps, step time and parameter count."""
    ref = json.loads((ROOT / "tests/fixtures/peer_artifact/reference.json").read_text())
    (tmp_path / "peer.txt").write_text("\n".join(ref["log_lines"]) + "\n")
    r = tools.parse_log(tmp_path / "peer.txt")
    exact = ref["final_int8_zlib_roundtrip_exact"]
    assert (r["score_line"], r["val_bpb"], r["val_loss"], r["roundtrip_val_bpb"]) == ("final_int8_zlib_roundtrip_exact", exact["val_bpb"],
                                                                                      exact["val_loss"], exact["val_bpb"])
    assert (r["pre_quant_val_bpb"], r["steps"], r["iterations"], r["step_avg_ms"], r["model_params"], r["eval_time_ms"]) == \
        (2.6113, 60, 60, 209.40, 88356, 177)


def test_a_log_saved_as_utf16_or_with_a_byte_order_mark_reads_as_the_same_log(tmp_path):
    """Windows PowerShell's `>` writes UTF-16 with a byte-order mark (it was skipped as a binary file), and an editor may put a
    UTF-8 byte-order mark before the first line (whose model_params then went unread): both read as the plain text does."""
    text = "\n".join(json.loads((ROOT / "tests/fixtures/peer_artifact/reference.json").read_text())["log_lines"]) + "\n"
    forms = {"plain": text.encode(), "powershell": text.replace("\n", "\r\n").encode("utf-16"), "bom": b"\xef\xbb\xbf" + text.encode()}
    read = {}
    for name, data in forms.items():
        (tmp_path / f"{name}.txt").write_bytes(data)
        read[name] = {k: v for k, v in tools.parse_log(tmp_path / f"{name}.txt").items() if k not in ("path", "run_id")}
    assert read["plain"]["model_params"] == 88356 and read["powershell"] == read["plain"] == read["bom"]


def test_a_log_passed_through_torchrun_tee_a_logger_or_a_terminal_reads_as_the_same_log(tmp_path):
    """Lines with what other tools put before them: torchrun --tee's [default0]: (with another rank's lines between, which
    print other numbers), torch's [rank0]: , terminal colours, timestamps (kubectl logs --timestamps, Python's logging, ts)
    and logging's LEVEL:name:. Before, their steps, pre-quantization score and parameter count went unread and the final
    line was named by the prefix ("[default0]:final_int8_zlib_roundtrip_exact", "2026-03-20")."""
    lines = json.loads((ROOT / "tests/fixtures/peer_artifact/reference.json").read_text())["log_lines"]
    other = [l.replace("val_bpb:2.6", "val_bpb:3.6").replace("model_params:", "model_params:1") for l in lines]  # rank 1: other numbers
    forms = {
        "plain": lines,
        "tee": [f"[default{r}]:{l}" for pair in zip(lines, other) for r, l in enumerate(pair)] + ["[default1]:[W1203 12:00:00] a warning"],
        "rank": [f"[rank0]: {l}" for l in lines] + ["[rank1]: Traceback (most recent call last):"],
        "colours": [f"\x1b[1;32m{l}\x1b[0m" if "val_bpb" in l else l for l in lines],
        "kubectl": [f"2026-03-20T12:00:{i % 60:02d}.123456789Z {l}" for i, l in enumerate(lines)],
        "logging": [f"2026-03-20 12:00:01,123 - INFO - {l}" for l in lines],
        "ts": [f"Mar 20 12:00:01 {l}" for l in lines],
        "logging_default": [f"INFO:__main__:{l}" for l in lines],
        "kubectl_tee": [f"2026-03-20T12:00:01Z [default0]:\x1b[32m{l}" for l in lines],
    }
    read = {}
    for name, form in forms.items():
        (tmp_path / f"{name}.log").write_text("\n".join(form) + "\n")
        read[name] = {k: v for k, v in tools.parse_log(tmp_path / f"{name}.log").items() if k not in ("path", "run_id", "traceback")}
    plain = read.pop("plain")
    assert plain["model_params"] == 88356 and plain["steps"] == 60 and plain["score_line"] == "final_int8_zlib_roundtrip_exact"
    assert {name: r for name, r in read.items() if r != plain} == {}
    assert tools.parse_log(tmp_path / "rank.log")["traceback"]  # another rank's crash still counts


@pytest.mark.slow
def test_a_torchrun_log_dir_reads_as_its_run_with_one_note_for_the_empty_files(tiny_data, tmp_path):
    """`torchrun --log-dir D --tee 3` (real, 2 processes) keeps each rank's stdout.log and stderr.log under D/<id>/attempt_0/<rank>/:
    rank 0's stdout is the run's console, the other three files are empty (the script prints on rank 0 alone). Each empty file was
    a note of its own, `not a training log`: 15 of them on 8 GPUs, over the table. Now they are one note. The run was named
    `stdout`, each run of a log-dir alike: now by its RUN_ID (the `env:` line), or, without one (the challenge's script), its path."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"], "RUN_ID": "ld",
                       "ITERATIONS": "4", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0"})
    cmd = train_command(2)
    run = subprocess.run(cmd[:3] + ["--log-dir", str(tmp_path / "D"), "--tee", "3"] + cmd[3:], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    files = sorted(f.relative_to(tmp_path / "D").parts[1:] for f in (tmp_path / "D").rglob("*.log"))
    assert files == [("attempt_0", r, f"{k}.log") for r in "01" for k in ("stderr", "stdout")], files
    r = subprocess.run(TOOLS + ["summary", "--format", "json", "D"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    rows, ours = json.loads(r.stdout), tools.parse_log(tmp_path / "logs" / "ld.txt")
    assert r.returncode == 0 and [(row["run"], row["val_bpb"], row["steps"]) for row in rows] == [("ld", ours["val_bpb"], 4)], r.stdout
    first = next((tmp_path / "D").rglob("0/stderr.log")).relative_to(tmp_path)
    assert r.stderr == f"skipped 3 empty files: {first} and others\n", r.stderr
    console = next((tmp_path / "D").rglob("0/stdout.log"))
    console.write_text("".join(line for line in console.read_text().splitlines(True) if not line.startswith("env: ")))  # no RUN_ID
    assert tools.parse_log(console)["run_id"] == str(console.with_suffix(""))


def test_a_submission_json_with_a_byte_order_mark_is_read_as_the_record_to_beat(tmp_path):
    """json refuses a UTF-8 byte-order mark (`Unexpected UTF-8 BOM`), which a Windows editor writes: `--against` read such a file as
    not a submission.json."""
    sub = {"name": "A", "seed_results": {"42": {"val_loss": 2.05}, "314": {"val_loss": 2.06}}}
    (tmp_path / "submission.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(sub).encode())
    assert tools.read_against(str(tmp_path / "submission.json"), 2.4) == ([2.05, 2.06], "A: per-seed val_loss")


@pytest.mark.parametrize("value, reason", [("[" * 100_000 + "]" * 100_000, "maximum recursion depth exceeded"),
                                           ("1" * 5000, "Exceeds the limit \\(4300")], ids=["too_deep", "huge_int"])
def test_a_submission_json_past_what_json_reads_is_one_line(tmp_path, value, reason):
    """Valid JSON nested 100,000 deep stops Python's json with a RecursionError, an integer of 5,000 digits with a ValueError that is no
    JSONDecodeError: `--against` ended in their tracebacks (the integer's until 2026-12-06)."""
    (tmp_path / "submission.json").write_text('{"seed_results": ' + value + "}")
    with pytest.raises(tools.ToolError, match=r"submission.json: not a submission.json \(" + reason):
        tools.read_against(str(tmp_path / "submission.json"), 2.4)


def test_the_record_to_beat_may_be_its_folder_as_published(tmp_path):
    """`--against records/track_10min_16mb/<record>/`: the folder's submission.json, as the file itself; a folder without one (some
    records have only logs) gives the final val_loss of each of its logs, a seed each, in nats (val_bpb turned into nats where a
    log has none). Before, a folder was read as a list of numbers and refused."""
    with_json = tmp_path / "2026-03-20_WithJson"
    with_json.mkdir()
    (with_json / "submission.json").write_text(json.dumps({"name": "J", "seed_results": {"1": {"val_loss": 2.01}, "2": {"val_loss": 2.02}}}))
    assert tools.read_against(str(with_json), 2.4) == tools.read_against(str(with_json / "submission.json"), 2.4) == ([2.01, 2.02],
                                                                                                                      "J: per-seed val_loss")
    logs_only = tmp_path / "2026-04-02_LogsOnly"
    logs_only.mkdir()
    (logs_only / "README.md").write_text("# a record\n")
    (logs_only / "requirements.txt").write_text("brotli\n")
    for seed, loss in ((42, 2.32), (314, 2.325), (999, 2.318)):
        (logs_only / f"train_seed{seed}.log").write_text(DIAGNOSTIC_LOG.replace("val_loss:2.32000000", f"val_loss:{loss:.8f}"))
    values, source = tools.read_against(str(logs_only), 2.4)  # the logs in path order: seed314, seed42, seed999
    assert values == [2.325, 2.32, 2.318] and source == f"{logs_only}: the final val_loss of its 3 log(s)"
    (logs_only / "train_seed7.log").write_text("model_params:35900000\nfinal_sliding val_bpb:1.0600\n")
    values, source = tools.read_against(str(logs_only), 2.4)
    assert values == [2.325, 2.32, 1.06 * 2.4, 2.318] and source.endswith("log(s), val_bpb in nats where a log has none")
    (logs_only / "train_seed8.log").write_text("model_params:35900000\nstep:1/20000 train_loss:6.9370 train_time:43ms\n")
    (tmp_path / "empty").mkdir()
    for folder, said in ((logs_only, f"the log {logs_only / 'train_seed8.log'} has no final val_loss or val_bpb (an unfinished run?)"),
                         (tmp_path / "empty", "a folder with neither a submission.json nor a training log in it")):
        with pytest.raises(tools.ToolError) as e:
            tools.read_against(str(folder), 2.4)
        assert str(e.value) == f"--against {folder}: {said}"


def test_summary_skips_what_is_not_a_log_in_every_format(public_tree):
    r = subprocess.run(TOOLS + ["summary", str(public_tree)], capture_output=True, text=True)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    notes = r.stderr.strip().splitlines()
    assert len(notes) == 3 and all(n.startswith("skipped ") for n in notes)
    assert any("requirements.txt: not a training log" in n for n in notes) and any("weights.log: a binary file" in n for n in notes)
    table = r.stdout.strip().splitlines()
    assert table[0] == ("| run | score | final line | round-trip | sliding | pre-quant | steps | step_avg (ms) | artifact bytes | seed |")
    assert [row.split(" | ")[0].strip("| ") for row in table[2:]] == ["run", "train_seed1337", "train", "crashed_seed7"]  # best first
    csv_out = subprocess.run(TOOLS + ["summary", "--format", "csv", str(public_tree)], capture_output=True, text=True).stdout
    assert csv_out.splitlines()[1].startswith("run,1.1238,quantized_ttt_lora,-,1.1370,1.1800,5000,")
    js = json.loads(subprocess.run(TOOLS + ["summary", "--format", "json", str(public_tree)], capture_output=True, text=True).stdout)
    assert [row["val_bpb"] for row in js] == [1.1238, 1.14901234, 1.17312345, 1.84] and js[2]["bytes_total"] == 15580000


def test_summary_given_a_path_that_is_no_log_says_what_it_is_in_one_line(tmp_path):
    """A missing path, a named pipe and a device given by name: one line each, exit 2, nothing read (a named pipe was called
    missing: 'no such log or folder')."""
    os.mkfifo(tmp_path / "pipe.txt")
    for path, said in ((tmp_path / "gone.txt", "no such log or folder"), (tmp_path / "pipe.txt", "not a regular file or a folder (a named pipe, "),
                       (Path("/dev/null"), "not a regular file or a folder (a named pipe, ")):
        r = subprocess.run(TOOLS + ["summary", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith(f"error: {path}: {said}") and r.stderr.count("\n") == 1, r.stderr


def test_welch_p_values_match_the_t_distribution():
    assert math.isclose(tools.t_upper_tail(2.0, 10), 0.036694017385370, rel_tol=1e-9)  # Student t, 10 degrees of freedom
    assert math.isclose(tools.t_upper_tail(2.228138851986, 10), 0.025, rel_tol=1e-9)
    assert math.isclose(tools.t_upper_tail(0.7, 1), 0.5 - math.atan(0.7) / math.pi, rel_tol=1e-12)  # Cauchy
    assert math.isclose(tools.t_upper_tail(-1.3, 7), 1 - tools.t_upper_tail(1.3, 7), rel_tol=1e-12)
    w = tools.welch_improvement([2.000, 2.010, 2.005], [2.030, 2.035, 2.028])
    se = math.sqrt(0.005 ** 2 / 3 + (np_var := sum((v - 2.031) ** 2 for v in (2.030, 2.035, 2.028)) / 2) / 3)
    assert math.isclose(w["improvement"], 0.026, abs_tol=1e-12) and math.isclose(w["t"], (0.026 - 0.005) / se, rel_tol=1e-9)
    assert np_var > 0 and 0 < w["p_value"] < 0.01
    assert tools.welch_improvement([2.0], [2.1])["p_value"] is None  # one seed: no test


# ---- real runs ----

@pytest.fixture(scope="module")
def two_seeds(tiny_data, tmp_path_factory):
    """Two seeds run with the default data paths (the tiny corpus linked where the defaults
    point) and an ARTIFACT name with a space in it."""
    cwd = tmp_path_factory.mktemp("seeds")
    (cwd / "data/datasets").mkdir(parents=True)
    (cwd / "data/tokenizers").mkdir()
    os.symlink(tiny_data["data_path"], cwd / "data/datasets/fineweb10B_sp1024")
    os.symlink(tiny_data["tokenizer_path"], cwd / "data/tokenizers/fineweb_1024_bpe.model")
    for seed in (1, 2):
        env = clean_env(**{**TINY_MODEL, "RUN_ID": f"seed{seed}", "SEED": str(seed), "ITERATIONS": "4", "VAL_LOSS_EVERY": "2",
                           "ARTIFACT": "tiny model.int8.ptz", "TORCHINDUCTOR_CUDAGRAPHS": "1"})  # torch's knob: inert on a CPU
        r = run_train(cwd, env)
        assert r.returncode == 0, r.stderr[-2000:]
    return cwd


def test_our_logs_parse_with_hardware_versions_and_eval_time(two_seeds):
    r = tools.parse_log(two_seeds / "logs" / "seed1.txt")
    assert r["seed"] == 1 and r["steps"] == 4 and r["world_size"] == 1 and r["env"]["ITERATIONS"] == "4"
    assert r["env"]["ARTIFACT"] == "tiny model.int8.ptz"  # a value with a space survives the env: line
    assert r["env"]["TORCHINDUCTOR_CUDAGRAPHS"] == "1"  # torch's own knobs are logged with ours: a record reruns them
    assert r["val_bpb"] == r["sliding_val_bpb"] > 0 and r["score_line"] == "final_int8_zlib_roundtrip_sliding_exact"
    assert r["roundtrip_val_bpb"] > 0 and r["bytes_total"] > r["bytes_code"] > 0 and r["eval_time_ms"] > 0
    assert r["hardware"] == f"1xCPU ({os.cpu_count()} cores)" and r["pytorch_version"] == torch.__version__
    assert r["source"] == (ROOT / "train_gpt.py").read_text()
    assert r["data_path"] == "./data/datasets/fineweb10B_sp1024" and r["tokenizer_path"] == "./data/tokenizers/fineweb_1024_bpe.model"


def test_sweep_runs_the_grid_in_separate_folders(tiny_data, tmp_path):
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "2", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "WARMUP_STEPS": "0"})
    name = f"test_{tmp_path.name}"
    try:
        r = subprocess.run(TOOLS + ["sweep", "--name", name, "FREEZE_MODE=none,lowrank", "LORA_RANK=4,2"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        folder = ROOT / "sweeps" / name
        runs = sorted(p.name for p in folder.iterdir() if p.name != ".sweep.lock")  # dense with LORA_RANK=2 is dense with 4: run once
        assert runs == [f"{name}_FREEZE_MODE-lowrank_LORA_RANK-2", f"{name}_FREEZE_MODE-lowrank_LORA_RANK-4", f"{name}_FREEZE_MODE-none_LORA_RANK-4"]
        assert all((folder / run / "final_model.int8.ptz").exists() for run in runs)
        assert (f"sweep: {name}_FREEZE_MODE-none_LORA_RANK-2 skipped: the same run as {name}_FREEZE_MODE-none_LORA_RANK-4 (LORA_RANK=2 has no "
                "effect: it needs FREEZE_MODE=adapter or lowrank; this run has FREEZE_MODE=none)") in r.stdout.splitlines()
        table = r.stdout[r.stdout.index("| run |"):].splitlines()
        assert table[0].startswith("| run | FREEZE_MODE | LORA_RANK | score |") and len(table) == 5
        dense = next(l for l in table if l.startswith(f"| {name}_FREEZE_MODE-none_"))  # its log's warning, said where the value is read
        assert dense.startswith(f"| {name}_FREEZE_MODE-none_LORA_RANK-4 | none | 4 (no effect) | ")
        bad = subprocess.run(TOOLS + ["sweep", "--name", name, "lowercase=1"], env=env, capture_output=True, text=True)
        assert bad.returncode == 2 and "expected NAME=v1,v2 (or NAME='v1;v2' for values that hold commas)" in bad.stderr
        # Values that hold commas (target sets, rank lists, int6 layers) are given apart by ';': one run each, the value whole.
        r = subprocess.run(TOOLS + ["sweep", "--name", name + "_lists", "FREEZE_MODE=frozen", "FREEZE_TARGETS=fc;fc,proj,q"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        runs = {p.name: tools.parse_log(p / "logs" / f"{p.name}.txt") for p in (ROOT / "sweeps" / (name + "_lists")).iterdir() if p.is_dir()}
        assert {run: log["env"]["FREEZE_TARGETS"] for run, log in runs.items()} == {
            f"{name}_lists_FREEZE_MODE-frozen_FREEZE_TARGETS-fc": "fc", f"{name}_lists_FREEZE_MODE-frozen_FREEZE_TARGETS-fc.proj.q": "fc,proj,q"}
        bad = subprocess.run(TOOLS + ["sweep", "--name", name + "_bad", "--launch", "torchrunn --standalone", "SEED=1"], env=env, capture_output=True,
                             text=True)
        assert bad.returncode == 2 and bad.stderr == ("error: --launch 'torchrunn --standalone': torchrunn is not a command on PATH; accepted a "
                                                      "command that starts train_gpt.py, e.g. python3 or 'torchrun --standalone --nproc_per_node=8'\n")
        # Under torchrun, against the processes it will start (each printed the same error, then torchrun its report, until 2026-12-04)
        for launch, grid, text in (("--nproc_per_node=3", "SEED=1,2", "sweep SEED=1: WORLD_SIZE=3: must divide 8 (1, 2, 4 or 8 processes), or set GRAD_ACCUM_STEPS"),
                                   ("--nproc-per-node 2", "TRAIN_BATCH_TOKENS=2048,1000", "sweep TRAIN_BATCH_TOKENS=1000: TRAIN_BATCH_TOKENS=1000: "
                                    "must be a multiple of world size x GRAD_ACCUM_STEPS x TRAIN_SEQ_LEN = 512")):
            bad = subprocess.run(TOOLS + ["sweep", "--name", name + "_bad", "--launch", f"{sys.executable} -m torch.distributed.run {launch}",
                                          grid], env=env, capture_output=True, text=True)
            assert bad.returncode == 2 and bad.stderr == f"error: {text}; nothing was run\n", bad.stderr[-500:]
        # The whole grid is validated by the script's rules before the first run: nothing runs.
        for grid, text in ((["TORCHINDUCTOR_CUDAGRAPHS=0,1", "NUM_LAYERS=2,x"], "sweep TORCHINDUCTOR_CUDAGRAPHS=0 NUM_LAYERS=x: NUM_LAYERS='x': "
                            "not an integer; nothing was run"),  # torch's knob is a name the sweep takes
                           (["SEED=1,,2"], "'SEED=1,,2': an empty value in the list"),
                           (["INT6_LAYERS=0;"], "'INT6_LAYERS=0;': an empty value"), (["NUM_LAYRES=2"], "NUM_LAYRES is not a train_gpt.py variable (did you mean NUM_LAYERS?), nor"),
                           (["SEED=1,2,1"], "'SEED=1,2,1': the value '1' twice"), (["SEED=1", "SEED=2"], "'SEED=2': SEED is swept twice"),
                           (["RUN_ID=a,b"], "'RUN_ID=a,b': the sweep names each run itself"),
                           (["FREEZE_MODE=none,adapter", "LORA_RANK=4,64"], "LORA_RANK=64: above the smallest targeted projection dimension"),
                           (["SEED=1,2", "LORA_RANK=4,8"], "sweep LORA_RANK=4,8: LORA_RANK has no effect in any of its runs (it needs FREEZE_MODE="
                            "adapter or lowrank; the first run has FREEZE_MODE=none); nothing was run")):  # the grid would repeat itself
            bad = subprocess.run(TOOLS + ["sweep", "--name", name + "_bad", *grid], env=env, capture_output=True, text=True)
            assert bad.returncode == 2 and text in bad.stderr and "sweep: " not in bad.stdout, (grid, bad.stderr[-500:])
        assert not (ROOT / "sweeps" / (name + "_bad")).exists()
        # The name begins every run's folder and RUN_ID: '../x' made folders beside sweeps/ (and every run failed), a long one made
        # RUN_IDs the script refuses after the folders were made. Both are refused before any folder exists.
        for bad_name, text in (("../" + name + "_up", f"error: --name '../{name}_up': accepted letters, digits, _ . and - (it names sweeps/"),
                               (name + "_" + "a" * 200, "NUM_LAYERS=2: RUN_ID=")):
            bad = subprocess.run(TOOLS + ["sweep", "--name", bad_name, "NUM_LAYERS=2"], env=env, capture_output=True, text=True)
            assert bad.returncode == 2 and text in bad.stderr and bad.stderr.count("\n") == 1 and "sweep: " not in bad.stdout, bad.stderr
        assert not (ROOT / (name + "_up")).exists() and not any(p.name.startswith(name + "_a") for p in (ROOT / "sweeps").iterdir())
        # Input paths given relative to where the sweep starts still point there from each run's own folder.
        root = tiny_data["root"]
        r = subprocess.run(TOOLS + ["sweep", "--name", name + "_rel", "DATA_PATH=" + os.path.relpath(tiny_data["data_path"], root)],
                           env={**env, "TOKENIZER_PATH": os.path.relpath(tiny_data["tokenizer_path"], root)}, cwd=root, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        (run,) = (p for p in (ROOT / "sweeps" / (name + "_rel")).iterdir() if p.is_dir())  # (and the sweep's .sweep.lock)
        logged = tools.parse_log(run / "logs" / f"{run.name}.txt")["env"]
        assert (logged["DATA_PATH"], logged["TOKENIZER_PATH"]) == (tiny_data["data_path"], tiny_data["tokenizer_path"])
    finally:
        import shutil
        shutil.rmtree(ROOT / "sweeps" / name, ignore_errors=True)
        shutil.rmtree(ROOT / "sweeps" / (name + "_bad"), ignore_errors=True)
        shutil.rmtree(ROOT / "sweeps" / (name + "_rel"), ignore_errors=True)
        shutil.rmtree(ROOT / "sweeps" / (name + "_lists"), ignore_errors=True)


@pytest.mark.slow
def test_a_second_sweep_of_the_same_name_while_the_first_runs_is_refused_in_one_line(tiny_data, tmp_path):
    """Two sweeps of one name at once (a second terminal, a command run twice) ran the same runs in the same folders: each run the
    first was on was refused by its locks, the others replaced what the first had made. The second is refused before any run now,
    naming the first's pid; the first finishes; once it has, the name is free again."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "40", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "WARMUP_STEPS": "0"})
    name = f"test_{tmp_path.name}_twice"
    cmd = TOOLS + ["sweep", "--name", name, "SEED=1,2"]
    try:
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        log = ROOT / "sweeps" / name / f"{name}_SEED-1" / "logs" / f"{name}_SEED-1.txt"
        for _ in range(1200):  # its first run is training
            if (log.exists() and "step:1/" in log.read_text()) or first.poll() is not None:
                break
            time.sleep(0.05)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and second.stderr == (f"error: sweep {name}: another sweep of that name is under way (pid {first.pid}), in "
                                                            f"{ROOT / 'sweeps' / name}; wait for it to end or give --name another name; "
                                                            "nothing was run\n"), second.stderr
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0 and "sweep:" not in err, err[-2000:]
        again = subprocess.run(cmd[:-1] + ["SEED=3"], env={**env, "ITERATIONS": "2"}, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
    finally:
        shutil.rmtree(ROOT / "sweeps" / name, ignore_errors=True)


def test_a_console_that_closes_costs_a_sweep_nothing_and_a_summary_no_traceback(tiny_data, tmp_path):
    """`bash run.sh sweep ... | tee sweep.txt` with the tee killed: the sweep stopped at its next progress line with a traceback
    (and the runs after it never ran); `summary | head` ended in a BrokenPipeError traceback. Both now go on quietly."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "2", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "WARMUP_STEPS": "0"})
    name = f"test_{tmp_path.name}"
    folder = ROOT / "sweeps" / name
    try:
        r = run_with_closed_console(TOOLS + ["sweep", "--name", name, "SEED=1,2"], env=env, timeout=600)
        assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
        for seed in (1, 2):  # the runs after the first progress line ran too, to the end
            assert any(l.startswith("final_int8_zlib_roundtrip_exact ") for l in log_lines(folder / f"{name}_SEED-{seed}", f"{name}_SEED-{seed}"))
        log = (folder / f"{name}_SEED-1" / "logs" / f"{name}_SEED-1.txt").read_text()
        for i in range(800):  # a table past a pipe's 64 KiB buffer
            (tmp_path / f"run{i}.txt").write_text(log)
        r = run_with_closed_console(TOOLS + ["summary", str(tmp_path)], timeout=600)
        assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
        assert run_with_closed_terminal(TOOLS + ["summary", str(tmp_path)], timeout=600).returncode == 0  # EIO: a traceback, exit 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("target, signum", [("group", signal.SIGINT), ("sweep", signal.SIGTERM)], ids=["ctrl_c", "kill"])
def test_a_signal_stops_a_sweep_after_its_run_has_logged_where_it_stopped(tiny_data, tmp_path, target, signum):
    """Ctrl-C (SIGINT to the terminal's process group: the sweep and its run alike) and `kill PID` of the sweep alone: the run under
    way gets the signal once and logs where it stopped, no later run starts, and the sweep prints its table and one line, exit
    status 128 + the signal's number. Before, Ctrl-C ended the sweep in a KeyboardInterrupt traceback (subprocess.run killing the
    run 0.25 s later), and `kill` ended the sweep and left its run training."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "100000", "VAL_LOSS_EVERY": "0", "WARMUP_STEPS": "0", "TRAIN_LOG_EVERY": "1"})
    name = f"test_{tmp_path.name}"
    folder, first = ROOT / "sweeps" / name, f"{name}_SEED-1"
    try:
        sweep = subprocess.Popen(TOOLS + ["sweep", "--name", name, "SEED=1,2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
        log = folder / first / "logs" / f"{first}.txt"
        for _ in range(1200):  # the first run is training
            if log.exists() and "step:3/" in log.read_text():
                break
            time.sleep(0.1)
        (os.killpg if target == "group" else os.kill)(sweep.pid, signum)
        out, err = sweep.communicate(timeout=120)
        name_of = signal.Signals(signum).name
        assert sweep.returncode == 128 + signum and err == (f"error: sweep {name}: stopped by {name_of} during {first} (it exited with "
                                                             f"status {128 + signum}); not run: {name}_SEED-2\n"), err[-2000:]
        assert log_lines(folder / first, first)[-1].startswith(f"stopping: {name_of} at step:")
        assert f"| {first} | - | (stopped: {name_of} at step:" in out and not (folder / f"{name}_SEED-2").exists()
        assert not live_processes(lambda proc: Path(os.readlink(proc / "cwd")) == folder / first)  # no process of the run is left
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_sweep_at_a_terminal_pauses_its_run_on_ctrl_z_and_ends_it_on_ctrl_backslash(tiny_data, tmp_path):
    """A sweep's runs live in sessions of their own (so that a signal reaches them once, from the sweep), out of the terminal's
    reach: Ctrl-Z stopped the sweep alone while its run trained on, and Ctrl-\\ killed the sweep (a core dump) and left its run
    training. Typed at a real pseudo-terminal under a shell's job control, Ctrl-Z now stops the run with the sweep (no step is
    logged until `fg`), `fg` continues both, and Ctrl-\\ ends the run at once and the sweep in its one line, exit 131."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "100000", "VAL_LOSS_EVERY": "0", "WARMUP_STEPS": "0", "TRAIN_LOG_EVERY": "1"})
    name = f"test_{tmp_path.name}"
    folder, first = ROOT / "sweeps" / name, f"{name}_SEED-1"
    log, ours = folder / first / "logs" / f"{first}.txt", lambda proc: Path(os.readlink(proc / "cwd")) == folder / first
    term = Terminal(TOOLS + ["sweep", "--name", name, "SEED=1,2"], tmp_path, env)
    try:
        term.wait_for("step:3/100000 ")
        assert len(term.pause_and_continue(log, lambda: live_processes(ours))) == 1
        term.type(b"\x1c")
        term.wait_for("[shell] exit ")
        screen = term.screen.decode().replace("\r", "")
        assert "[shell] exit 131" in screen and (f"error: sweep {name}: stopped by SIGQUIT during {first} (it was killed by SIGQUIT); "
                                                 f"not run: {name}_SEED-2\n") in screen, screen[-2000:]
        assert not live_processes(ours) and not (folder / f"{name}_SEED-2").exists()
    finally:
        term.close()
        for pid in live_processes(ours):
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def test_record_has_the_leaderboard_shape_and_its_command_runs_inside(two_seeds, tmp_path):
    logs = [str(two_seeds / "logs" / f"seed{s}.txt") for s in (1, 2)]
    parsed = [tools.parse_log(p) for p in logs]
    other = tmp_path / "other_submission.json"
    other.write_text(json.dumps({"name": "Earlier", "seed_results": {str(s): {"val_loss": r["val_loss"] + 0.1 + 0.001 * s}
                                                                      for s, r in zip((1, 2, 3), parsed + parsed[:1])}}))
    r = subprocess.run(TOOLS + ["record", "--name", "TinyTest", "--out", str(tmp_path), "--author", "A. Tester", "--github-id", "atester",
                                "--blurb", "two tiny seeds", "--date", "2026-11-23", "--smoke", "--against", str(other)] + logs,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    folder = tmp_path / "track_non_record_16mb" / "2026-11-23_TinyTest"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "seed1.txt", "seed2.txt", "submission.json", "train_gpt.py"]
    assert (folder / "train_gpt.py").read_text() == (ROOT / "train_gpt.py").read_text()
    sub = json.loads((folder / "submission.json").read_text())
    for key in ("author", "github_id", "name", "date", "track", "val_bpb", "val_bpb_std", "seeds", "seed_results", "hardware",
                "pytorch_version", "technique_summary", "compliance", "bytes_total", "bytes_code", "val_loss"):
        assert key in sub, key
    assert sub["track"] == "non_record_16mb" and sub["seeds"] == [1, 2] and sub["author"] == "A. Tester"
    assert sorted(sub["seed_results"]) == ["1", "2"] and sub["metric"] == "final_int8_zlib_roundtrip_sliding_exact"
    finals = [p["val_bpb"] for p in parsed]
    assert [sub["seed_results"][str(s)]["val_bpb"] for s in (1, 2)] == finals == [p["sliding_val_bpb"] for p in parsed]
    assert math.isclose(sub["val_bpb"], sum(finals) / 2, rel_tol=1e-12)
    assert math.isclose(sub["val_bpb_std"], abs(finals[0] - finals[1]) / math.sqrt(2), rel_tol=1e-9)
    assert sub["seed_results"]["1"]["artifact_bytes"] == parsed[0]["bytes_total"] and sub["seed_results"]["2"]["steps"] == 4
    assert sub["hardware"] == f"1xCPU ({os.cpu_count()} cores)" and sub["pytorch_version"] == torch.__version__
    assert sub["compliance"] == {"train_under_600s": True, "artifact_under_16mb": True, "eval_under_600s": True, "three_seeds": False}
    ours, theirs = [p["val_loss"] for p in parsed], [p["val_loss"] + 0.1 + 0.001 * s for s, p in zip((1, 2, 3), parsed + parsed[:1])]
    assert math.isclose(sub["against"]["improvement"], sum(theirs) / 3 - sum(ours) / 2, rel_tol=1e-9) and sub["against"]["p_value"] is not None
    readme = (folder / "README.md").read_text()
    assert "SMOKE EXAMPLE: NOT A SCORE" in readme and "| seed | val_loss | val_bpb |" in readme and "std" in readme
    assert f"Mean improvement {sub['against']['improvement']:+.5f} nats" in readme and "One-sided Welch t-test" in readme
    cmd = readme[readme.index("```bash") + 8: readme.index("```", readme.index("```bash") + 8)]
    assert "python3 train_gpt.py" in cmd and "SEED=$SEED" in cmd and "ARTIFACT='tiny model.int8.ptz'" in cmd and "TORCHINDUCTOR_CUDAGRAPHS=1 " in cmd
    assert "DATA_PATH=../" in cmd and "TOKENIZER_PATH=../" in cmd  # the defaults the runs used, as seen from inside the folder
    # The README's command itself, verbatim, from inside the folder, reproduces both seeds' scores.
    # Its python3 is this suite's interpreter (the seeds' torch): another release's kernels train other last bits (README "PyTorch versions").
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    run = subprocess.run(["bash", "-c", cmd], cwd=folder, env=clean_env(PATH=path), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    again = [tools.parse_log(folder / "logs" / f"seed{s}.txt") for s in (1, 2)]
    assert [a["val_bpb"] for a in again] == finals and (folder / "tiny model.int8.ptz").exists()
    twice = subprocess.run(TOOLS + ["record", "--name", "TinyTest", "--out", str(tmp_path), "--date", "2026-11-23"] + logs,
                           capture_output=True, text=True)
    assert twice.returncode == 2 and "already exists" in twice.stderr


def test_record_refuses_unfinished_mixed_or_sourceless_logs(two_seeds, tmp_path):
    broken = tmp_path / "broken.txt"
    text = (two_seeds / "logs" / "seed1.txt").read_text()
    broken.write_text(text[: text.index("final_int8_zlib_roundtrip ")])
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(broken)], capture_output=True, text=True)
    assert r.returncode == 2 and "not a finished run" in r.stderr
    no_loss = tmp_path / "no_loss.txt"  # final lines with val_bpb alone: the README's mean in nats was a TypeError, until 2026-12-07
    no_loss.write_text(re.sub(r"^(final\S*) val_loss:\S+", r"\1", text, flags=re.M))
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(no_loss)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == (f"error: {no_loss}: not a finished run (no final line with val_loss and val_bpb, or no size "
                                              "line)\n"), r.stderr
    other = tmp_path / "other.txt"
    other.write_text("# another version\n" + text)
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(two_seeds / "logs" / "seed1.txt"), str(other)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "different versions of train_gpt.py" in r.stderr
    longer = tmp_path / "longer.txt"  # another configuration: its env: line says ITERATIONS=5 where seed1's says 4
    longer.write_text((two_seeds / "logs" / "seed2.txt").read_text().replace("\nenv: ", "\nenv: ITERATIONS=5 ", 1).replace(" ITERATIONS=4", ""))
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(two_seeds / "logs" / "seed1.txt"), str(longer)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == (f"error: {longer}: ITERATIONS='5', but {two_seeds / 'logs' / 'seed1.txt'} has ITERATIONS='4'; "
                                              "a record is one configuration over seeds\n"), r.stderr
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(broken), str(two_seeds / "logs" / "seed1.txt")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == f"error: --out {broken}: cannot be written (File exists)\n"  # a file, not a folder
    console = tmp_path / "console.log"
    console.write_text(CONSOLE_LOG)
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(console)], capture_output=True, text=True)
    assert r.returncode == 2 and "no train_gpt.py source at its head" in r.stderr
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), "--against", "1.2,abc", str(two_seeds / "logs/seed1.txt")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--against '1.2,abc': expected a record's folder or submission.json" in r.stderr
    for date in ("notadate", "2026-02-29", "../../x"):  # it begins the folder's name: '../../x' climbed out of --out
        r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), "--date", date, str(two_seeds / "logs/seed1.txt")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr == f"error: --date {date!r}: accepted a date as YYYY-MM-DD (the challenge's folder names begin with one)\n"
    for name, quoted in (("a" * 300, f"'{'a' * 60}'... (300 characters)"), ("x/y", "'x/y'")):  # 300: 'File name too long ... (free space or give
        r = subprocess.run(TOOLS + ["record", "--name", name, "--out", str(tmp_path), str(two_seeds / "logs/seed1.txt")],  # another --out)'
                           capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr == f"error: --name {quoted}: accepted 1 to 200 letters, digits, _ . and - (it ends the folder's " \
            "name, records/track_*/<YYYY-MM-DD>_<name>/)\n", r.stderr
    assert not (tmp_path / "track_non_record_16mb").exists()


@pytest.mark.parametrize("target, signum", [("group", signal.SIGINT), ("record", signal.SIGTERM)], ids=["ctrl_c", "kill"])
def test_a_signal_during_the_records_check_leaves_nothing(two_seeds, tmp_path, target, signum):
    """Ctrl-C (SIGINT to the terminal's process group) or `kill PID` of the tool while the folder's script runs its check from a
    scratch copy: one line, exit status 128 + the signal's number, and nothing left: no folder or half-made folder under --out, no
    scratch copy, no process. Before, a `kill` left the half-made `.record_*` folder under --out and the check training in a scratch
    folder never removed; Ctrl-C ended in a traceback."""
    out = tmp_path / "out"
    record = subprocess.Popen(TOOLS + ["record", "--name", "X", "--out", str(out), "--date", "2026-12-03"] +
                              [str(two_seeds / "logs" / f"seed{s}.txt") for s in (1, 2)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    parent_is_record = lambda proc: (proc / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(record.pid)
    for _ in range(600):  # the check's train_gpt.py has started from its scratch copy
        checks = live_processes(parent_is_record)
        if checks:
            break
        time.sleep(0.05)
    scratch = Path(os.readlink(f"/proc/{checks[0]}/cwd"))
    (os.killpg if target == "group" else os.kill)(record.pid, signum)
    _, err = record.communicate(timeout=120)
    assert record.returncode == 128 + signum and err == (
        f"error: stopped by {signal.Signals(signum).name} while the folder's train_gpt.py ran its check; nothing was written to "
        f"{out / 'track_non_record_16mb' / '2026-12-03_X'} (rerun the same command)\n"), err[-2000:]
    assert list(out.iterdir()) == [] and scratch.name.startswith(".record_") and not scratch.parent.exists()
    assert not live_processes(lambda proc: os.readlink(proc / "cwd").startswith(str(scratch)))


def read_bytes_of(pid: int) -> int:  # what a process has read so far (files and pipes), from /proc
    return int(re.search(r"^rchar: (\d+)$", Path(f"/proc/{pid}/io").read_text(), re.M).group(1))


@pytest.mark.parametrize("target, signum", [("group", signal.SIGINT), ("tool", signal.SIGTERM)], ids=["ctrl_c", "kill"])
def test_a_signal_stops_summary_and_import_in_one_line(tmp_path, target, signum):
    """Ctrl-C or `kill` while `summary` reads a large tree of logs (300 of 350 KB, links to one file), and while `import` loads torch:
    one line each, exit status 128 + the signal's number, and for import, no --out and no temporary file beside it. Before, Ctrl-C
    ended both in a KeyboardInterrupt traceback (and `kill` in no line at all)."""
    name = signal.Signals(signum).name
    steps = "".join(f"step:{i}/20000 train_loss:2.{i % 1000:04d} train_time:{i * 85}ms step_avg:85.00ms\n" for i in range(1, 5001))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run0.txt").write_text(f"model_params:17059912\n{steps}final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n")
    for i in range(1, 300):
        os.link(tmp_path / "logs" / "run0.txt", tmp_path / "logs" / f"run{i}.txt")
    out = tmp_path / "imported.ptz"
    for command, started in ((["summary", str(tmp_path / "logs")], lambda pid: read_bytes_of(pid) > 10_000_000),  # 20 logs read
                             (["import", str(PEER_FIXTURE / "peer_final_model.int8.ptz"), "--out", str(out)],
                              lambda pid: "libtorch" in Path(f"/proc/{pid}/maps").read_text())):  # inside `import torch`
        tool = subprocess.Popen(TOOLS + command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(600):
            if started(tool.pid):
                break
            time.sleep(0.02)
        (os.killpg if target == "group" else os.kill)(tool.pid, signum)
        stdout, err = tool.communicate(timeout=120)
        said = "nothing was written" if command[0] == "summary" else f"nothing was written to {out}"
        assert tool.returncode == 128 + signum and err == f"error: {command[0]}: stopped by {name}; {said}\n" and stdout == "", err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


STOPPED_IN_A_CALLBACK = """
import os, signal, sys, time, weakref
sys.path.insert(0, sys.argv[1])
from tools import start_run, tool_main
class Cached: pass
def main():  # a benchmark's body: a run under way, then work in this process while a library's weakref callback runs
    run = start_run([sys.executable, "-c", "import time; time.sleep(60)"])
    def callback(ref):  # the signal comes while it runs
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        for _ in range(10 ** 5): pass
    cached = Cached()
    ref = weakref.ref(cached, callback)
    del cached
    began = time.time()
    while time.time() - began < 5:
        pass
    print("ran to its end")
    run.kill()
sys.exit(tool_main(main, "probe"))
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_inside_a_librarys_callback_still_stops_a_benchmark_and_its_run(name):
    """A tool's handler raises Stopped where the main thread is; inside a finalizer or weakref callback Python prints it as
    'Exception ignored' and drops it: the tool ran on (a benchmark's worker timed steps on, its bench waited 20 s and SIGKILLed
    it). The Stopped is raised again a moment later, outside the callback: one line, 128 + the signal's number, the run ended."""
    tool = subprocess.run([sys.executable, "-c", STOPPED_IN_A_CALLBACK, str(ROOT / "records"), name], capture_output=True, text=True,
                          timeout=120)
    assert tool.returncode == 128 + getattr(signal, name) and tool.stdout == "", (tool.returncode, tool.stdout, tool.stderr[-2000:])
    assert tool.stderr == f"error: probe: stopped by {name}; the runs under way got it and have ended, no later run was started\n"


def test_a_record_on_a_full_disk_is_one_line_and_leaves_the_earlier_record(two_seeds, tmp_path):
    """A real full disk under --out (a 64 KB tmpfs, root only; the logs alone are larger): one line, exit 2, no half-made folder,
    and the record already there untouched. Before: an OSError traceback."""
    with small_disk(tmp_path / "disk", "64k") as disk:
        earlier = disk / "track_non_record_16mb" / "2026-12-01_Earlier"
        earlier.mkdir(parents=True)
        (earlier / "submission.json").write_text('{"val_bpb": 1.5}')
        r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(disk), "--date", "2026-12-03"] +
                           [str(two_seeds / "logs" / f"seed{s}.txt") for s in (1, 2)], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr == (f"error: {disk}: No space left on device while the record folder was made; nothing was "
                                                  f"written to {disk / 'track_non_record_16mb' / '2026-12-03_X'} (free space or give another "
                                                  "--out)\n"), r.stderr[-2000:]
        assert sorted(p.name for p in disk.rglob("*")) == ["2026-12-01_Earlier", "submission.json", "track_non_record_16mb"]
        assert (earlier / "submission.json").read_text() == '{"val_bpb": 1.5}'


def test_a_record_of_zstd_runs_says_what_it_needs_and_is_checked_with_zstd(tiny_data, tmp_path):
    """ARTIFACT_CODEC=zstd needs the zstandard package to write and to read the artifact: the record folder gets the
    requirements.txt that the challenge's submissions carry when they need more than torch, numpy and sentencepiece."""
    pytest.importorskip("zstandard")
    env = clean_env(**{**TINY_MODEL, "RUN_ID": "zstd_seed3", "SEED": "3", "ITERATIONS": "2", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0",
                       "ARTIFACT_CODEC": "zstd", "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"]})
    assert run_train(tmp_path, env).returncode == 0
    r = subprocess.run(TOOLS + ["record", "--name", "Zstd", "--out", str(tmp_path / "records"), "--date", "2026-12-01",
                                str(tmp_path / "logs" / "zstd_seed3.txt")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    folder = tmp_path / "records" / "track_non_record_16mb" / "2026-12-01_Zstd"
    assert (folder / "requirements.txt").read_text() == "zstandard\n"
    assert json.loads((folder / "submission.json").read_text())["metric"] == "final_int8_zstd_roundtrip_exact"
    readme = (folder / "README.md").read_text()
    assert "Needs `zstandard` beyond torch, numpy and sentencepiece: `pip install -r requirements.txt`." in readme and "ARTIFACT_CODEC=zstd" in readme


def test_a_diverged_score_sorts_last_and_is_never_a_record_or_a_record_to_beat(two_seeds, tmp_path):
    """A log whose final score is nan or inf (a diverged run; a hand-edited log) sorts after every finite score, is refused by
    `record`, and a record to beat with such a value (or 0, a template's placeholder), or of an unexpected shape, is one line, not a
    p-value of nan or a traceback."""
    logs = tmp_path / "logs"
    logs.mkdir()
    text = (two_seeds / "logs/seed1.txt").read_text()
    final = text[text.index("final_int8_zlib_roundtrip_sliding_exact"):].splitlines()[0]
    for name, value in (("a_nan", "nan"), ("b_inf", "inf")):
        (logs / f"{name}.txt").write_text(text.replace(final, re.sub(r"val_bpb:\S+", f"val_bpb:{value}", final)))
    shutil.copy(two_seeds / "logs/seed2.txt", logs / "z_finite.txt")
    r = subprocess.run(TOOLS + ["summary", str(logs)], capture_output=True, text=True)
    assert r.returncode == 0 and [row.split(" | ")[0].strip("| ") for row in r.stdout.splitlines()[2:]] == ["z_finite", "a_nan", "b_inf"]
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(logs / "a_nan.txt")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "a_nan.txt: its final score is val_loss " in r.stderr and r.stderr.strip().endswith(" val_bpb nan, not a finite number above 0")
    (logs / "zero.txt").write_text(text.replace(final, re.sub(r"val_bpb:\S+", "val_bpb:0.0", final)))  # it divided by zero with --against
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), "--against", "1.2,1.3", str(logs / "zero.txt")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {logs / 'zero.txt'}: its final score is val_loss ") and r.stderr.endswith(
        " val_bpb 0.0, not a finite number above 0\n") and r.stderr.count("\n") == 1, r.stderr
    bad_json = ({"seed_results": {"1": {"val_loss": "NaN"}}, "name": "A"}, {"seed_results": [1.2, 1.3]}, {"val_bpb": "1.2x"}, [1, 2],
                {"seed_results": {"42": {"val_bpb": True}}}, {"val_loss": 10**400},  # 1.0 and an OverflowError until 2026-12-06
                {"name": "WIP Placeholder Submission", "val_loss": 0.0, "val_bpb": 0.0},  # the template's zeros, as a public one holds them
                {"date": "2026-03-20", "val_bpb": "pending"})  # a score to come, as another public one holds it
    for i, against in enumerate(["1.2,nan", "loss:2.0,inf", "1.2,-1.1"] + [json.dumps(b) for b in bad_json]):
        if against.startswith(("{", "[")):
            (tmp_path / f"sub{i}.json").write_text(against)
            against = str(tmp_path / f"sub{i}.json")
        r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), "--against", against, str(two_seeds / "logs/seed1.txt")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith(f"error: --against {against}") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.strip().endswith("of an unexpected shape: could not convert string to float: 'pending')")  # the last: what it holds
    assert not (tmp_path / "track_non_record_16mb").exists()


def test_summary_says_why_a_run_stopped(two_seeds, tiny_data, tmp_path):
    """A sweep's run that stopped (a non-finite loss here; out of memory, a signal) showed only dashes in the summary: its final-line
    cell now says why, from the run's own `stopping:` line, and the JSON has it as `stopped`."""
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"], "RUN_ID": "nan",
                       "TIED_EMBED_LR": "1e30", "WARMUP_STEPS": "0"})
    assert run_train(tmp_path, env).returncode == 3
    shutil.copy(two_seeds / "logs/seed2.txt", tmp_path / "logs" / "seed2.txt")
    r = subprocess.run(TOOLS + ["summary", str(tmp_path / "logs")], capture_output=True, text=True)
    head, _, *rows = [[c.strip() for c in row.strip("|").split("|")] for row in r.stdout.splitlines()]
    assert r.returncode == 0 and [row[0] for row in rows] == ["seed2", "nan"], r.stdout
    ended = [row[head.index("final line")] for row in rows]
    assert ended[0] == "final_int8_zlib_roundtrip_sliding_exact"
    assert re.fullmatch(r"step \(stopped: non-finite train_loss:nan at step:\d+/12\)", ended[1]), ended[1]  # its score: step 0's validation
    r = subprocess.run(TOOLS + ["summary", "--format", "json", str(tmp_path / "logs")], capture_output=True, text=True)
    assert [row["stopped"] for row in json.loads(r.stdout)] == [None, ended[1][len("step (stopped: "):-1]]


def test_a_run_over_the_size_cap_says_so_in_its_log(tiny_data, tmp_path):
    # A 131,072 x 256 hashed bigram table: stored, barely compressible, and cheap to run.
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"], "RUN_ID": "big",
                       "BIGRAM_BUCKETS": "131072", "BIGRAM_DIM": "256", "ITERATIONS": "1", "WARMUP_STEPS": "0",
                       "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0"})
    r = run_train(tmp_path, env)
    assert r.returncode == 0, r.stderr[-2000:]
    log = tools.parse_log(tmp_path / "logs/big.txt")
    assert log["bytes_total"] > 16_000_000
    assert f"warning: Total submission size {log['bytes_total']} bytes is over the challenge's 16000000-byte cap" in r.stdout


PEER_FIXTURE = ROOT / "tests" / "fixtures" / "peer_artifact"  # made by the challenge's own script (make.py there)


class RunsCommand:  # unpickled by a plain loader, it runs its command: what a hostile artifact would hold
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_import_turns_the_challenge_scripts_artifact_into_one_eval_only_scores_as_the_house_logged_it(tmp_path):
    """`records/tools.py import`: the house's final_model.int8.ptz becomes an artifact of ours with the same int8 values, scales and
    kept tensors under our names, for the model the environment describes; EVAL_ONLY=1 in a real process scores it as the house's
    log says (to 1e-6: the house sums fp32 batch means), and with a sliding window. Refused in one line each, nothing written: an
    existing --out (left as it was), another shape in the environment, our own artifact, and a file that is no artifact."""
    reference = json.loads((PEER_FIXTURE / "reference.json").read_text())
    shape = {k: reference["env"][k] for k in ("VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "TRAIN_SEQ_LEN")}
    house, out = PEER_FIXTURE / "peer_final_model.int8.ptz", tmp_path / "imported.ptz"
    tool = lambda *args, **env: subprocess.run([sys.executable, str(ROOT / "records" / "tools.py"), "import", *map(str, args)], cwd=tmp_path,
                                               env=clean_env(**env), capture_output=True, text=True, timeout=300)
    r = tool(house, "--out", out, **shape)
    assert r.returncode == 0 and r.stdout.startswith(f"wrote {out} (") and f"EVAL_ONLY=1 ARTIFACT={out}" in r.stdout, r.stderr
    theirs, ours = (torch.load(io.BytesIO(zlib.decompress(f.read_bytes())), weights_only=True) for f in (house, out))
    rename = {n: next((n.replace(a, b) for a, b in tools.HOUSE_NAMES.items() if a in n), n) for n in [*theirs["quantized"], *theirs["passthrough"]]}
    assert sorted(ours["q"]) == sorted(rename[n] for n in theirs["quantized"]) and ".attn.q." in " ".join(ours["keep"])
    assert all(torch.equal(ours["q"][rename[n]], q) and torch.equal(ours["scale"][rename[n]], theirs["scales"][n]) for n, q in theirs["quantized"].items())
    assert all(torch.equal(ours["keep"][rename[n]], t) for n, t in theirs["passthrough"].items()) and ours["meta"]["config"]["num_layers"] == 2
    scored = subprocess.run([sys.executable, str(ROOT / "train_gpt.py")], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=clean_env(
        EVAL_ONLY="1", ARTIFACT=out, DATA_PATH=PEER_FIXTURE, TOKENIZER_PATH=PEER_FIXTURE / "tokenizer.model", EVAL_STRIDE="64", RUN_ID="scored"))
    assert scored.returncode == 0, scored.stderr[-2000:]
    loss, bpb = map(float, re.search(r"^final_int8_zlib_roundtrip_exact val_loss:(\S+) val_bpb:(\S+)", scored.stdout, re.M).groups())
    logged = reference["final_int8_zlib_roundtrip_exact"]
    assert abs(loss - logged["val_loss"]) < 1e-6 and abs(bpb - logged["val_bpb"]) < 1e-6, (loss, bpb, logged)
    assert re.search(r"^final_int8_zlib_roundtrip_sliding_exact val_loss:\S+ val_bpb:\S+ scored_tokens:16384$", scored.stdout, re.M)
    before, other, code_pickle = out.read_bytes(), tmp_path / "other.ptz", tmp_path / "code.ptz"
    # A pickle (protocol 4) that would run a command when loaded: refused by weights-only loading, in one line (torch's warning about
    # the protocol came first, two more lines), and the command never runs.
    code_pickle.write_bytes(zlib.compress(pickle.dumps(SimpleNamespace(x=RunsCommand(f"touch {tmp_path / 'ran'}")), protocol=4)))
    for args, env, said in (((house, "--out", out), shape, f"error: --out {out}: exists; give a new path"),
                            ((house, "--out", other), {**shape, "NUM_LAYERS": "3"},
                             f"error: {house}: not the model this environment describes (VOCAB_SIZE=2304 NUM_LAYERS=3 "),
                            ((out, "--out", other), shape, f"error: {out}: not an artifact of the challenge's script"),
                            ((PEER_FIXTURE / "tokenizer.model", "--out", other), shape, f"error: {PEER_FIXTURE / 'tokenizer.model'}: not a compressed"),
                            ((code_pickle, "--out", other), shape, f"error: {code_pickle}: refused by weights-only loading (UnpicklingError: ")):
        r = tool(*args, **env)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith(said) and r.stderr.count("\n") == 1, r.stderr
    assert out.read_bytes() == before and not other.exists() and not (tmp_path / "ran").exists()
    for name, change, said in (("no_scales", lambda blob: blob.pop("scales"), "not an artifact of the challenge's script"),
                               ("odd_name", lambda blob: blob["passthrough"].update({7: torch.zeros(1)}), "its tensors do not match its config"),
                               # found by replacing every field in turn: a traceback (a tensor's comparison is no bool) until 2026-12-06
                               ("format_tensor", lambda blob: blob.update(__quant_format__=torch.zeros(2)), "format unknown")):
        odd = dict(theirs)
        odd.update({k: dict(theirs[k]) for k in ("quantized", "scales", "passthrough")})
        change(odd)
        buf = io.BytesIO()
        torch.save(odd, buf)
        (tmp_path / f"{name}.ptz").write_bytes(zlib.compress(buf.getvalue()))
        r = tool(tmp_path / f"{name}.ptz", "--out", other, **shape)
        assert r.returncode == 2 and said in r.stderr and r.stderr.count("\n") == 1 and not other.exists(), r.stderr
    direct = subprocess.run([sys.executable, str(ROOT / "train_gpt.py")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=clean_env(EVAL_ONLY="1", ARTIFACT=house, DATA_PATH=PEER_FIXTURE, TOKENIZER_PATH=PEER_FIXTURE / "tokenizer.model"))
    assert direct.returncode == 2 and direct.stderr == (f"error: ARTIFACT={house}: not an artifact of format rlm_int8_zlib_v1 but int8_clean_per_row_v1, "
                                                        "the challenge script's: convert it with `bash run.sh import FILE --out NEW` (records/tools.py)\n")


def test_run_sh_reads_the_paths_it_is_given_from_the_callers_folder(tmp_path):
    """run.sh works in the project's folder, and read the paths given to it from there: `bash ../../run.sh summary .` in a record's
    folder summarised the whole project, `summary run.txt` found no such log, `import` read and wrote beside the project, and a
    relative DATA_PATH or PYTHON named a path that was not the caller's. The tools now run in the caller's folder, and the input
    variables and PYTHON are made absolute against it before run.sh moves to the project's folder."""
    listed = re.search(r'^INPUT_PATHS="([A-Z_ ]+)"', (ROOT / "run.sh").read_text(), re.M)[1].split()
    assert tuple(listed) == tools.SWEEP_INPUT_PATHS  # one list of what a run reads, in run.sh as in the sweep
    here = tmp_path / "my run"  # a space in it too
    here.mkdir()
    (here / "run.txt").write_text("step:2/2 val_loss:2.5000 val_bpb:1.4800 train_time:10ms step_avg:5.00ms\n"
                                  "final_int8_zlib_roundtrip_exact val_loss:2.50000000 val_bpb:1.48000000\n")
    (here / "py").symlink_to(sys.executable)
    run_sh = lambda *args, **env: subprocess.run(["bash", str(ROOT / "run.sh"), *args], cwd=here, env=clean_env(**env),
                                                 capture_output=True, text=True, timeout=300)
    for paths in (["."], ["run.txt"]):
        r = run_sh("summary", *paths, "--format", "csv", PYTHON="./py")
        assert r.returncode == 0 and [l.split(",")[0] for l in r.stdout.splitlines()] == ["run", "run"], (r.stdout, r.stderr)
    r = run_sh("summary")  # given nothing: the logs/ of the caller's folder, which has none
    assert r.returncode == 2 and r.stderr == (f"error: logs: no such log or folder in {here} (given nothing, summary reads the logs/ of the "
                                              "folder it runs in); give logs or folders\n"), r.stderr
    shutil.copy(PEER_FIXTURE / "peer_final_model.int8.ptz", here / "theirs.ptz")
    shape = {k: v for k, v in json.loads((PEER_FIXTURE / "reference.json").read_text())["env"].items()
             if k in ("VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS")}
    r = run_sh("import", "theirs.ptz", "--out", "ours.ptz", **shape)
    assert r.returncode == 0 and r.stdout.startswith("wrote ours.ptz (") and (here / "ours.ptz").is_file(), r.stderr
    run_id = f"test_paths_{here.parent.name}"  # the demo trains in the project's folder: its log of the refusal is removed after
    try:
        r = run_sh(DATA_PATH="shards", RUN_ID=run_id)  # the CPU demo, refused before any work: the folder named is the caller's
    finally:
        for name in (f"{run_id}.txt", f".{run_id}.txt.lock"):
            (ROOT / "logs" / name).unlink(missing_ok=True)
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith(f"error: DATA_PATH={here}/shards: no val shards match "), r.stderr


def test_a_sweep_starts_its_runs_with_a_python_whose_path_holds_a_space(tiny_data, tmp_path):
    """run.sh handed the sweep its launch command as one string, split at every space: a Python under `/Users/me/My Projects/`
    (PYTHON, or run.sh's own .venv in a project there) became the command `/Users/me/My`, and no run started. The command now goes
    as the shell quotes it and is split as the shell splits it; a quote left open is refused in one line."""
    project = tmp_path / "My Projects" / "pg"
    (project / "records").mkdir(parents=True), (project / "data").mkdir()
    for name in ("run.sh", "train_gpt.py", "records/tools.py", "data/export_corpus.py"):  # tools.py reads outside JSON as the exporter does
        shutil.copy(ROOT / name, project / name)
    for sub, name in (("datasets", "shakespeare_sp1024"), ("tokenizers", "shakespeare_1024_bpe.model")):  # what run.sh checks is built
        (project / "data" / sub).mkdir(parents=True)
        os.symlink(ROOT / "data" / sub / name, project / "data" / sub / name)
    (tmp_path / "My Projects" / "python").symlink_to(sys.executable)
    env = clean_env(**{**TINY_MODEL, "ITERATIONS": "2", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "DATA_PATH": tiny_data["data_path"],
                       "TOKENIZER_PATH": tiny_data["tokenizer_path"], "PYTHON": str(tmp_path / "My Projects" / "python")})
    r = subprocess.run(["bash", "run.sh", "sweep", "--name", "spaced", "SEED=1,2"], cwd=project, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.parent.name for p in (project / "sweeps" / "spaced").glob("*/final_model.int8.ptz")) == ["spaced_SEED-1", "spaced_SEED-2"]
    bad = subprocess.run(TOOLS + ["sweep", "--name", "open_quote", "--launch", "torchrun 'x", "SEED=1"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == ("error: --launch \"torchrun 'x\": No closing quotation; accepted a command as the shell "
                                                  "would take it\n") and not (ROOT / "sweeps" / "open_quote").exists()


def test_a_signal_ignored_from_the_start_stays_ignored_in_the_tools_and_the_exporter():
    """Under nohup (SIGHUP ignored from the start) a sweep, a record's check, a benchmark or an export is meant to outlive a closed
    terminal; their own handlers replaced the ignore, so a hang-up stopped them all the same. Each leaves it as it found it."""
    import export_corpus
    before = {s: signal.getsignal(s) for s in tools.STOP_SIGNALS}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with tools.SignalsToTheRun():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        export_corpus.stop_on_signals()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN and signal.getsignal(signal.SIGINT) is export_corpus.interrupt
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
