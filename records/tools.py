"""Sweeps, their summary, and submission folders, from the logs of training runs.

    python3 records/tools.py sweep NAME=v1,v2 [NAME2=a,b ...]       # the grid, one run after another
    python3 records/tools.py summary [--format md|csv|json] [DIR_OR_LOG ...]   # one row a log, best score first
    python3 records/tools.py record --name NAME [--against RECORD_OR_SCORES] LOG [LOG ...]
    python3 records/tools.py import FINAL_MODEL_INT8_PTZ --out ARTIFACT   # the challenge script's artifact, as train_gpt.py's

`bash run.sh sweep|summary|record ...` calls these with the run settings of `bash run.sh`
(CPU demo defaults without a GPU; torchrun on every GPU with one).

`summary` reads any log of the challenge, ours or others': with or without the script's
source at its head, `*.txt` or `*.log`, every final-line variant (`final_int8_zlib_roundtrip_exact`,
`final_int6_sliding_window_exact`, `final_sliding`, `quantized_ttt_*`, ...), step lines with or
without `step:`, a `Hyperparameters:` block or our `env:` line, its lines as printed or as torchrun --tee, a logger
or a terminal passed them on (tags, timestamps, colours). Its score is the last val_bpb
the log prints (the run's final reported number); round-trip, sliding and pre-quantization
scores sit beside it, and bytes come from any `Total submission size ...:` line. A file that
is not a training log is skipped with a one-line note on stderr.

A sweep run gets a readable RUN_ID (`<sweep>_NAME-v1_NAME2-a`) and its own working folder
`sweeps/<sweep>/<RUN_ID>/`, so artifacts never overwrite each other. A record folder gets
README.md (configuration, the command that reproduces the runs from inside the folder,
per-seed table, mean and std, and with --against the improvement in nats and a one-sided
Welch t-test), submission.json in the leaderboard's shape, the logs, and train_gpt.py as the
logs recorded it; the tool then runs that copy from inside a scratch copy of the folder.

`import` turns an artifact of the challenge's own script (its `final_model.int8.ptz`, format
int8_clean_per_row_v1) into one of train_gpt.py's, the same int8 values and scales, for the model
the environment's variables describe (its defaults are the baseline's, as the house's are), so
that `EVAL_ONLY=1` scores it (plain and sliding) and `DISTILL_TEACHER` can learn from it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import difflib
import fcntl
import io
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "data"))
from export_corpus import NotJSON, outside_json, quoted, say  # noqa: E402  (the one reader of JSON made elsewhere; a console that may go)
SEPARATOR = "=" * 100 + "\n"
CAP_BYTES, CAP_SECONDS, NATS_BAR = 16_000_000, 600, 0.005
NUM = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|inf)"


class ToolError(Exception):
    """Printed as one line, exit status 2."""


class NotALog(ToolError):
    """A file that holds no training run: skipped with a note."""


class EmptyLog(NotALog):
    """A file of no bytes (torchrun --log-dir's stdout.log of every rank but the first): counted, and said once for all."""


class Stopped(BaseException):
    """A signal stopped the tool: one line, exit status 128 + the signal's number, as the shell and torchrun read it. Not an
    Exception, as KeyboardInterrupt is not: raised wherever the main thread is, it must pass a library's `except Exception` (one in
    `import torch` swallowed it, and `import` ran on to its end)."""
    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)  # Ctrl-C, `kill`, a closed terminal, Ctrl-\


class SignalsToTheRun:
    """Ctrl-C, Ctrl-\\, a closed terminal or `kill` while a tool runs train_gpt.py (or a benchmark its runs): each run under way
    (started by start(), in a process group of its own, which a signal reaches only from here; under torchrun, torchrun passes it on to its
    workers) gets the signal once and ends as it does alone, logging where it stopped; `stop` holds the signals, and the tool says
    what it did and did not do. interrupt=True (a benchmark, through tool_main): the first signal also raises Stopped in the main
    thread, wherever it waits, and no run starts after it. Before, a Ctrl-C ended the tool in a traceback with its run killed
    0.25 s later (subprocess.run), and a `kill` of the tool left its run going (and `record` its half-made folder). Ctrl-Z pauses
    the runs with the tool (on_pause)."""
    def __init__(self, interrupt: bool = False):
        self.interrupt = interrupt

    def __enter__(self):
        global RUNS
        self.stop, self.children, self.starting, RUNS = [], [], False, self
        wanted = {**dict.fromkeys(STOP_SIGNALS, self.on_signal), signal.SIGTSTP: self.on_pause,
                  **({signal.SIGALRM: self.raise_again} if self.interrupt else {})}
        self.handlers = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()  # nohup's SIGHUP stays ignored
                         if signal.getsignal(signum) is not signal.SIG_IGN}
        self.unraisablehook, sys.unraisablehook = sys.unraisablehook, self.swallowed
        return self

    def __exit__(self, *exc):
        global RUNS
        signal.setitimer(signal.ITIMER_REAL, 0)  # a Stopped raised again (swallowed) is not wanted after this
        for signum, handler in self.handlers.items():
            signal.signal(signum, handler)
        sys.unraisablehook, RUNS = self.unraisablehook, None

    def stopped(self) -> Stopped:
        return Stopped(self.stop[0], f"stopped by {signal.Signals(self.stop[0]).name}")

    def on_signal(self, signum, frame):
        self.stop.append(signum)
        for child in self.children:
            self.signal_run(child, signum)
        if self.interrupt and len(self.stop) == 1 and not self.starting:
            raise self.stopped()

    def swallowed(self, unraisable) -> None:
        """Python runs a signal's handler where the main thread is: inside a finalizer or a weakref callback (a library's), the
        Stopped it raised is printed as 'Exception ignored' and dropped, and the tool went on (a benchmark's worker timed steps on
        until it was SIGKILLed). A timer raises it again 1 ms later (raise_again), outside that callback."""
        if self.interrupt and issubclass(unraisable.exc_type, Stopped):
            signal.setitimer(signal.ITIMER_REAL, 0.001)
        else:
            self.unraisablehook(unraisable)

    def raise_again(self, signum, frame):
        if self.stop:  # (a SIGALRM from elsewhere before any stop: nothing to do)
            raise self.stopped()

    def on_pause(self, signum, frame):
        """Ctrl-Z: the runs pause with the tool, and `fg` (or `bg`) continues them with it. In sessions of their own, they never saw
        the terminal's Ctrl-Z (and SIGTSTP to a group whose parent is in another session is dropped): they trained on behind a
        `Stopped` tool. SIGSTOP cannot be dropped; the tool stops itself the same way, and the shell sees it stopped."""
        for child in self.children:
            self.signal_run(child, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)
        for child in self.children:
            self.signal_run(child, signal.SIGCONT)

    @staticmethod
    def signal_run(child: subprocess.Popen, signum: int) -> None:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(child.pid, signum)

    def start(self, command: list[str], **popen) -> subprocess.Popen:
        if self.interrupt and self.stop:  # a benchmark's worker thread, after the signal
            raise self.stopped()
        main = threading.current_thread() is threading.main_thread()  # where the handler runs: it raises nothing inside Popen
        self.starting |= main  # (the signals are not blocked instead: a child inherits the mask, and a run blind to its signal never stops)
        try:
            child = subprocess.Popen(command, start_new_session=True, **popen)
            self.children.append(child)
        finally:
            self.starting &= not main
        if self.stop:  # a signal during the start, or between the caller's last look at stop and the start
            self.signal_run(child, self.stop[0])
            if self.interrupt:
                raise self.stopped()
        return child

    def end_runs(self, grace: float = 20.0) -> int:
        """After a signal: wait for the runs that got it to end; SIGKILL any still there after `grace` seconds. Returns how many."""
        deadline, killed = time.time() + grace, 0
        for child in self.children:
            try:
                child.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self.signal_run(child, signal.SIGKILL)
                child.wait()
                killed += 1
        return killed


