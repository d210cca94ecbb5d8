"""Shared fixtures: a small real corpus (SentencePiece tokenizer + challenge shards built by
data/export_corpus.py) and a helper that runs train_gpt.py as a real process."""

from __future__ import annotations

import contextlib
import os
import pty
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data"))
SCRIPT = ROOT / "train_gpt.py"
# A stop signal ignored from the start stays ignored in train_gpt.py and the tools (nohup's SIGHUP is the user's wish), and children
# inherit what is ignored: the suite started under nohup or as a background job (SIGINT ignored) would see its signal tests' runs
# carry on. Its processes start as a terminal's do, whatever started the suite. SIGQUIT too: a script's background job (`nohup
# python -m pytest ... &` without job control) starts with it ignored, and the Ctrl-\ typed at the tests' pseudo-terminals did
# nothing (the sweep's test waited 120 s for its end, 2026-12-05: its shell and the sweep showed SIGQUIT in SigIgn).
for _signum, _default in ((signal.SIGHUP, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler), (signal.SIGQUIT, signal.SIG_DFL)):
    if signal.getsignal(_signum) is signal.SIG_IGN:
        signal.signal(_signum, _default)


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A real full disk: a tmpfs of `size` (e.g. "20k") mounted at folder, unmounted after; the test is skipped where
    mounting is not permitted (not root, or a container without the capability)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a real full disk); not root here")
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)])


@pytest.fixture(scope="session", autouse=True)
def scratch_tmpdir(tmp_path_factory):
    """The suite's processes use this session's pytest folder as their temporary one (TMPDIR), which `run.sh test` has pytest
    delete when every test passed: in /tmp, each run of the suite left about fifteen entries for good, torchrun's torchelastic_*
    log folders (one a torchrun, whatever its end), the empty .s files of the g++ a signal test stops mid-compile, and pip's
    extracted cacert.pem."""
    folder, before = tmp_path_factory.mktemp("tmp"), os.environ.get("TMPDIR")
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), None
    yield folder
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None


@pytest.fixture(scope="session")
def interpreter_with(tmp_path_factory):
    """interpreter_with("pkg==v"): a Python that imports that version of a package and this one's for the rest (a venv over this
    interpreter's packages, the package installed from PyPI inside it), made once a session: the versions participants' machines
    have beside the newest the suite runs on. Offline it skips; under CI (which reaches PyPI and must run every test) it fails.
    This interpreter's packages are its own site folders, named in a .pth file: `venv --system-site-packages` gives the base
    Python's instead, and where this one is itself a venv (run.sh's .venv on a PEP 668 system) those lack numpy and torch."""
    made: dict[str, str] = {}
    ours = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)]

    def make(spec: str) -> str:
        if spec not in made:
            venv = tmp_path_factory.mktemp("venv") / spec.replace("=", "_")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip()
            Path(purelib, "this_interpreters_packages.pth").write_text("".join(f"{p}\n" for p in ours))  # after the venv's own
            r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", spec], capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                (pytest.fail if os.environ.get("CI") else pytest.skip)(f"could not install {spec} (offline?): {r.stderr.strip()[-300:]}")
            made[spec] = str(venv / "bin" / "python")
        return made[spec]
    return make


def older_python(minor: int) -> str | None:  # an interpreter of Python 3.<minor> on this machine (pyenv's, or on PATH), if any
    import shutil
    found = [str(p) for p in sorted(Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python"))] + [shutil.which(f"python3.{minor}")]
    return next((f for f in found if f and "/shims/" not in f), None)  # a pyenv shim may refuse a version not selected


@pytest.fixture(scope="session")
def python39_with(tmp_path_factory):
    """python39_with("pkg", ...): Python 3.9 (RHEL 9's python3) in a venv of its own with those packages from PyPI, the newest
    releases that still support it; made once a session. Skipped where no 3.9 is installed; offline it skips, under CI it fails."""
    made: dict[tuple, str] = {}

    def make(*packages: str) -> str:
        if packages not in made:
            base = older_python(9) or pytest.skip("no Python 3.9 on this machine")
            venv = tmp_path_factory.mktemp("venv39")
            subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
            r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True,
                               timeout=600)
            if r.returncode != 0:
                (pytest.fail if os.environ.get("CI") else pytest.skip)(f"could not install {packages} (offline?): {r.stderr.strip()[-300:]}")
            made[packages] = str(venv / "bin" / "python")
        return made[packages]
    return make


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs of train_gpt.py (seconds to a minute each)")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (tests/test_cuda.py); skipped where none is visible")


