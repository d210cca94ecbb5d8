"""Export a local text corpus in the challenge's format.

    python3 data/export_corpus.py --input DIR_OR_JSONL --name mycorpus [--vocab-size 1024]

Input: a folder (every `.txt` file below it is one document) or a JSONL file (one JSON
object per line; its "text" field is one document). Output, under --out (default data/):

    tokenizers/<name>_<vocab>_bpe.model, .vocab   SentencePiece BPE with the challenge's options
    datasets/<name>_sp<vocab>/<name>_{train,val}_NNNNNN.bin
    datasets/<name>_sp<vocab>/manifest.json

Validation is held out by whole documents: the documents are shuffled with --seed and the
first --val-docs (or --val-fraction of them) form the validation split. The tokenizer is
trained on the training documents only. Each document is written as BOS followed by its
tokens, documents running on across shard boundaries. Everything is written to a
temporary folder first and moved into place at the end, so a failed export leaves any
earlier one untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

SHARD_MAGIC, SHARD_VERSION, HEADER_INTS = 20240520, 1, 256
BOS_ID = 1


class ExportError(Exception):
    """Bad input to an export: printed as one line, exit status 2."""


# The tokenizer options of the challenge's published tokenizers (FACTS.md).
TOKENIZER_OPTIONS = dict(
    model_type="bpe", character_coverage=0.999, byte_fallback=True, split_digits=True,
    normalization_rule_name="nmt_nfkc", add_dummy_prefix=False, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
    hard_vocab_limit=False,
)


def write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, tokens.size)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())


def read_documents(source: Path) -> list[str]:
    """Documents of a folder of .txt files (sorted by path) or of a JSONL file."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.txt") if p.is_file())
        if not files:
            raise ExportError(f"--input {source}: no .txt files below this folder")
        return [p.read_text(encoding="utf-8", errors="replace") for p in files]
    if source.is_file():
        docs = []
        with open(source, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ExportError(f"--input {source}: line {n} is not a JSON object with a \"text\" field") from None
                if not isinstance(text, str):
                    raise ExportError(f"--input {source}: line {n}: \"text\" is not a string")
                docs.append(text)
        return docs
    raise ExportError(f"--input {source}: no such file or folder (accepted: a folder of .txt files or a .jsonl file)")


def train_tokenizer(docs: list[str], vocab_size: int, model_prefix: Path, threads: int = 2) -> None:
    """SentencePiece BPE on the documents' lines (stripped, NUL replaced by a space: FACTS.md)."""
    import sentencepiece as spm

    def lines():
        for doc in docs:
            for line in doc.replace("\x00", " ").splitlines():
                if line.strip():
                    yield line.strip()

    spm.SentencePieceTrainer.train(
        sentence_iterator=lines(), model_prefix=str(model_prefix), vocab_size=vocab_size,
        num_threads=threads, input_sentence_size=2_000_000, shuffle_input_sentence=True,
        minloglevel=2, **TOKENIZER_OPTIONS)


def write_split(sp, docs: list[str], folder: Path, prefix: str, split: str, shard_tokens: int) -> tuple[int, int]:
    """BOS + tokens per document, cut into shards of shard_tokens. Returns (files, tokens)."""
    buf, files, total = [], 0, 0

    def flush(final: bool):
        nonlocal buf, files
        data = np.concatenate(buf) if buf else np.zeros(0, dtype=np.uint16)
        while data.size >= shard_tokens or (final and (data.size or files == 0)):
            write_shard(folder / f"{prefix}_{split}_{files:06d}.bin", data[:shard_tokens])
            files, data = files + 1, data[shard_tokens:]
        buf = [data]

    for i in range(0, len(docs), 512):
        for ids in sp.encode(docs[i:i + 512]):
            buf.append(np.array([BOS_ID] + ids, dtype=np.uint16))
            total += len(ids) + 1
        flush(final=False)
    flush(final=True)
    return files, total


def export(train_docs: list[str], val_docs: list[str], out: Path, name: str, vocab_size: int = 1024,
           shard_tokens: int = 100_000_000, extra: dict | None = None) -> Path:
    """Tokenizer + shards + manifest under out/; returns the dataset folder."""
    import sentencepiece as spm

    if not train_docs or not val_docs:
        raise ExportError(f"need documents in both splits, got {len(train_docs)} train and {len(val_docs)} val")
    if not 256 + 4 <= vocab_size <= 65536:
        raise ExportError(f"--vocab-size {vocab_size}: accepted 260 to 65536 (256 byte pieces + 4 specials, ids fit uint16)")
    out.mkdir(parents=True, exist_ok=True)
    tok_name, ds_name = f"{name}_{vocab_size}_bpe", f"{name}_sp{vocab_size}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}_export_", dir=out))
    try:
        train_tokenizer(train_docs, vocab_size, tmp / tok_name)
        sp = spm.SentencePieceProcessor(model_file=str(tmp / f"{tok_name}.model"))
        ds = tmp / ds_name
        ds.mkdir()
        n_train, t_train = write_split(sp, train_docs, ds, name, "train", shard_tokens)
        n_val, t_val = write_split(sp, val_docs, ds, name, "val", shard_tokens)
        manifest = {
            "datasets": [{
                "name": ds_name, "tokenizer_name": tok_name, "path": f"datasets/{ds_name}",
                "train_glob": f"datasets/{ds_name}/{name}_train_*.bin", "val_glob": f"datasets/{ds_name}/{name}_val_*.bin",
                "stats": {"files_train": n_train, "files_val": n_val, "tokens_train": t_train, "tokens_val": t_val,
                          "docs_train": len(train_docs), "docs_val": len(val_docs), "shard_tokens": shard_tokens},
                **(extra or {}),
            }],
            "tokenizers": [{"name": tok_name, "kind": "sentencepiece", "vocab_size": sp.vocab_size(),
                            "model_path": f"tokenizers/{tok_name}.model", "vocab_path": f"tokenizers/{tok_name}.vocab",
                            "options": TOKENIZER_OPTIONS}],
        }
        (ds / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        # Move into place: the dataset folder first, then the tokenizer that matches it.
        (out / "datasets").mkdir(exist_ok=True)
        (out / "tokenizers").mkdir(exist_ok=True)
        final = out / "datasets" / ds_name
        if final.exists():
            shutil.rmtree(final)
        os.replace(ds, final)
        for ext in (".model", ".vocab"):
            os.replace(tmp / f"{tok_name}{ext}", out / "tokenizers" / f"{tok_name}{ext}")
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def split_documents(docs: list[str], val_docs: int, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle whole documents with the seed; the first val_docs are the validation split."""
    docs = [d for d in docs if d.strip()]
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    if not 0 < val_docs < len(docs):
        raise ExportError(f"--val-docs {val_docs}: accepted 1 to {len(docs) - 1} ({len(docs)} non-empty documents)")
    return [docs[i] for i in order[val_docs:]], [docs[i] for i in order[:val_docs]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=Path, required=True, help="folder of .txt files, or a .jsonl file with a text field")
    p.add_argument("--name", required=True, help="dataset name (letters, digits, _ and -)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output root (default: data/)")
    p.add_argument("--vocab-size", type=int, default=1024)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val-docs", type=int, help="documents held out for validation")
    g.add_argument("--val-fraction", type=float, default=0.05, help="fraction of documents held out (default 0.05)")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default 100,000,000)")
    p.add_argument("--seed", type=int, default=1337)
    a = p.parse_args(argv)
    try:
        if not a.name.replace("_", "").replace("-", "").isalnum():
            raise ExportError(f"--name {a.name!r}: accepted letters, digits, _ and -")
        if a.shard_tokens < 1:
            raise ExportError(f"--shard-tokens {a.shard_tokens}: must be at least 1")
        docs = read_documents(a.input)
        n = len([d for d in docs if d.strip()])
        if a.val_docs is None and not 0 < a.val_fraction < 1:
            raise ExportError(f"--val-fraction {a.val_fraction}: accepted strictly between 0 and 1")
        val_docs = a.val_docs if a.val_docs is not None else max(1, round(a.val_fraction * n))
        train, val = split_documents(docs, val_docs, a.seed)
        folder = export(train, val, a.out, a.name, a.vocab_size, a.shard_tokens,
                        extra={"source": str(a.input), "split": {"rule": "shuffled whole documents", "seed": a.seed, "val_docs": len(val)}})
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stats = json.loads((folder / "manifest.json").read_text())["datasets"][0]["stats"]
    print(f"wrote {folder}: {stats['tokens_train']} train tokens in {stats['files_train']} shards, "
          f"{stats['tokens_val']} val tokens in {stats['files_val']} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