RUNS: SignalsToTheRun | None = None  # the tool's, while one is in force: start_run's runs are given its signals


def start_run(command: list[str], **popen) -> subprocess.Popen:
    """A run (train_gpt.py, the challenge's script, a benchmark's worker) as a process in a group of its own; under a
    SignalsToTheRun it is given the tool's signals (without one, only what the caller sends it reaches it)."""
    return RUNS.start(command, **popen) if RUNS else subprocess.Popen(command, start_new_session=True, **popen)


def tool_main(main, tool: str, grace: float = 20.0) -> int:
    """A benchmark's entry point: main() with SignalsToTheRun(interrupt=True) in force; a signal ends it in one line once the runs
    under way (which got the signal) have ended (SIGKILLed after `grace` seconds: a GPU is not left to a run nobody waits for),
    exit status 128 + the signal's number."""
    with SignalsToTheRun(interrupt=True) as runs:
        try:
            return main() or 0
        except Stopped as e:
            killed = runs.end_runs(grace)
            ended = (f"{killed} run(s) under way had not ended {grace:g} s after it and were killed" if killed else
                     "the runs under way got it and have ended")
            print(f"error: {tool}: {e}; {ended}, no later run was started", file=sys.stderr)
            return 128 + e.signum


def number(text: str | None, key: str, cast=float):
    """The value of `key:V`, `key: V` or `key=V` in text (the last one), or None (and None for a count that is nan or inf)."""
    found = re.findall(rf"(?<![\w.]){re.escape(key)}\s*[:=]\s*{NUM}", text or "")
    if not found:
        return None
    value = float(found[-1])
    return cast(value) if cast is float or math.isfinite(value) else None