def synthetic_documents(n_docs: int, seed: int = 0) -> list[str]:
    """Text with a Zipfian vocabulary, punctuation, digits and a little non-ASCII (so
    byte-fallback pieces appear), deterministic for a seed."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = ["".join(rng.choice(letters[: rng.randint(6, 26)]) for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    words += ["café", "naïve", "Ærø", "日本", "—", "🙂"]
    weights = [1.0 / (i + 1) for i in range(len(words))]
    docs = []
    for _ in range(n_docs):
        sentences = []
        for _ in range(rng.randint(3, 12)):
            ws = rng.choices(words, weights, k=rng.randint(4, 18))
            if rng.random() < 0.3:
                ws.insert(rng.randrange(len(ws)), str(rng.randint(0, 99999)))
            sentences.append(" ".join(ws).capitalize() + rng.choice(".!?"))
        docs.append(" ".join(sentences) + ("\n\n" + rng.choice(words) if rng.random() < 0.5 else ""))
    return docs


@pytest.fixture
def cxx() -> None:
    """For inductor on a CPU, which compiles C++ kernels: skipped where no C++ compiler is found."""
    import shutil
    if not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
        pytest.skip("inductor on a CPU needs a C++ compiler (g++); none here")


def without_torchs_notices(stderr: str) -> str:
    """torch 2.5's cpp_extension, which inductor imports to build CPU kernels, prints a line of its own on a machine with a CUDA
    toolkit but no GPU (this one has nvcc): "No CUDA runtime is found, using CUDA_HOME='/usr/local'"; 2.8 through its logging, so
    after a prefix ("W1206 06:32:12.869000 16205 torch/utils/cpp_extension.py:118] [0/0] "). Not the script's: dropped."""
    return re.sub(r"^(?:[WIEF]\d{4} [\d:.]+ \d+ \S+\] (?:\[\S+\] )?)?No CUDA runtime is found, using CUDA_HOME=.*\n", "", stderr, flags=re.M)


def inductor_threads() -> str:
    """OMP_NUM_THREADS for a COMPILE=1 run with inductor on a CPU: the tests' one thread, but two before torch 2.7, where the script
    refuses one (inductor's one-thread kernel for an embedding's gradient is wrong there: test_faults.py, one_cpu_thread)."""
    import torch
    return "1" if torch.__version__ >= (2, 7) else "2"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """A 1,024-token BPE tokenizer and shards: about 60k train tokens in several shards and
    a validation split of whole held-out documents."""
    from export_corpus import export

    out = tmp_path_factory.mktemp("tiny_data")
    docs = synthetic_documents(420, seed=1)
    folder = export(docs[40:], docs[:40], out, "tiny", vocab_size=1024, shard_tokens=20_000)
    return {"root": out, "data_path": str(folder), "tokenizer_path": str(out / "tokenizers" / "tiny_1024_bpe.model"),
            "train_docs": docs[40:], "val_docs": docs[:40]}


TINY_MODEL = dict(VOCAB_SIZE="1024", NUM_LAYERS="2", MODEL_DIM="64", NUM_HEADS="4", NUM_KV_HEADS="2", MLP_MULT="2",
                  TRAIN_SEQ_LEN="64", TRAIN_BATCH_TOKENS="2048", GRAD_ACCUM_STEPS="0", ITERATIONS="12",
                  WARMUP_STEPS="2", WARMDOWN_ITERS="4", MAX_WALLCLOCK_SECONDS="0", TRAIN_LOG_EVERY="1",
                  VAL_LOSS_EVERY="6", VAL_BATCH_SIZE="4096", EVAL_STRIDE="32", SEED="7")


