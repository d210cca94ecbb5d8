"""Sweeps, their summary, and submission folders, from train_gpt.py's own logs.

    python3 records/tools.py sweep NAME=v1,v2 [NAME2=a,b ...]   # the grid, one run after another
    python3 records/tools.py summary [DIR_OR_LOG ...]           # markdown table, best val_bpb first
    python3 records/tools.py record --name NAME LOG [LOG ...]   # records/<track>/<date>_<NAME>/

`bash run.sh sweep|summary|record ...` calls these with the run settings of `bash run.sh`
(CPU demo defaults without a GPU; torchrun on every GPU with one).

A sweep run gets a readable RUN_ID (`<sweep>_NAME-v1_NAME2-a`) and its own working folder
`sweeps/<sweep>/<RUN_ID>/`, so artifacts never overwrite each other. Every log starts with
the full source of the script that wrote it and has an `env:` line with the variables that
were set; the summary reads the swept values from there. A record folder gets README.md
(configuration, command, per-seed table, mean and std), submission.json, the logs, and
train_gpt.py as the logs recorded it (all logs must come from the same source); the command
then runs that copy from inside a scratch copy of the folder to prove it works there.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEPARATOR = "=" * 100 + "\n"


class ToolError(Exception):
    """Printed as one line, exit status 2."""


def parse_log(path: Path) -> dict:
    """The numbers of one train_gpt.py log (absent ones are None)."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if SEPARATOR not in text:
        raise ToolError(f"{path}: not a train_gpt.py log (no source/log separator)")
    source, body = text.split(SEPARATOR, 1)
    lines = body.splitlines()

    def last(prefix: str) -> str | None:
        return next((l for l in reversed(lines) if l.startswith(prefix)), None)

    def num(line: str | None, key: str, cast=float):
        m = re.search(rf"\b{key}:(-?[\d.]+|nan|inf)", line or "")
        return cast(m.group(1)) if m else None

    env_line = last("env: ") or "env: "
    env = dict(item.split("=", 1) for item in env_line[5:].split() if "=" in item)
    vals = [l for l in lines if re.match(r"step:\d+/\d+ val_loss:", l)]
    trains = [l for l in lines if re.match(r"step:\d+/\d+ train_loss:", l)]
    total = last("Total submission size int8+zlib:")
    code = last("Code size:")
    rt, sl = last("final_int8_zlib_roundtrip_exact "), last("final_int8_zlib_roundtrip_sliding_exact ")
    return {
        "path": str(path), "run_id": Path(path).stem, "source": source.rstrip("\n") + "\n", "env": env,
        "seed": num(last("seed:"), "seed", int), "model_params": num(last("model_params:"), "model_params", int),
        "world_size": num(last("world_size:"), "world_size", int),
        "steps": int(vals[-1].split()[0].split(":")[1].split("/")[0]) if vals else None,
        "step_avg_ms": float(re.search(r"step_avg:([\d.]+)ms", (trains or vals or [""])[-1]).group(1)) if (trains or vals) else None,
        "train_time_ms": float(re.search(r"train_time:([\d.]+)ms", vals[-1]).group(1)) if vals else None,
        "pre_quant_val_bpb": num(vals[-1] if vals else None, "val_bpb"),
        "val_loss": num(rt, "val_loss"), "val_bpb": num(rt, "val_bpb"),
        "sliding_val_loss": num(sl, "val_loss"), "sliding_val_bpb": num(sl, "val_bpb"),
        "bytes_total": int(total.split()[-2]) if total else None, "bytes_code": int(code.split()[-2]) if code else None,
    }


def find_logs(paths: list[str]) -> list[Path]:
    found = []
    for p in map(Path, paths or ["logs"]):
        if p.is_dir():
            found += sorted(p.rglob("logs/*.txt")) + sorted(p.glob("*.txt"))
        elif p.is_file():
            found.append(p)
        else:
            raise ToolError(f"{p}: no such log or folder")
    return list(dict.fromkeys(found))


def fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def summary_table(logs: list[dict]) -> str:
    """Markdown, sorted by the best val_bpb a run reports (sliding if it has one)."""
    keys = sorted({k for r in logs for k in r["env"]})
    swept = [k for k in keys if len({r["env"].get(k) for r in logs}) > 1 and k not in ("RUN_ID",)]
    best = lambda r: min(v for v in (r["sliding_val_bpb"], r["val_bpb"], r["pre_quant_val_bpb"], float("inf")) if v is not None)
    rows = ["| run id | " + " | ".join(swept) + (" | " if swept else "") + "steps | step_avg (ms) | pre-quant val_bpb | "
            "round-trip val_bpb | sliding val_bpb | artifact bytes |",
            "|---|" + "---|" * len(swept) + "---|---|---|---|---|---|"]
    for r in sorted(logs, key=best):
        rows.append(f"| {r['run_id']} | " + "".join(f"{r['env'].get(k, '')} | " for k in swept)
                    + f"{fmt(r['steps'])} | {fmt(r['step_avg_ms'], '.1f')} | {fmt(r['pre_quant_val_bpb'], '.4f')} | "
                    f"{fmt(r['val_bpb'], '.4f')} | {fmt(r['sliding_val_bpb'], '.4f')} | {fmt(r['bytes_total'], ',')} |")
    return "\n".join(rows)