def duration_ms(text: str | None, key: str) -> float | None:
    """`key:123ms`, `key: 1.5s` or `key: 2.3m` in milliseconds."""
    m = re.findall(rf"(?<![\w.]){re.escape(key)}\s*[:=]\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\b", text or "")
    if not m:
        return None
    value, unit = float(m[-1][0]), m[-1][1] or "ms"
    return value * {"ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


STEP_LINE = re.compile(r"^\s*(?:step:?\s*)?(\d{1,20})\s*/\s*(\d{1,20})\b(.*)$")  # counts: 20 digits at most, as int() of 4,301 raises
# What tools put before each line of a log they pass on: terminal colours (anywhere in a line), torchrun's --tee tag
# ([default0]:) and torch's on a rank's errors ([rank1]: ), timestamps (kubectl logs --timestamps, Python's logging,
# moreutils' ts) with a level after them, and logging's default LEVEL:name: form. A prefix may follow another.
COLOURS = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
LINE_PREFIX = re.compile(r"\[[A-Za-z_]*(?P<rank>\d{1,9})\]:[ ]?"
                         r"|\[?(?:\d{4}-\d\d-\d\d[T ]|[A-Z][a-z]{2} [ \d]\d )?\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?"
                         r"(?:\s*[-|]?\s*\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\]?)?(?:\s*[-|:])?\s+"
                         r"|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]*:")


def log_lines(body: str) -> list[str]:
    """The lines of a log as its script printed them: colours and what other tools put before each line removed, and where
    several ranks' lines are tagged (torchrun --tee), the lowest rank's alone with the untagged ones."""
    tagged = []
    for line in body.splitlines():
        line, rank = COLOURS.sub("", line), None
        while (m := LINE_PREFIX.match(line)) and m.end():
            rank, line = rank if m["rank"] is None else int(m["rank"]), line[m.end():]
        tagged.append((rank, line))
    first = min((r for r, _ in tagged if r is not None), default=None)
    return [line for rank, line in tagged if rank in (None, first)]


TORCHRUN_FILES = ("stdout", "stderr")  # torchrun --log-dir D: D/<id>/attempt_0/<rank>/stdout.log, named by its RUN_ID (env:) or its place


def parse_log(path: Path) -> dict:
    """The numbers of one training log, ours or anyone's (absent ones are None). Raises
    NotALog for a file that has no training line in it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise NotALog(f"{path}: unreadable ({e.strerror or e})") from None
    if not raw:
        raise EmptyLog(f"{path}: empty")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark: what Windows PowerShell's `>` writes
        raw = raw.decode("utf-16", errors="replace").encode("utf-8")
    if b"\0" in raw[:4096]:
        raise NotALog(f"{path}: a binary file, not a log")
    text = raw.decode("utf-8-sig", errors="replace")  # -sig: an editor's byte-order mark is not part of the first line
    source, body = text.split(SEPARATOR, 1) if SEPARATOR in text else (None, text)
    lines = log_lines(body)

    def last(pattern: str) -> str | None:
        rx = re.compile(pattern)
        return next((l for l in reversed(lines) if rx.search(l)), None)

    # Every val_bpb the run printed, in order, with the name of its line.
    # The name is the words before the first key:value ("diagnostic quantized_sliding_window val_loss:..." ->
    # diagnostic_quantized_sliding_window), else the first word less its colon ("ema: val_bpb:..." -> ema).
    scores = []
    for line in lines:
        if re.search(rf"\bval_bpb\s*[:=]\s*{NUM}", line):
            words = line.split()
            name = "_".join(itertools.takewhile(lambda w: ":" not in w and "=" not in w, words))
            kind = "step" if STEP_LINE.match(line) else name or (words[0].rstrip(":") if words else "")
            scores.append((kind, line))
    steps = [(int(m.group(1)), int(m.group(2)), m.group(3)) for m in map(STEP_LINE.match, lines) if m and re.search(r"(train|val)_loss", m.group(3))]
    trains = [s for s in steps if "train_loss" in s[2]]
    if not scores and not steps and last(r"^model_params\s*[:=]") is None:
        raise NotALog(f"{path}: not a training log (no val_bpb, step or model_params line)")
    finals = [(k, l) for k, l in scores if k != "step"]
    final_kind, final_line = (finals or scores)[-1] if scores else (None, None)
    pick = lambda want, avoid=None: next((l for k, l in reversed(finals) if re.search(want, k) and not (avoid and re.search(avoid, k))), None)
    pre_quant = r"pre[-_]?quant"  # the float model's score, before its weights were quantized
    roundtrip, sliding = pick(r"roundtrip|round_trip|quant|int\d", rf"sliding|ttt|{pre_quant}"), pick(r"sliding", pre_quant)
    pre = pick(pre_quant, r"sliding") or next((l for k, l in reversed(scores) if k == "step"), None)

    env, config = {}, {}
    env_line = last(r"^env: ")
    if env_line:
        try:
            items = shlex.split(env_line[5:])
        except ValueError:  # an old, unquoted line
            items = env_line[5:].split()
        env = dict(item.split("=", 1) for item in items if "=" in item)
    if "Hyperparameters:" in lines:
        for l in lines[lines.index("Hyperparameters:") + 1:]:
            m = re.match(r"^\s+([\w.]+)\s*:\s*(.*)$", l)
            if not m:
                break
            config[m.group(1)] = m.group(2).strip()
    stop = last(r"^stopping_early:")
    stopped = last(r"^stopping: ")  # ours: a signal, a non-finite loss, memory, a peer gone or hung, weights no artifact could hold (not the cap)
    step_src = stop or (steps[-1][2] if steps else None)
    total_rx, code_rx = r"Total submission size[^:]*:\s*(\d[\d,]{0,30})(?![\d,])", r"^Code size(?: \(compressed\))?:\s*(\d{1,20})(?!\d)"
    total, code = last(total_rx), last(code_rx)
    hardware = last(r"^pytorch_version:.* hardware:")
    seed = number(last(r"^seed\s*[:=]"), "seed", int)
    if seed is None:
        seed = next((int(v) for k, v in {**config, **env}.items() if k.lower() == "seed" and re.fullmatch(r"\d{1,20}", v)), None)
    eval_ms = duration_ms(last(r"^total_eval_time:"), "total_eval_time")
    if eval_ms is None and finals:  # older logs: add up what each final evaluation took
        times = [duration_ms(l, "eval_time") for _, l in finals]
        eval_ms = sum(t for t in times if t is not None) or None
    run_id = path.stem if path.stem not in TORCHRUN_FILES else env.get("RUN_ID") or str(path.with_suffix(""))  # not every run "stdout"
    return {
        "path": str(path), "run_id": run_id, "source": None if source is None else source.rstrip("\n") + "\n",
        "env": env, "config": config, "seed": seed, "traceback": "Traceback (most recent call last)" in body,
        "no_effect": [m.group(1) for m in map(re.compile(r"^warning: ([A-Z][A-Z0-9_]*)=.* has no effect").match, lines) if m],
        "model_params": number(last(r"^model_params\s*[:=]"), "model_params", int), "world_size": number(last(r"^world_size:"), "world_size", int),
        "steps": number(stop, "step", int) or (steps[-1][0] if steps else None),
        "iterations": steps[-1][1] if steps else None,
        "step_avg_ms": duration_ms(trains[-1][2] if trains else (steps[-1][2] if steps else None), "step_avg"),
        "train_time_ms": duration_ms(step_src, "train_time"),
        "score_line": final_kind, "stopped": stopped.removeprefix("stopping: ").split(";")[0] if stopped else None,
        "val_bpb": number(final_line, "val_bpb"), "val_loss": number(final_line, "val_loss"),
        "roundtrip_val_bpb": number(roundtrip, "val_bpb"), "roundtrip_val_loss": number(roundtrip, "val_loss"),
        "sliding_val_bpb": number(sliding, "val_bpb"), "sliding_val_loss": number(sliding, "val_loss"), "pre_quant_val_bpb": number(pre, "val_bpb"),
        "bytes_total": int(re.search(total_rx, total).group(1).replace(",", "")) if total else None,
        "bytes_code": int(re.search(code_rx, code).group(1)) if code else None,  # "Code size (compressed): N" where both are logged
        "hardware": hardware.split(" hardware:", 1)[1].strip() if hardware else None,
        "pytorch_version": hardware.split()[0].split(":", 1)[1] if hardware else None, "eval_time_ms": eval_ms,
        "data_path": (re.search(r"pattern=(\S+)/\*_val_\*\.bin", last(r"^val_loader:shards pattern=") or "") or [None, None])[1],
        "tokenizer_path": (re.search(r"tokenizer_path=(\S+)", last(r"tokenizer_path=") or "") or [None, None])[1],
    }


def find_logs(paths: list[str]) -> list[Path]:
    """Every *.txt and *.log below each folder (or the files given), in path order."""
    found = []
    for p in map(Path, paths or ["logs"]):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix in (".txt", ".log") and f.is_file())
        elif p.is_file():
            found.append(p)
        elif p.exists():  # read, a named pipe would wait for a writer
            raise ToolError(f"{p}: not a regular file or a folder (a named pipe, a device or a socket); accepted a log or a folder of logs")
        else:
            raise ToolError(f"{p}: no such log or folder" + ("" if paths else f" in {Path.cwd()} (given nothing, summary reads the logs/ "
                                                            "of the folder it runs in); give logs or folders"))
    return list(dict.fromkeys(found))


def read_logs(paths: list[str], note=print) -> list[dict]:
    """The parsed logs; each file that is not one gets a one-line note, and the rest go on."""
    logs, empty = [], []
    roots = [Path(p) for p in paths or ["logs"] if Path(p).is_dir()]
    for f in find_logs(paths):
        try:
            r = parse_log(f)
        except EmptyLog:  # torchrun --log-dir on 8 GPUs: 15 of them, a note each buried the table
            empty.append(f)
            continue
        except NotALog as e:
            note(f"skipped {e}")
            continue
        root = next((d for d in roots if d in f.parents), None)
        r["run"] = str(f.relative_to(root).with_suffix("")) if root else r["run_id"]
        logs.append(r)
    if empty:
        note(f"skipped {len(empty)} empty file{'s' * (len(empty) > 1)}: {empty[0]}{' and others' * (len(empty) > 1)}")
    if len({r["run_id"] for r in logs}) == len(logs):  # names are short where they can be
        for r in logs:
            r["run"] = r["run_id"]
    return logs


def fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


SUMMARY_COLUMNS = [("run", "run", ""), ("score", "val_bpb", ".4f"), ("final line", "score_line", ""), ("round-trip", "roundtrip_val_bpb", ".4f"),
                   ("sliding", "sliding_val_bpb", ".4f"), ("pre-quant", "pre_quant_val_bpb", ".4f"), ("steps", "steps", ""),
                   ("step_avg (ms)", "step_avg_ms", ".1f"), ("artifact bytes", "bytes_total", ","), ("seed", "seed", "")]
MD_CELL = 80  # the widest cell of a Markdown summary


def summary_rows(logs: list[dict]) -> tuple[list[str], list[dict]]:
    """Columns (the swept variables, then the numbers) and rows sorted by score, best first."""
    keys = sorted({k for r in logs for k in r["env"]})
    swept = [k for k in keys if len({r["env"].get(k) for r in logs}) > 1 and k not in ("RUN_ID", "SEED")]
    scored = lambda r: r["val_bpb"] is not None and math.isfinite(r["val_bpb"])  # a diverged run's nan or inf sorts last, with the unscored
    ordered = sorted(logs, key=lambda r: (not scored(r), r["val_bpb"] if scored(r) else 0.0, r["run"]))
    return swept, ordered


def summary_table(logs: list[dict], form: str = "md") -> str:
    swept, rows = summary_rows(logs)
    if form == "json":
        keep = [k for _, k, _ in SUMMARY_COLUMNS] + ["stopped", "val_loss", "train_time_ms", "eval_time_ms", "hardware", "path", "traceback",
                                                     "no_effect"]
        plain = lambda v: str(v) if isinstance(v, float) and not math.isfinite(v) else v  # a diverged run's "nan": NaN is not JSON
        return json.dumps([{**{k: plain(r.get(k)) for k in keep}, "env": {k: r["env"].get(k) for k in swept}} for r in rows], indent=2)
    head = [SUMMARY_COLUMNS[0][0]] + swept + [c for c, _, _ in SUMMARY_COLUMNS[1:]]
    cell = lambda r, k: r["env"].get(k, "") + (" (no effect)" if k in r["no_effect"] else "")  # the run's warning: said where it is read
    end = lambda r: " ".join(filter(None, [r["score_line"], r.get("stopped") and f"(stopped: {r['stopped']})"])) or None  # why a sweep's run ended
    body = [[r["run"]] + [cell(r, k) for k in swept] + [fmt(end(r) if k == "score_line" else r[k], spec) for _, k, spec in SUMMARY_COLUMNS[1:]]
            for r in rows]
    if form == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(head)
        w.writerows([[c.replace(",", "") if c.replace(",", "").isdigit() else c for c in row] for row in body])
        return out.getvalue().rstrip("\n")
    # Markdown: a | in a cell (a run folder, an env value) would split it, and a cell has a bound (a 5 KB run of words before a
    # val_bpb was a 5 KB "final line"); CSV and JSON keep every cell whole.
    md = lambda c: (c if len(c) <= MD_CELL else c[:MD_CELL - 3] + "...").replace("|", "\\|")
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(map(md, row)) + " |" for row in body])


SWEEP_INPUT_PATHS = ("DATA_PATH", "TOKENIZER_PATH", "DISTILL_TEACHER", "RESUME")  # what a run reads (its outputs stay in its folder)


def how_it_ended(returncode: int) -> str:  # Popen's returncode, as a shell would say it (-3: killed by SIGQUIT, not "status -3")
    return f"was killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exited with status {returncode}"


def launch_processes(launch: list[str]) -> int | None:
    """The processes each run of a launch command will have: torchrun's --nproc_per_node N or =N, 1 without it, None where it is not
    a count (gpu, auto; anything else torchrun refuses itself). Not str.isdigit(): "²" is a digit to it, and int() refuses it."""
    given = next((m[1] or (launch[i + 1:i + 2] or [""])[0] for i, w in enumerate(launch)
                  if (m := re.fullmatch(r"--nproc[-_]per[-_]node(?:=(.*))?", w))), "1")
    return int(given) if re.fullmatch(r"[0-9]{1,6}", given) and int(given) > 0 else None


def run_sweep(assignments: list[str], name: str, launch: list[str]) -> tuple[Path, list[str], tuple[int, str] | None]:
    """Every combination of NAME=v1,v2 ... (NAME='v1;v2' where a value holds commas), one run after another, each in its own
    folder; the whole grid is validated by train_gpt.py's own rules before the first run. Returns (folder, failed runs, and
    where a sweep a signal stopped early: (the signal, what ran and what did not), else None)."""
    sys.path.insert(0, str(ROOT))
    import train_gpt

    grid, ours = [], {n for n, *_ in train_gpt.ENV_VARS}
    for a in assignments:
        key, sep, values = a.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key) or not values:
            raise ToolError(f"{a!r}: expected NAME=v1,v2 (or NAME='v1;v2' for values that hold commas) with an upper-case variable name")
        known = key in ours or key.startswith(train_gpt.TORCH_ENV)  # torch's own knobs too: TORCHINDUCTOR_CUDAGRAPHS=0,1
        items = values.split(";" if ";" in values else ",")  # values that hold commas are given apart by ';': 'FREEZE_TARGETS=fc;fc,k,v'
        twice = next((v for i, v in enumerate(items) if v in items[:i]), None)
        meant = difflib.get_close_matches(key, train_gpt.ENV_NAMES, 1, 0.85)  # train_gpt.py's own rule for a near miss
        problem = next((message for bad, message in (
            (not known, f"{key} is not a train_gpt.py variable{''.join(f' (did you mean {m}?)' for m in meant)}, nor one of torch's "
                        f"({', '.join(p + '*' for p in train_gpt.TORCH_ENV)})"),
            (key == "RUN_ID", "the sweep names each run itself (<sweep name>_<NAME>-<value>...)"),
            ("" in items, "an empty value in the list"), (twice is not None, f"the value {twice!r} twice"),
            (key in {column[0][0] for column in grid}, f"{key} is swept twice; give its values in one list")) if bad), None)
        if problem:
            raise ToolError(f"{a!r}: {problem}")
        paths = key in SWEEP_INPUT_PATHS  # the runs start in folders of their own: a relative input path is made absolute here
        grid.append([(key, os.path.abspath(v) if paths else v) for v in items])
    if not grid:
        raise ToolError("nothing to sweep: give at least one NAME=v1,v2")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):  # '../x' made folders beside sweeps/, and every run failed
        raise ToolError(f"--name {name!r}: accepted letters, digits, _ . and - (it names sweeps/<name>/ and begins every RUN_ID)")
    run_name = lambda combo: name + "_" + "_".join(f"{k}-{re.sub(r'[^A-Za-z0-9.]+', '.', v)}" for k, v in combo)
    if not launch or not shutil.which(launch[0]):  # before any folder is made
        raise ToolError(f"--launch {' '.join(launch)!r}: {'empty' if not launch else launch[0] + ' is not a command on PATH'}; accepted "
                        "a command that starts train_gpt.py, e.g. python3 or 'torchrun --standalone --nproc_per_node=8'")
    world = launch_processes(launch)  # TRAIN_BATCH_TOKENS and GRAD_ACCUM_STEPS are checked against it, as train_gpt.py does under torchrun
    runs, inert, seen = [], {}, {}  # inert: a swept variable -> the warning of each run where it has no effect
    for combo in itertools.product(*grid):  # every run checked before the first starts
        try:
            h = train_gpt.Hyperparameters({**os.environ, **dict(combo), "RUN_ID": run_name(combo)})  # its length too
            h.check_world(world) if world else None
        except train_gpt.ConfigError as e:
            raise ToolError(f"sweep {' '.join(f'{k}={v}' for k, v in combo)}: {e}; nothing was run") from None
        idle = {w.split("=", 1)[0]: w for w in h.no_effect}
        for key, _ in combo:
            if key in idle:
                inert.setdefault(key, []).append(idle[key])
        acting = tuple((k, v) for k, v in combo if k not in idle)  # two runs that differ only where nothing acts are one run
        runs.append((combo, seen.get(acting), [idle[k] for k, _ in combo if k in idle]))
        seen.setdefault(acting, combo)
    for key, values in ((column[0][0], [v for _, v in column]) for column in grid if len(column) > 1):
        if len(inert.get(key, [])) == len(runs):  # the grid would repeat itself for every value
            why = inert[key][0].split(": ", 1)[1].replace("this run has", "the first run has")
            raise ToolError(f"sweep {key}={','.join(values)}: {key} has no effect in any of its runs ({why}); nothing was run")
    folder = ROOT / "sweeps" / name
    folder.mkdir(parents=True, exist_ok=True)
    # One sweep of a name at a time: a second started meanwhile ran the same runs in the same folders, each refused by the first's
    # locks or replacing what the first had made. The lock is the OS's (released on any exit), held while this sweep runs.
    lock = open(folder / ".sweep.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise ToolError(f"sweep {name}: another sweep of that name is under way (pid {holder}), in {folder}; wait for it to end or give "
                        "--name another name; nothing was run") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    env = dict(os.environ)
    for key in SWEEP_INPUT_PATHS:  # the runs start in their own folders
        if env.get(key):
            env[key] = os.path.abspath(env[key])
    failed, where = [], None
    with SignalsToTheRun() as signals:  # no later run starts after a signal
        for i, (combo, same_as, idle) in enumerate(runs):
            run_id = run_name(combo)
            if signals.stop:
                where = (f"before {run_id}", i)
                break
            if same_as:
                say(f"sweep: {run_id} skipped: the same run as {run_name(same_as)} ({'; '.join(idle)})")
                continue
            cwd = folder / run_id
            cwd.mkdir(exist_ok=True)
            say(f"sweep: {run_id}")
            returncode = signals.start(launch + [str(ROOT / "train_gpt.py")], cwd=cwd, env={**env, **dict(combo), "RUN_ID": run_id}).wait()
            if returncode:
                failed.append(run_id)
            if signals.stop:
                where = (f"during {run_id} (it {how_it_ended(returncode)})", i + 1)
                break
            if returncode:
                print(f"sweep: {run_id} {how_it_ended(returncode)}; going on", file=sys.stderr)
    if where is None:
        return folder, failed, None
    not_run = [run_name(combo) for combo, same_as, _ in runs[where[1]:] if not same_as]
    stop = signals.stopped()
    return folder, failed, (stop.signum, f"{stop} {where[0]}; not run: {', '.join(not_run) or 'none'}")


# ---- significance: a one-sided Welch t-test, numpy and math only ----

def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side only
        return 1.0 - betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)), -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f


def t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def welch_improvement(ours: list[float], theirs: list[float], bar: float = NATS_BAR) -> dict:
    """Mean improvement (theirs - ours, in the unit given) and the one-sided Welch p-value of
    H0: improvement <= bar, against H1: improvement > bar."""
    import numpy as np
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    out = {"improvement": float(b.mean() - a.mean()), "bar": bar, "p_value": None, "t": None, "df": None}
    if a.size < 2 or b.size < 2:
        return out
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0.0:
        out["p_value"] = 0.0 if out["improvement"] > bar else 1.0
        return out
    t = (out["improvement"] - bar) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return {**out, "t": float(t), "df": float(df), "p_value": t_upper_tail(float(t), float(df))}


def read_against(spec: str, nats_per_bpb: float) -> tuple[list[float], str]:
    """Per-seed val_loss (nats) of the record to beat: its submission.json, or numbers:
    `1.2244,1.2251,...` (val_bpb, converted with our runs' nats per bpb) or `loss:2.06,2.07`.
    A record's folder gives its submission.json, or without one the final val_loss of each log in it (one a seed).
    Every value must be a finite number above 0: a hand-edited, diverged or placeholder (0.0) entry is refused, not tested against."""
    if Path(spec).is_dir() and not (Path(spec) / "submission.json").is_file():
        logs = read_logs([spec], note=lambda msg: None)
        if not logs:
            raise ToolError(f"--against {spec}: a folder with neither a submission.json nor a training log in it")
        missing = next((r["path"] for r in logs if r["val_loss"] is None and r["val_bpb"] is None), None)
        if missing:
            raise ToolError(f"--against {spec}: the log {missing} has no final val_loss or val_bpb (an unfinished run?)")
        values = [r["val_loss"] if r["val_loss"] is not None else r["val_bpb"] * nats_per_bpb for r in logs]
        source = f"{spec}: the final val_loss of its {len(logs)} log(s)" + (
            ", val_bpb in nats where a log has none" if any(r["val_loss"] is None for r in logs) else "")
    elif Path(spec).is_file() or Path(spec).is_dir():
        spec = str(Path(spec) / "submission.json") if Path(spec).is_dir() else spec
        try:
            sub = outside_json(Path(spec), "utf-8-sig")  # -sig: as a Windows editor may save it
        except NotJSON as e:
            raise ToolError(f"--against {spec}: not a submission.json ({e})") from None
        try:
            values, source = submission_losses(sub, spec, nats_per_bpb)
        except (AttributeError, TypeError, ValueError, OverflowError) as e:  # a list where an object belongs, a score that is text ("pending")
            raise ToolError(f"--against {spec}: not a submission.json (seed_results and val_loss / val_bpb of an unexpected shape: {e})") from None
    else:
        unit, _, text = spec.rpartition(":")
        try:
            numbers = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            numbers = []
        if unit not in ("", "bpb", "loss") or not numbers:
            raise ToolError(f"--against {spec!r}: expected a record's folder or submission.json, per-seed val_bpb like 1.2244,1.2251 or val_loss like loss:2.06,2.07")
        values, source = ([n * nats_per_bpb for n in numbers], "per-seed val_bpb given, in nats") if unit != "loss" else (
            numbers, "per-seed val_loss given")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ToolError(f"--against {spec}: a value that is not a finite number above 0 ({source}: {', '.join(map(str, values))})")
    return values, source


def score(value) -> float:  # a submission's number: float(True) is 1.0, and an integer of 400 digits raises OverflowError
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    return float(value)  # a string such as "1.2244" is taken, as a hand-written file may hold it


def submission_losses(sub: dict, spec: str, nats_per_bpb: float) -> tuple[list[float], str]:
    """What read_against takes from a submission.json: per-seed val_loss, else per-seed val_bpb, else the means."""
    name = sub.get("name", spec)
    seeds = sub.get("seed_results") or {}
    results = list(seeds.values()) if isinstance(seeds, dict) else list(seeds)
    if results and all(r.get("val_loss") is not None for r in results):
        return [score(r["val_loss"]) for r in results], f"{name}: per-seed val_loss"
    if results and all(r.get("val_bpb") is not None for r in results):
        return [score(r["val_bpb"]) * nats_per_bpb for r in results], f"{name}: per-seed val_bpb in nats"
    if sub.get("val_loss") is not None:
        return [score(sub["val_loss"])], f"{name}: mean val_loss only"
    if sub.get("val_bpb") is not None:
        return [score(sub["val_bpb"]) * nats_per_bpb], f"{name}: mean val_bpb only, in nats"
    raise ToolError(f"--against {spec}: no val_loss or val_bpb in it")


# ---- records ----

def compliance(logs: list[dict]) -> dict:
    """What the rules check, from the logs (None where a log does not say)."""
    every = lambda values, ok: None if any(v is None for v in values) else all(ok(v) for v in values)
    return {"train_under_600s": every([r["train_time_ms"] for r in logs], lambda v: v <= CAP_SECONDS * 1000),
            "artifact_under_16mb": every([r["bytes_total"] for r in logs], lambda v: v <= CAP_BYTES),
            "eval_under_600s": every([r["eval_time_ms"] for r in logs], lambda v: v <= CAP_SECONDS * 1000),
            "three_seeds": len({r["seed"] for r in logs}) >= 3}


def data_paths(log: dict) -> dict[str, str]:
    """DATA_PATH and TOKENIZER_PATH the run used (set, or the defaults its log names), as
    absolute paths: relative ones are resolved from the folder the run started in."""
    run_dir = Path(log["path"]).resolve().parent.parent  # logs live in <working folder>/logs/
    found = {"DATA_PATH": log["env"].get("DATA_PATH") or log["data_path"], "TOKENIZER_PATH": log["env"].get("TOKENIZER_PATH") or log["tokenizer_path"]}
    return {k: os.path.normpath(run_dir / v) for k, v in found.items() if v}


def requirements(log: dict) -> list[str]:
    """The packages the runs needed beyond torch, numpy and sentencepiece (a record folder's requirements.txt): zstandard for
    ARTIFACT_CODEC=zstd, whose final lines say int8_zstd."""
    return ["zstandard"] if log["env"].get("ARTIFACT_CODEC") == "zstd" or "zstd" in (log["score_line"] or "") else []


def run_settings(log: dict) -> dict:
    """What every seed of a record must share, since the README's one command reruns them all: the variables its run set as
    they were set (torch's own knobs too) but RUN_ID and SEED, and the number of processes."""
    return {**{k: v for k, v in log["env"].items() if k not in ("RUN_ID", "SEED")}, "processes (world_size)": str(log["world_size"] or 1)}


def reproduce_command(logs: list[dict], folder: Path) -> str:
    """The shell command that reruns every seed from inside the record folder, the data paths
    made relative to the folder."""
    env = {k: v for k, v in logs[0]["env"].items() if k not in ("RUN_ID", "SEED")}
    env.update({k: os.path.relpath(v, folder.resolve()) for k, v in data_paths(logs[0]).items()})
    seeds = " ".join(str(r["seed"]) for r in logs)
    world = logs[0]["world_size"] or 1
    launch = f"torchrun --standalone --nproc_per_node={world} train_gpt.py" if world > 1 else "python3 train_gpt.py"
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return f"for SEED in {seeds}; do \\\n  {assigns} SEED=$SEED RUN_ID=seed$SEED \\\n  {launch}; done"


def record_readme(sub: dict, logs: list[dict], command: str, smoke: bool, against: dict | None) -> str:
    lines = [f"# {sub['name']}", ""]
    if smoke:
        lines += ["**SMOKE EXAMPLE: NOT A SCORE.** Made on a CPU from the embedded Shakespeare corpus to show what the",
                  "records command produces; val_bpb on Shakespeare is not comparable with FineWeb scores.", ""]
    env = {k: v for k, v in logs[0]["env"].items() if k not in ("RUN_ID", "SEED")}
    lines += [sub["technique_summary"], ""] + ([f"Recipe: `{sub['recipe']}` (`RECIPE={sub['recipe']}`, a published configuration by name in "
                                               "train_gpt.py; the table below lists every variable the runs set).", ""] if sub["recipe"] else [])
    lines += [f"Track: `{sub['track']}`. Score: the last val_bpb each log prints (`{sub['metric']}`). "
              f"Hardware: {sub['hardware'] or 'not in the logs'}; PyTorch {sub['pytorch_version'] or '(not in the logs)'}.", "",
              "## Configuration", "", "| variable | value |", "|---|---|"] + [f"| `{k}` | `{v}` |" for k, v in sorted(env.items())]
    needs = [f"Needs `{p}` beyond torch, numpy and sentencepiece: `pip install -r requirements.txt`." for p in requirements(logs[0])]
    lines += ["", "## Command", "", "From inside this folder (data paths relative to it):", ""] + (needs + [""] if needs else [])
    lines += ["```bash", command, "```", "",
              "## Results", "", "| seed | val_loss | val_bpb | round-trip val_bpb | sliding val_bpb | steps | train time (ms) | eval time (ms) | bytes total |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in logs:
        lines.append(f"| {r['seed']} | {fmt(r['val_loss'], '.8f')} | {fmt(r['val_bpb'], '.8f')} | {fmt(r['roundtrip_val_bpb'], '.8f')} | "
                     f"{fmt(r['sliding_val_bpb'], '.8f')} | {fmt(r['steps'])} | {fmt(r['train_time_ms'], '.0f')} | "
                     f"{fmt(r['eval_time_ms'], '.0f')} | {fmt(r['bytes_total'], ',')} |")
    lines += ["", f"Mean val_bpb {sub['val_bpb']:.8f}, std {sub['val_bpb_std']:.8f} over {len(logs)} seed(s); "
              f"mean val_loss {sub['val_loss']:.8f} nats.", "",
              "Compliance (from the logs): " + ", ".join(f"{k} {'-' if v is None else 'yes' if v else 'NO'}" for k, v in sub["compliance"].items()) + ".", ""]
    if against:
        p = against["p_value"]
        verdict = ("not testable (needs two or more seeds on each side)" if p is None else
                   f"p = {p:.3g} ({'meets' if p < 0.01 else 'does not meet'} the rules' p < 0.01)")
        lines += ["## Against the record to beat", "", f"Compared with {against['source']} ({against['seeds']} value(s)).",
                  f"Mean improvement {against['improvement']:+.5f} nats (the bar is {against['bar']} nats). One-sided Welch t-test of "
                  f"improvement > {against['bar']} nats: {verdict}.", ""]
    return "\n".join(lines)


def make_record(paths: list[str], name: str, track: str, author: str, github_id: str, blurb: str, date: str,
                smoke: bool, out_root: Path, check_env: dict, against_spec: str | None = None) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name):  # 255 bytes a name: a longer one failed late, as if the disk were full
        raise ToolError(f"--name {quoted(name)}: accepted 1 to 200 letters, digits, _ . and - (it ends the folder's name, "
                        "records/track_*/<YYYY-MM-DD>_<name>/)")
    try:  # it begins the folder's name, records/track_*/<YYYY-MM-DD>_<Name>/, and is submission.json's date
        datetime.date.fromisoformat(date if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else "")
    except ValueError:
        raise ToolError(f"--date {date!r}: accepted a date as YYYY-MM-DD (the challenge's folder names begin with one)") from None
    logs = read_logs(paths, note=lambda msg: print(msg, file=sys.stderr))
    if not logs:
        raise ToolError("no logs given")
    incomplete = [r["path"] for r in logs if None in (r["val_bpb"], r["val_loss"], r["bytes_total"]) or r["score_line"] == "step"]
    if incomplete:  # val_loss too: the README's mean and --against's test are in nats (a final line without it was a traceback)
        raise ToolError(f"{incomplete[0]}: not a finished run (no final line with val_loss and val_bpb, or no size line)")
    # 0 or below is no score either (an evaluation that scored nothing, a hand-edited log); with --against it divided by zero
    diverged = next((r for r in logs if not all(math.isfinite(r[k]) and r[k] > 0 for k in ("val_bpb", "val_loss"))), None)
    if diverged:
        raise ToolError(f"{diverged['path']}: its final score is val_loss {diverged['val_loss']} val_bpb {diverged['val_bpb']}, "
                        "not a finite number above 0")
    if any(r["source"] is None for r in logs):
        raise ToolError(f"{next(r['path'] for r in logs if r['source'] is None)}: no train_gpt.py source at its head, so the record cannot hold the script")
    if len({r["source"] for r in logs}) > 1:
        raise ToolError("the logs were written by different versions of train_gpt.py")
    if len({r["score_line"] for r in logs}) > 1:
        raise ToolError(f"the logs end on different scores ({', '.join(sorted({r['score_line'] for r in logs}))}): one metric for all seeds")
    if len({r["seed"] for r in logs}) < len(logs):
        raise ToolError("two logs have the same seed")
    first = run_settings(logs[0])
    for r, settings in ((r, run_settings(r)) for r in logs[1:]):
        k = next((k for k in sorted(set(first) | set(settings)) if first.get(k) != settings.get(k)), None)
        if k:
            show = lambda v: "(unset)" if v is None else repr(v)
            raise ToolError(f"{r['path']}: {k}={show(settings.get(k))}, but {logs[0]['path']} has {k}={show(first.get(k))}; "
                            "a record is one configuration over seeds")
    folder = out_root / f"track_{track}" / f"{date}_{name}"
    if folder.exists():
        raise ToolError(f"{folder}: already exists (a record folder is never overwritten)")
    mean = lambda key: statistics.mean(r[key] for r in logs) if all(r[key] is not None for r in logs) else None
    std = lambda key: statistics.stdev(r[key] for r in logs) if len(logs) > 1 else 0.0
    sub = {"author": author, "github_id": github_id, "name": name, "date": date, "track": track,
           "val_bpb": mean("val_bpb"), "val_bpb_std": std("val_bpb"), "val_loss": mean("val_loss"), "metric": logs[0]["score_line"],
           "seeds": [r["seed"] for r in logs],
           "seed_results": {str(r["seed"]): {"val_bpb": r["val_bpb"], "val_loss": r["val_loss"], "artifact_bytes": r["bytes_total"],
                                             "steps": r["steps"], "train_time_ms": r["train_time_ms"], "eval_time_ms": r["eval_time_ms"],
                                             "roundtrip_val_bpb": r["roundtrip_val_bpb"], "sliding_val_bpb": r["sliding_val_bpb"],
                                             "pre_quant_val_bpb": r["pre_quant_val_bpb"]} for r in logs},
           "roundtrip_val_bpb": mean("roundtrip_val_bpb"), "sliding_val_bpb": mean("sliding_val_bpb"), "pre_quant_val_bpb": mean("pre_quant_val_bpb"),
           "bytes_total": max(r["bytes_total"] for r in logs), "bytes_code": logs[0]["bytes_code"],
           "hardware": logs[0]["hardware"], "pytorch_version": logs[0]["pytorch_version"],
           "recipe": logs[0]["env"].get("RECIPE"), "technique_summary": blurb, "blurb": blurb, "compliance": compliance(logs)}
    against = None
    if against_spec:
        nats_per_bpb = statistics.mean(r["val_loss"] / r["val_bpb"] for r in logs)
        theirs, source = read_against(against_spec, nats_per_bpb)
        against = {**welch_improvement([r["val_loss"] for r in logs], theirs), "source": source, "seeds": len(theirs)}
        sub["against"] = against
    # A signal while the folder is made (its check runs the script for a few seconds) stops it whole: the check's run gets the
    # signal, the scratch copy and the half-made folder go, and nothing appears under --out. Before, a `kill` left both and the run.
    with SignalsToTheRun() as signals:
        try:
            out_root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".record_", dir=out_root))
        except OSError as e:
            raise ToolError(f"--out {out_root}: cannot be written ({e.strerror or e})") from None
        try:
            (tmp / "train_gpt.py").write_text(logs[0]["source"], encoding="utf-8")
            for r in logs:
                shutil.copy(r["path"], tmp / Path(r["path"]).name)
            (tmp / "README.md").write_text(record_readme(sub, logs, reproduce_command(logs, folder), smoke, against), encoding="utf-8")
            (tmp / "submission.json").write_text(json.dumps(sub, indent=2) + "\n", encoding="utf-8")
            if packages := requirements(logs[0]):
                (tmp / "requirements.txt").write_text("".join(f"{package}\n" for package in packages), encoding="utf-8")
                check_env = {**check_env, "ARTIFACT_CODEC": "zstd"}  # (zstandard: the runs' codec) the folder is checked with it
            paths = data_paths(logs[0])  # the check uses the runs' own data where it is still there
            if all(os.path.exists(v) for v in paths.values()) and len(paths) == 2:
                check_env = {**check_env, **paths, "VOCAB_SIZE": logs[0]["env"].get("VOCAB_SIZE", "1024")}
            check_runs_inside(tmp, check_env, signals)
            if signals.stop:
                stop = signals.stopped()
                raise Stopped(stop.signum, f"{stop} while the folder's train_gpt.py ran its check; nothing was written to {folder} "
                                           "(rerun the same command)")
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, folder)
        except OSError as e:  # a full disk (under --out, or the check's scratch copy in the temporary folder), a read-only one
            raise ToolError(f"{e.filename or out_root}: {e.strerror or e} while the record folder was made; nothing was written to "
                            f"{folder} (free space or give another --out)") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def check_runs_inside(folder: Path, env: dict, signals: SignalsToTheRun) -> None:
    """Run the folder's train_gpt.py from inside a scratch copy of the folder: a few tiny
    steps on the embedded corpus, ending with its artifact round trip (unless a signal stops it: signals.stop says so)."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / folder.name
        shutil.copytree(folder, copy)
        run = signals.start([sys.executable, "train_gpt.py"], cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = run.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            raise ToolError("the folder's train_gpt.py did not finish its check (a few tiny steps) in 600 s") from None
        if not signals.stop and (run.returncode or not re.search(r"final_int8_\w+_roundtrip_exact", out)):  # any ARTIFACT_CODEC
            raise ToolError(f"the folder's train_gpt.py did not run from inside the folder: {(err or out).strip().splitlines()[-1:]}")


SMOKE_CHECK = dict(NUM_LAYERS="1", MODEL_DIM="64", NUM_HEADS="2", NUM_KV_HEADS="1", TRAIN_SEQ_LEN="64", TRAIN_BATCH_TOKENS="1024",
                   GRAD_ACCUM_STEPS="1", ITERATIONS="2", WARMUP_STEPS="0", VAL_LOSS_EVERY="0", MAX_WALLCLOCK_SECONDS="0",
                   VAL_BATCH_SIZE="8192", RUN_ID="inside_check")


HOUSE_FORMAT = "int8_clean_per_row_v1"  # the challenge's train_gpt.py export: its blob's __quant_format__
HOUSE_NAMES = {".attn.c_q.": ".attn.q.", ".attn.c_k.": ".attn.k.", ".attn.c_v.": ".attn.v.", ".attn.proj.": ".attn.o."}  # theirs: ours
def house_name(name):
    """A tensor's name in the challenge's script as this script's (blocks.0.attn.c_q.weight -> blocks.0.attn.q.weight); a name that is
    not text is kept, for the loader's name check to refuse."""
    return next((name.replace(a, b) for a, b in HOUSE_NAMES.items() if a in name), name) if isinstance(name, str) else name


