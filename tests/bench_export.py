"""Time and peak memory of `data/export_corpus.py --challenge` at two input sizes, the input plain and gzip-compressed.

    bash run.sh bench export [--sizes-mb 100,400] [--forms jsonl,gz] [--vocab-size 1024] [--tokenizer-train-docs 20000]

Writes a docs_selected.jsonl of each size (synthetic documents of FineWeb-like length, each
one distinct), exports it with the challenge's protocol, and samples the resident memory
of the whole process tree (the exporter and its encoding workers) every 50 ms. A streaming
export's peak does not grow with the input. The tokenizer is trained on the first
--tokenizer-train-docs documents at every size, since SentencePiece's trainer holds its
training sentences in memory whatever the exporter does. --forms gz exports docs_selected.jsonl.gz,
the same file compressed by gzip at its default level 6 (not timed): the cost of reading compressed input.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "records"))
from tools import start_run, tool_main  # noqa: E402  (a signal stops the export with the benchmark)


def tree_rss(pid: int) -> int:
    """Resident bytes of pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def write_corpus(path: Path, size_mb: int) -> int:
    """Distinct documents until the file holds size_mb megabytes."""
    from conftest import synthetic_documents
    pool = synthetic_documents(2000, seed=3)
    rng, n, written = random.Random(0), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size_mb * 1_000_000:
            a, b = rng.choice(pool), rng.choice(pool)
            line = json.dumps({"text": f"{n} {a[: rng.randint(1, len(a))]} {b}"}) + "\n"
            f.write(line)
            written += len(line.encode())
            n += 1
    return n


def measure(cmd: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = start_run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"export failed: {err.strip()}")
    return time.perf_counter() - start, peak, out.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes-mb", default="100,400")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--tokenizer-train-docs", type=int, default=20000)
    p.add_argument("--forms", default="jsonl,gz", help="the input as written (jsonl), and gzip-compressed (gz)")
    a = p.parse_args()
    if not all(t.strip().isdigit() and int(t) > 0 for t in a.sizes_mb.split(",")):
        sys.exit(f"error: bench export: --sizes-mb {a.sizes_mb!r}: accepted a comma list of whole megabytes (100,400)")
    forms = a.forms.split(",")
    if not forms or not set(forms) <= {"jsonl", "gz"}:
        sys.exit(f"error: bench export: --forms {a.forms!r}: accepted a comma list of jsonl and gz")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in map(int, a.sizes_mb.split(",")):
            src = Path(tmp) / f"{size}mb" / "docs_selected.jsonl"
            src.parent.mkdir()
            docs = write_corpus(src, size)
            for form in forms:
                given = src if form == "jsonl" else src.with_name(src.name + ".gz")
                if form == "gz":
                    with open(src, "rb") as f, gzip.open(given, "wb", compresslevel=6) as g:
                        shutil.copyfileobj(f, g, 1 << 20)
                out = Path(tmp) / f"out{size}{form}"
                cmd = [sys.executable, str(ROOT / "data/export_corpus.py"), "--input", str(given), "--challenge", "--out", str(out),
                       "--vocab-size", str(a.vocab_size), "--tokenizer-train-docs", str(a.tokenizer_train_docs), "--num-val-docs", "5000"]
                seconds, peak, _ = measure(cmd)
                stats = json.loads((out / "manifest.json").read_text())["datasets"][0]["stats"]
                rows.append((size, form, given.stat().st_size, docs, stats["tokens_total"], seconds, peak))
                shutil.rmtree(out)
                given.unlink() if form == "gz" else None
            src.unlink()
    print(f"export_corpus.py --challenge, vocab {a.vocab_size}, tokenizer on the first {a.tokenizer_train_docs:,} documents, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| input (MB) | as | file (MB) | documents | tokens | wall time (s) | MB/s of input | peak RSS, process tree (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for size, form, file_bytes, docs, tokens, seconds, peak in rows:
        print(f"| {size} | {'.jsonl' if form == 'jsonl' else '.jsonl.gz'} | {file_bytes / 1e6:.0f} | {docs:,} | {tokens:,} | {seconds:.1f} | "
              f"{size / seconds:.1f} | {peak / 1e6:.0f} |")


if __name__ == "__main__":
    sys.exit(tool_main(main, "bench export"))