def clean_env(**overrides) -> dict:
    """The current environment without any train_gpt.py variable, plus the overrides. The
    process runs on CPU even on a GPU machine (the tests' numbers are fp32 CPU facts: bit-exact
    resume, gloo agreement) unless the overrides name CUDA_VISIBLE_DEVICES (tests/test_cuda.py). A `bash run.sh` inside a test
    runs this interpreter (PYTHON), not the one the suite was started with: `PYTHON=/usr/bin/python3 bash run.sh test` on Debian
    runs the suite in .venv, and the inner run.sh, given the system's python3 again, said so in a line the tests did not expect."""
    import train_gpt

    ours = {name for name, *_ in train_gpt.ENV_VARS}
    env = {k: v for k, v in os.environ.items() if k not in ours and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["CUDA_VISIBLE_DEVICES"], env["PYTHON"] = "", sys.executable
    env.update({k: str(v) for k, v in overrides.items()})
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def train_command(nproc: int = 0) -> list[str]:
    """train_gpt.py's command: nproc > 0 runs it under torchrun with that many processes (gloo on CPU)."""
    if nproc:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(SCRIPT)]
    return [sys.executable, str(SCRIPT)]


def run_train(cwd: Path, env: dict, nproc: int = 0, timeout: int = 600) -> subprocess.CompletedProcess:
    """train_gpt.py as a real process in cwd (logs/ and the artifact land there), under torchrun if nproc > 0."""
    return subprocess.run(train_command(nproc), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_with_stderr_records(cmd: list[str], timeout: int = 600, **kwargs) -> tuple[subprocess.CompletedProcess, list[bytes]]:
    """cmd as a real process whose stderr is a datagram socket, which keeps each write() apart: the records are what each write
    call carried, in order, empty ones left out (through a pipe, a line two processes each wrote in two calls reads back as two
    interleaved halves only when the calls happen to meet). Returns the run, its stdout and its records joined as text, and the
    records. A datagram socket has no end-of-file (a stream or SEQPACKET socket's is a zero-length read, which Python's own
    traceback printing writes as well): the process's exit is the end, once every write it and its workers made is read."""
    read, write = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    records: list[bytes] = []

    def drain():  # while it runs (a writer blocks once the socket's queue is full), then what is queued when it has exited
        read.settimeout(0.2)
        while True:
            try:
                record = read.recv(1 << 20)  # one write: at most the socket's send buffer, far under this
            except TimeoutError:
                if proc.poll() is not None:
                    return
                continue
            if record:  # an empty write carries nothing
                records.append(record)
    with read:
        with write:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=write.fileno(), text=True, **kwargs)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            stdout = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, b"".join(records).decode()), records


