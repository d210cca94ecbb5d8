"""Tooling around the script: sweeps, their summary and records folders (records/tools.py),
on real logs of real runs."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_MODEL, clean_env, run_train

pytestmark = pytest.mark.slow
TOOLS = [sys.executable, str(ROOT / "records" / "tools.py")]


@pytest.fixture(scope="module")
def two_seeds(tiny_data, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("seeds")
    for seed in (1, 2):
        env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                           "RUN_ID": f"seed{seed}", "SEED": str(seed), "ITERATIONS": "4", "VAL_LOSS_EVERY": "2"})
        r = run_train(cwd, env)
        assert r.returncode == 0, r.stderr[-2000:]
    return cwd


def test_summary_parses_real_logs(two_seeds):
    sys.path.insert(0, str(ROOT / "records"))
    from tools import parse_log
    r = parse_log(two_seeds / "logs" / "seed1.txt")
    assert r["seed"] == 1 and r["steps"] == 4 and r["world_size"] == 1 and r["env"]["ITERATIONS"] == "4"
    assert r["val_bpb"] > 0 and r["sliding_val_bpb"] > 0 and r["bytes_total"] > r["bytes_code"] > 0
    assert r["source"] == (ROOT / "train_gpt.py").read_text()
    out = subprocess.run(TOOLS + ["summary", str(two_seeds)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("| run id | SEED | steps | step_avg (ms) | pre-quant val_bpb | round-trip val_bpb | sliding val_bpb |")
    rows = [l.split(" | ") for l in out[2:]]
    assert sorted(r[0].strip("| ") for r in rows) == ["seed1", "seed2"] and len(out) == 4
    best = [float(r[6]) for r in rows]
    assert best == sorted(best)  # sorted by val_bpb (sliding), best first


def test_sweep_runs_the_grid_in_separate_folders(tiny_data, tmp_path):
    env = clean_env(**{**TINY_MODEL, "DATA_PATH": tiny_data["data_path"], "TOKENIZER_PATH": tiny_data["tokenizer_path"],
                       "ITERATIONS": "2", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "WARMUP_STEPS": "0"})
    name = f"test_{tmp_path.name}"
    try:
        r = subprocess.run(TOOLS + ["sweep", "--name", name, "FREEZE_MODE=none,lowrank", "LORA_RANK=4"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        folder = ROOT / "sweeps" / name
        runs = sorted(p.name for p in folder.iterdir())
        assert runs == [f"{name}_FREEZE_MODE-lowrank_LORA_RANK-4", f"{name}_FREEZE_MODE-none_LORA_RANK-4"]
        assert all((folder / run / "final_model.int8.ptz").exists() for run in runs)
        table = r.stdout[r.stdout.index("| run id |"):].splitlines()
        assert table[0].startswith("| run id | FREEZE_MODE | steps |") and len(table) == 4
        bad = subprocess.run(TOOLS + ["sweep", "--name", name, "lowercase=1"], env=env, capture_output=True, text=True)
        assert bad.returncode == 2 and "expected NAME=v1,v2" in bad.stderr
    finally:
        import shutil
        shutil.rmtree(ROOT / "sweeps" / name, ignore_errors=True)


def test_record_folder_is_complete_and_its_script_runs_inside(two_seeds, tmp_path):
    logs = [str(two_seeds / "logs" / f"seed{s}.txt") for s in (1, 2)]
    r = subprocess.run(TOOLS + ["record", "--name", "TinyTest", "--out", str(tmp_path), "--author", "A. Tester", "--github-id", "atester",
                                "--blurb", "two tiny seeds", "--date", "2026-11-23", "--smoke"] + logs, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    folder = tmp_path / "track_non_record_16mb" / "2026-11-23_TinyTest"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "seed1.txt", "seed2.txt", "submission.json", "train_gpt.py"]
    assert (folder / "train_gpt.py").read_text() == (ROOT / "train_gpt.py").read_text()
    sub = json.loads((folder / "submission.json").read_text())
    for key in ("author", "github_id", "name", "blurb", "date", "val_loss", "val_bpb", "bytes_total", "bytes_code", "seeds", "seed_results"):
        assert key in sub, key
    assert sub["seeds"] == [1, 2] and sub["metric"] == "sliding_val_bpb" and sub["author"] == "A. Tester"
    vals = [s["sliding_val_bpb"] for s in sub["seed_results"]]
    assert abs(sub["val_bpb"] - sum(vals) / 2) < 1e-12
    readme = (folder / "README.md").read_text()
    assert "SMOKE EXAMPLE: NOT A SCORE" in readme and "| seed | val_loss |" in readme and "std" in readme
    cmd = readme[readme.index("```bash") + 8: readme.index("```", readme.index("```bash") + 8)]
    assert "python3 train_gpt.py" in cmd and "SEED=$SEED" in cmd
    assert "DATA_PATH=../" in cmd  # data paths as seen from inside the folder ...
    # ... and the folder's own script runs from inside it (the tool checked; so do we, with its README's data paths).
    env = clean_env(**{**TINY_MODEL, "ITERATIONS": "1", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0", "RUN_ID": "inside"})
    for key in ("DATA_PATH", "TOKENIZER_PATH"):
        env[key] = next(part.split("=", 1)[1] for part in cmd.split() if part.startswith(key + "="))
    run = subprocess.run([sys.executable, "train_gpt.py"], cwd=folder, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    again = subprocess.run(TOOLS + ["record", "--name", "TinyTest", "--out", str(tmp_path), "--date", "2026-11-23"] + logs,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_record_refuses_unfinished_or_mixed_logs(two_seeds, tmp_path):
    broken = tmp_path / "broken.txt"
    text = (two_seeds / "logs" / "seed1.txt").read_text()
    broken.write_text(text[: text.index("final_int8_zlib_roundtrip ")])
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(broken)], capture_output=True, text=True)
    assert r.returncode == 2 and "not a finished run" in r.stderr
    other = tmp_path / "other.txt"
    other.write_text("# another version\n" + text)
    r = subprocess.run(TOOLS + ["record", "--name", "X", "--out", str(tmp_path), str(two_seeds / "logs" / "seed1.txt"), str(other)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "different versions of train_gpt.py" in r.stderr
    assert not (tmp_path / "track_non_record_16mb").exists()