HOUSE_SECTIONS = (("q", "quantized"), ("scale", "scales"), ("keep", "passthrough"), ("dtype", "dtypes"))  # ours: theirs


def import_house_artifact(src: Path, out: Path, environ) -> str:
    """The challenge script's artifact (int8 rows with fp16 scales, small tensors kept, zlib over torch.save) as one of train_gpt.py's,
    with the same int8 values and scales under this script's names, for the model the environment's variables describe (the house's
    file stores no configuration; the defaults are the baseline's, as there). train_gpt.py's own loader checks it (every name, shape
    and dtype; the model built and loaded) before anything is written; an existing --out is refused and left as it is."""
    sys.path.insert(0, str(ROOT))
    import torch
    import train_gpt
    if out.exists() or out.is_symlink():
        raise ToolError(f"--out {out}: exists; give a new path (the file there is left as it is)")
    try:
        cfg = train_gpt.Hyperparameters(environ)
        data = train_gpt.read_input(src, "import", "artifact", train_gpt.ARTIFACT_FILE_LIMIT)
        raw, codec = train_gpt.inflate(data, train_gpt.ARTIFACT_INFLATE_LIMIT + 16 * len(data), str(src))
        blob = train_gpt.load_weights_only(raw, f"{src}: refused by weights-only loading")
    except train_gpt.ConfigError as e:
        raise ToolError(str(e).replace(f"import={src}", str(src), 1)) from None
    kind = blob.get("__quant_format__", (blob.get("meta") or {}).get("format")) if isinstance(blob, dict) else None
    kind = kind if isinstance(kind, str) else None  # a format that is not text is unknown (a tensor's comparison is no bool: a traceback)
    if kind != HOUSE_FORMAT or codec != "zlib" or not all(isinstance(blob.get(theirs), dict) for _, theirs in HOUSE_SECTIONS):
        raise ToolError(f"{src}: not an artifact of the challenge's script (zlib, {HOUSE_FORMAT}, with its sections "
                        f"{', '.join(t for _, t in HOUSE_SECTIONS)}); it is {codec}, format {kind or 'unknown'}"
                        + (": train_gpt.py reads it as it is" if kind == train_gpt.ARTIFACT_FORMAT else ""))
    ours = {k: {house_name(n): v for n, v in blob[theirs].items()} for k, theirs in HOUSE_SECTIONS}
    ours["scale"] = {n: s.reshape(1) if isinstance(s, torch.Tensor) and s.ndim == 0 else s for n, s in ours["scale"].items()}  # one scale
    ours["dtype"] = {n: str(d).removeprefix("torch.") for n, d in ours["dtype"].items()}
    ours.update(bits={}, shape={}, meta={"format": train_gpt.ARTIFACT_FORMAT, "config": cfg.model_config(), "torch_version": str(torch.__version__),
                                         "regenerated": {}, "imported_from": {"file": src.name, "format": HOUSE_FORMAT}})
    buf = io.BytesIO()
    torch.save(ours, buf)
    data = zlib.compress(buf.getvalue(), 9)
    shape = " ".join(f"{k.upper()}={getattr(cfg, k)}" for k in ("vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_mult"))
    try:
        model, _ = train_gpt.model_from_artifact(out, data=data)
    except train_gpt.ConfigError as e:
        raise ToolError(f"{src}: not the model this environment describes ({shape}; set the variables it was trained with): "
                        f"{str(e).removeprefix(f'ARTIFACT={out}: ')}") from None
    try:
        train_gpt.write_together({out: data})
    except train_gpt.ConfigError as e:
        raise ToolError(f"--out {e}") from None
    return (f"wrote {out} ({len(data)} bytes): {len(ours['q'])} int8 and {len(ours['keep'])} kept tensors of {src} ({HOUSE_FORMAT}), "
            f"{sum(p.numel() for p in model.parameters())} parameters, {shape}; score it with EVAL_ONLY=1 ARTIFACT={out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("grid", nargs="*")
    s.add_argument("--name", default="sweep_" + datetime.datetime.now().strftime("%Y%m%d_%H%M%S"))
    s.add_argument("--launch", help="how to start train_gpt.py, split as the shell splits it (e.g. 'torchrun --standalone --nproc_per_node=8'); "
                   "default: this Python")
    m = sub.add_parser("summary")
    m.add_argument("paths", nargs="*", help="logs or folders, searched for *.txt and *.log (default: logs/)")
    m.add_argument("--format", choices=("md", "csv", "json"), default="md")
    r = sub.add_parser("record")
    r.add_argument("logs", nargs="+")
    r.add_argument("--name", required=True)
    r.add_argument("--track", choices=("10min_16mb", "non_record_16mb"), default="non_record_16mb")
    r.add_argument("--author", default=os.environ.get("USER", "unknown"))
    r.add_argument("--github-id", default="")
    r.add_argument("--blurb", default="")
    r.add_argument("--date", default=datetime.date.today().isoformat())
    r.add_argument("--against", help="the record to beat: its folder or submission.json, per-seed val_bpb (1.22,1.23) or val_loss (loss:2.06,2.07)")
    r.add_argument("--smoke", action="store_true", help="label the folder a smoke example, not a score")
    r.add_argument("--out", type=Path, default=ROOT / "records")
    i = sub.add_parser("import", help="the challenge script's final_model.int8.ptz as a train_gpt.py artifact (EVAL_ONLY, DISTILL_TEACHER)")
    i.add_argument("artifact", type=Path)
    i.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    note = lambda msg: print(msg, file=sys.stderr)
    try:
        if a.cmd == "sweep":
            try:  # a Python or a project under a folder whose name holds a space: split as words, that path stays whole
                launch = [sys.executable] if a.launch is None else shlex.split(a.launch)
            except ValueError as e:
                raise ToolError(f"--launch {a.launch!r}: {e}; accepted a command as the shell would take it") from None
            folder, failed, stopped = run_sweep(a.grid, a.name, launch)
            say(summary_table(read_logs([str(folder)], note)))
            if stopped:  # the exit status of a process a signal ended, as the shell and torchrun read it
                print(f"error: sweep {a.name}: {stopped[1]}", file=sys.stderr)
                return 128 + stopped[0]
            if failed:
                raise ToolError(f"{len(failed)} of the sweep's runs failed: {', '.join(failed)}")
        elif a.cmd in ("summary", "import"):  # a signal: one line, not a KeyboardInterrupt traceback (or for `kill`, none)
            made = a.cmd == "import" and not (a.out.exists() or a.out.is_symlink())
            with SignalsToTheRun(interrupt=True) as runs:
                try:
                    say(summary_table(read_logs(a.paths, note), a.format) if a.cmd == "summary" else
                        import_house_artifact(a.artifact, a.out, os.environ))
                except Stopped:
                    if made:  # the write goes through train_gpt.py's temporary file, renamed into place when complete
                        a.out.with_name(f".{a.out.name}.tmp{os.getpid()}").unlink(missing_ok=True)
                    raise Stopped(runs.stop[0], f"{a.cmd}: {runs.stopped()}; " + (
                        "nothing was written" if a.cmd == "summary" else f"{a.out} had been written whole before it"
                        if made and a.out.exists() else f"nothing was written to {a.out}")) from None
        else:
            sys.path.insert(0, str(ROOT))
            from train_gpt import ENV_VARS
            data, ours = ROOT / "data", {name for name, *_ in ENV_VARS}
            check = {**{k: v for k, v in os.environ.items() if k not in ours}, **SMOKE_CHECK, "DATA_PATH": str(data / "datasets/shakespeare_sp1024"),
                     "TOKENIZER_PATH": str(data / "tokenizers/shakespeare_1024_bpe.model")}
            folder = make_record(a.logs, a.name, a.track, a.author, a.github_id, a.blurb, a.date, a.smoke, a.out, check, a.against)
            say(f"wrote {folder} (its train_gpt.py ran from inside a copy of the folder)")
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # what no check above names (a sweep's folder on a full or read-only disk): one line with its file
        print(f"error: {e.filename or a.cmd}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(f"error: {e}", file=sys.stderr)
        return 128 + e.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