def run_sweep(assignments: list[str], name: str, launch: list[str]) -> Path:
    """Every combination of NAME=v1,v2 ..., one run after another, each in its own folder."""
    grid = []
    for a in assignments:
        key, sep, values = a.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key) or not values:
            raise ToolError(f"{a!r}: expected NAME=v1,v2 with an upper-case variable name")
        grid.append([(key, v) for v in values.split(",")])
    if not grid:
        raise ToolError("nothing to sweep: give at least one NAME=v1,v2")
    folder = ROOT / "sweeps" / name
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key in ("DATA_PATH", "TOKENIZER_PATH", "DISTILL_TEACHER", "RESUME"):  # the runs start in their own folders
        if env.get(key):
            env[key] = os.path.abspath(env[key])
    for combo in itertools.product(*grid):
        run_id = name + "_" + "_".join(f"{k}-{re.sub(r'[^A-Za-z0-9.]+', '.', v)}" for k, v in combo)
        cwd = folder / run_id
        cwd.mkdir(exist_ok=True)
        print(f"sweep: {run_id}", flush=True)
        r = subprocess.run(launch + [str(ROOT / "train_gpt.py")], cwd=cwd, env={**env, **dict(combo), "RUN_ID": run_id})
        if r.returncode:
            print(f"sweep: {run_id} exited with status {r.returncode}; going on", file=sys.stderr)
    return folder


def record_readme(name: str, track: str, logs: list[dict], metric: str, blurb: str, command: str, smoke: bool) -> str:
    values = [r[metric] for r in logs]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    env = {k: v for k, v in logs[0]["env"].items() if k not in ("RUN_ID", "SEED")}
    lines = [f"# {name}", ""]
    if smoke:
        lines += ["**SMOKE EXAMPLE: NOT A SCORE.** Made on a CPU from the embedded Shakespeare corpus to show what the",
                  "records command produces; val_bpb on Shakespeare is not comparable with FineWeb scores.", ""]
    lines += [blurb, "", f"Track: `{track}`. Metric: `{metric}` "
              f"({'sliding-window' if metric.startswith('sliding') else 'plain'} evaluation of the int8 + zlib round trip).", "",
              "## Configuration", "", "| variable | value |", "|---|---|"] + [f"| `{k}` | `{v}` |" for k, v in sorted(env.items())]
    lines += ["", "## Command", "", "From inside this folder (data paths relative to it):", "", "```bash", command, "```", "",
              "## Results", "", "| seed | val_loss | val_bpb | sliding val_bpb | steps | train time (ms) | bytes total |", "|---|---|---|---|---|---|---|"]
    for r in logs:
        lines.append(f"| {r['seed']} | {fmt(r['val_loss'], '.8f')} | {fmt(r['val_bpb'], '.8f')} | {fmt(r['sliding_val_bpb'], '.8f')} | "
                     f"{fmt(r['steps'])} | {fmt(r['train_time_ms'], '.0f')} | {fmt(r['bytes_total'], ',')} |")
    lines += ["", f"Mean {metric}: {statistics.mean(values):.8f}, std {std:.8f} over {len(values)} seed(s).", ""]
    return "\n".join(lines)