def run_with_closed_console(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """cmd as a real process whose stdout is a pipe with no reader left (`| head` after its lines, a killed tee): every
    write to it fails with EPIPE. stderr is captured as text."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, **kwargs)
    finally:
        os.close(write)


def run_with_closed_terminal(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """cmd as a real process whose stdout and stderr are a terminal already closed (its window shut under a job that `setsid` or
    `disown` kept alive, so no SIGHUP came): every write to it fails with EIO, not EPIPE. Nothing is captured."""
    master, slave = pty.openpty()
    os.close(master)
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True, **kwargs)
    finally:
        os.close(slave)


def live_processes(match) -> list[str]:
    """The pids of the processes for whose /proc/<pid> folder match(folder) is true (Linux), those that end or belong to another
    user meanwhile left out: what a test that stopped something checks is gone."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            found += [proc.name] if match(proc) else []
    return found


def log_lines(cwd: Path, run_id: str) -> list[str]:
    text = (Path(cwd) / "logs" / f"{run_id}.txt").read_text()
    return text.split("=" * 100 + "\n", 1)[1].splitlines()


def field(line: str, key: str) -> str:
    """The value of key:value in a log line."""
    for part in line.split():
        if part.startswith(key + ":"):
            return part[len(key) + 1:].removesuffix("ms")
    raise KeyError(f"{key} not in {line!r}")


def write_artifact(path, state: dict, meta: dict, int6_blocks=()) -> tuple[int, dict]:
    """An artifact file from a state dict, as training writes one: (bytes, storage stats)."""
    from train_gpt import artifact_bytes, write_together

    data, stats = artifact_bytes(state, meta, int6_blocks)
    write_together({path: data})
    return len(data), stats


# An interactive shell's job control, as in a participant's terminal: the session's leader on the pseudo-terminal, it starts the
# job in a process group of its own, gives that group the terminal (unless "bg": `bash run.sh &`), takes the terminal back when
# the job stops (Ctrl-Z, or a background write under `stty tostop`), and on a typed `fg` gives it (back) and continues the group.
JOB_SHELL = """import fcntl, os, select, signal, subprocess, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
if sys.argv[1] == "tostop":
    attrs = termios.tcgetattr(0)
    attrs[3] |= termios.TOSTOP
    termios.tcsetattr(0, termios.TCSANOW, attrs)
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
def start(foreground=sys.argv[2] == "fg"):
    os.setpgid(0, 0)
    foreground and os.tcsetpgrp(0, os.getpgrp())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
job = subprocess.Popen(sys.argv[3:], preexec_fn=start)
while True:
    pid, status = os.waitpid(job.pid, os.WUNTRACED | os.WNOHANG)
    if pid:
        os.tcsetpgrp(0, os.getpgrp())
        if not os.WIFSTOPPED(status):
            print(f"[shell] exit {os.waitstatus_to_exitcode(status)}", flush=True)
            break
        print("[shell] stopped", flush=True)
    if os.tcgetpgrp(0) == os.getpgrp() and select.select([0], [], [], 0.05)[0] and sys.stdin.readline().strip() == "fg":
        os.tcsetpgrp(0, job.pid)
        os.killpg(job.pid, signal.SIGCONT)
    elif os.tcgetpgrp(0) != os.getpgrp():
        select.select([], [], [], 0.05)
"""


class Terminal:
    """`command` typed at a real pseudo-terminal (JOB_SHELL's job control), its screen read as it comes."""

    def __init__(self, command, cwd, env, tostop=False, background=False):
        self.master, slave = pty.openpty()
        self.shell = subprocess.Popen([sys.executable, "-c", JOB_SHELL, "tostop" if tostop else "-", "bg" if background else "fg", *command],
                                      cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.screen, self.reading = b"", True
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):  # drained all the time: a full pseudo-terminal would block the job's writes
        while self.reading:
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # EIO: the shell and its job are gone
                    return

    def type(self, keys: bytes):
        os.write(self.master, keys)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            assert time.monotonic() < deadline, (f"{text!r} never came; {self.session()}; the screen ends: "
                                                 f"{self.screen[-1500:].decode(errors='replace')}")
            time.sleep(0.1)

    def session(self) -> str:
        """Who holds the terminal and each process of the shell's session (pid, state, group, command, signal masks): what a test
        that waited in vain needs to say (a key does nothing where the shell holds the terminal, or where the job ignores its signal)."""
        foreground, procs = None, []
        with contextlib.suppress(OSError):
            foreground = os.tcgetpgrp(self.master)
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, IndexError):
                fields = (proc / "stat").read_text().rsplit(") ", 1)[1].split()
                if int(fields[3]) == self.shell.pid:  # the session's id: the shell's pid
                    command = (proc / "cmdline").read_bytes()[:60].replace(b"\0", b" ").decode(errors="replace")
                    masks = " ".join(re.findall(r"^(?:ShdPnd|SigPnd|SigBlk|SigIgn|SigCgt):\s*\S+", (proc / "status").read_text(), re.M))
                    procs.append(f"{proc.name} {fields[0]} pgrp {fields[2]} {command} ({masks})")
        return f"the terminal's foreground group {foreground}, its session: " + "; ".join(procs)

    def pause_and_continue(self, log: Path, runs) -> list[str]:
        """Ctrl-Z, then `fg`: the shell says the job stopped, every process runs() lists is stopped and log gains no step; after
        `fg` it gains steps again. Returns those processes."""
        self.type(b"\x1a")
        self.wait_for("[shell] stopped")
        pids = runs()
        assert pids and [process_state(pid) for pid in pids] == ["T"] * len(pids)
        steps = log.read_text().count("\nstep:")
        time.sleep(1.5)
        assert log.read_text().count("\nstep:") == steps
        self.type(b"fg\n")
        time.sleep(1.5)
        assert log.read_text().count("\nstep:") > steps
        return pids

    def hang_up(self):  # the terminal window closed, the SSH session dropped
        self.reading = False
        self.reader.join()
        os.close(self.master)
        self.master = None

    def close(self):
        if self.shell.poll() is None:
            os.killpg(self.shell.pid, signal.SIGKILL)
        self.shell.wait()
        self.master is None or self.hang_up()


def process_state(pid) -> str:  # R, S, T (stopped) ...: /proc/PID/stat's third field
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