def make_record(paths: list[str], name: str, track: str, author: str, github_id: str, blurb: str, date: str,
                smoke: bool, out_root: Path, check_env: dict) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ToolError(f"--name {name!r}: accepted letters, digits, _ . and -")
    logs = [parse_log(p) for p in find_logs(paths)]
    if not logs:
        raise ToolError("no logs given")
    incomplete = [r["path"] for r in logs if r["val_bpb"] is None or r["bytes_total"] is None]
    if incomplete:
        raise ToolError(f"{incomplete[0]}: not a finished run (no final round-trip line)")
    if len({r["source"] for r in logs}) > 1:
        raise ToolError("the logs were written by different versions of train_gpt.py")
    metric = "sliding_val_bpb" if all(r["sliding_val_bpb"] is not None for r in logs) else "val_bpb"
    folder = out_root / f"track_{track}" / f"{date}_{name}"
    if folder.exists():
        raise ToolError(f"{folder}: already exists (a record folder is never overwritten)")
    tmp = Path(tempfile.mkdtemp(prefix=".record_", dir=out_root))
    try:
        (tmp / "train_gpt.py").write_text(logs[0]["source"], encoding="utf-8")
        for r in logs:
            shutil.copy(r["path"], tmp / Path(r["path"]).name)
        env = {k: v for k, v in logs[0]["env"].items() if k not in ("RUN_ID", "SEED")}
        run_dir = Path(logs[0]["path"]).resolve().parent.parent  # logs live in <working folder>/logs/
        for key in ("DATA_PATH", "TOKENIZER_PATH"):  # as seen from inside the record folder
            if key in env:
                env[key] = os.path.relpath(run_dir / env[key], folder.resolve())
        seeds = " ".join(str(r["seed"]) for r in logs)
        world = logs[0]["world_size"] or 1
        launch = f"torchrun --standalone --nproc_per_node={world} train_gpt.py" if world > 1 else "python3 train_gpt.py"
        command = f"for SEED in {seeds}; do \\\n  " + " ".join(f"{k}={v}" for k, v in sorted(env.items())) + f" SEED=$SEED RUN_ID=seed$SEED \\\n  {launch}; done"
        (tmp / "README.md").write_text(record_readme(name, track, logs, metric, blurb, command, smoke), encoding="utf-8")
        mean = lambda key: statistics.mean(r[key] for r in logs)
        submission = {"author": author, "github_id": github_id, "name": name, "blurb": blurb, "date": date,
                      "val_loss": mean("sliding_val_loss" if metric == "sliding_val_bpb" else "val_loss"), "val_bpb": mean(metric),
                      "bytes_total": max(r["bytes_total"] for r in logs), "bytes_code": logs[0]["bytes_code"], "metric": metric,
                      "seeds": [r["seed"] for r in logs],
                      "seed_results": [{k: r[k] for k in ("seed", "val_loss", "val_bpb", "sliding_val_loss", "sliding_val_bpb", "steps",
                                                            "train_time_ms", "bytes_total", "model_params")} for r in logs]}
        (tmp / "submission.json").write_text(json.dumps(submission, indent=2) + "\n", encoding="utf-8")
        check_runs_inside(tmp, check_env)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def check_runs_inside(folder: Path, env: dict) -> None:
    """Run the folder's train_gpt.py from inside a scratch copy of the folder: a few tiny
    steps on the embedded corpus, ending with its artifact round trip."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / folder.name
        shutil.copytree(folder, copy)
        r = subprocess.run([sys.executable, "train_gpt.py"], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode or "final_int8_zlib_roundtrip_exact" not in r.stdout:
            raise ToolError(f"the folder's train_gpt.py did not run from inside the folder: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


SMOKE_CHECK = dict(NUM_LAYERS="1", MODEL_DIM="64", NUM_HEADS="2", NUM_KV_HEADS="1", TRAIN_SEQ_LEN="64", TRAIN_BATCH_TOKENS="1024",
                   GRAD_ACCUM_STEPS="1", ITERATIONS="2", WARMUP_STEPS="0", VAL_LOSS_EVERY="0", MAX_WALLCLOCK_SECONDS="0",
                   VAL_BATCH_SIZE="8192", RUN_ID="inside_check")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("grid", nargs="*")
    s.add_argument("--name", default="sweep_" + datetime.datetime.now().strftime("%Y%m%d_%H%M%S"))
    s.add_argument("--launch", default=sys.executable, help="how to start train_gpt.py (e.g. 'torchrun --standalone --nproc_per_node=8')")
    m = sub.add_parser("summary")
    m.add_argument("paths", nargs="*", help="logs or folders (default: logs/)")
    r = sub.add_parser("record")
    r.add_argument("logs", nargs="+")
    r.add_argument("--name", required=True)
    r.add_argument("--track", choices=("10min_16mb", "non_record_16mb"), default="non_record_16mb")
    r.add_argument("--author", default=os.environ.get("USER", "unknown"))
    r.add_argument("--github-id", default="")
    r.add_argument("--blurb", default="")
    r.add_argument("--date", default=datetime.date.today().isoformat())
    r.add_argument("--smoke", action="store_true", help="label the folder a smoke example, not a score")
    r.add_argument("--out", type=Path, default=ROOT / "records")
    a = p.parse_args(argv)
    try:
        if a.cmd == "sweep":
            folder = run_sweep(a.grid, a.name, a.launch.split())
            print(summary_table([parse_log(x) for x in find_logs([str(folder)])]))
        elif a.cmd == "summary":
            print(summary_table([parse_log(x) for x in find_logs(a.paths)]))
        else:
            sys.path.insert(0, str(ROOT))
            from train_gpt import ENV_VARS
            data, ours = ROOT / "data", {name for name, *_ in ENV_VARS}
            check = {**{k: v for k, v in os.environ.items() if k not in ours}, **SMOKE_CHECK, "DATA_PATH": str(data / "datasets/shakespeare_sp1024"),
                     "TOKENIZER_PATH": str(data / "tokenizers/shakespeare_1024_bpe.model")}
            folder = make_record(a.logs, a.name, a.track, a.author, a.github_id, a.blurb, a.date, a.smoke, a.out, check)
            print(f"wrote {folder} (its train_gpt.py ran from inside a copy of the folder)")
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
