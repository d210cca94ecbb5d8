"""Export text in the challenge's format: SentencePiece (or byte260, or char) tokenizer + uint16 shards + manifest.

The challenge's own protocol, from its docs_selected.jsonl (FACTS.md):

    python3 data/export_corpus.py --input docs_selected.jsonl --challenge --vocab-size 1024 --out DIR
        [--num-val-docs N] [--tokenizer-train-docs N] [--shard-tokens N] [--reuse-tokenizer FILE]

writes DIR/tokenizers/fineweb_<N>_bpe.model/.vocab, DIR/datasets/fineweb10B_sp<N>/ and
DIR/manifest.json. The first --num-val-docs documents in file order are validation (default:
`docs_val` of the sidecar docs_selected.source_manifest.json beside the input, else 50,000),
the rest training; nothing is shuffled. The tokenizer is trained on every document (or the
first --tokenizer-train-docs), validation included, one sentence per document, each
`text.replace("\\x00", " ").strip()`, empty ones skipped, with the challenge's options and
SentencePiece's defaults for the rest. Each document is BOS + the encoding of its raw text
(an empty one a lone BOS); validation shards first; a split change closes a shard. A manifest
already in DIR of the same documents keeps its other variants' entries (one manifest lists them
all, as the published one does); one of other documents is replaced, with a note on stderr.

Any other corpus (JSON lines with a "text" field, Parquet with a "text" column, or a folder of .txt
files, one document each, and .jsonl and .parquet files):

    python3 data/export_corpus.py --input DIR_OR_FILE --name mycorpus [--vocab-size 1024]

holds out --val-docs (or --val-fraction) non-empty documents drawn with --seed, kept in file
order, trains the tokenizer on the training documents' lines, and writes
tokenizers/<name>_<vocab>_bpe.* and datasets/<name>_sp<vocab>/ (with its manifest.json).

--byte260, in either mode, uses the challenge's pure-byte tokenizer instead: nothing is
trained, tokenizers/fineweb_pure_byte_260.json (or <name>_pure_byte_260.json) holds it, and
each document is BOS + (4 + b for each byte b of its UTF-8) in datasets/fineweb10B_byte260/
(or <name>_byte260/).

--char, in either mode, makes the challenge's character-level tokenizer (the char workflow of
its data README): every character of every document (validation included, NUL counted as a
space), most frequent first, ties by code point, is id 4, 5, ...; tokenizers/fineweb_char.json
(or <name>_char.json) holds them in the challenge's JSON, and each document is BOS + the id of
each of its characters (3, unknown, for one not in the list: a NUL) in datasets/fineweb10B_char/
(or <name>_char/). Both JSON files are written as the challenge writes them (2-space indent,
sorted keys, characters as themselves), so the same documents give the same bytes.

Both modes stream: documents are read, encoded (on every core) and written shard by shard,
so memory does not grow with the input (SentencePiece's trainer holds its own training
sentences: bound them with --tokenizer-train-docs, or reuse a tokenizer). Both are
deterministic: the same input gives byte-identical shards and the same tokenizer. Output
is assembled in a temporary folder and moved into place at the end, so a failed export
leaves any earlier one untouched.

JSON lines and .txt files may be compressed (gzip, bzip2, xz; zstd with the zstandard package),
known by their first bytes; --challenge reads docs_selected.jsonl.gz and the like as the plain
file. Parquet is read through pyarrow (only then needed). --text-field names another field or
column than "text" (other corpora only).
"""

from __future__ import annotations

import argparse
import bz2
import collections
import contextlib
import hashlib
import importlib
import json
import lzma
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

SHARD_MAGIC, SHARD_VERSION, HEADER_INTS = 20240520, 1, 256
BOS_ID, EOS_ID, UNK_ID = 1, 2, 3
BATCH_DOCS = 512
# byte260, the challenge's pure-byte tokenizer (FACTS.md): nothing to train; byte b of a document's UTF-8 is id BYTE_OFFSET + b.
BYTE_OFFSET = 4
BYTE260 = {"tokenizer_type": "pure_byte", "config": {"pad_id": 0, "bos_id": BOS_ID, "eos_id": EOS_ID, "unk_id": UNK_ID, "byte_offset": BYTE_OFFSET,
                                                     "byte_count": 256}, "vocab_size": 256 + BYTE_OFFSET}


class ExportError(Exception):
    """Bad input to an export: printed as one line, exit status 2."""


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Interrupted(BaseException):
    """Ctrl-C, a closed terminal or kill (the data scripts'): an export stops, its staging folder is removed, and what --out held
    stays as it was; a download keeps what arrived. Not an Exception, as KeyboardInterrupt is not, so that no `except Exception`
    on its way takes it for an error (the downloader's retries took it for a network error and never stopped)."""


HELD: list[list[int]] = []  # the stop signals that came inside signals_held()


def interrupt(signum, frame):
    """The exporter's handler of the stop signals: later ones are ignored, so that the workers' teardown is not cut short."""
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    if HELD:
        HELD[-1].append(signum)
        return
    raise Interrupted(signum)


SWALLOWED: list[int] = []  # the signal of an Interrupted that a finalizer dropped, raised again by the SIGALRM below


def raise_again(unraisable) -> None:
    """Python runs a handler where the main thread is: inside a finalizer or a weakref callback (multiprocessing's, the HTTP client's),
    the Interrupted it raised is printed as 'Exception ignored' and dropped, and the script went on, deaf to every later signal (the
    handler ignores them once it has stopped). A timer's SIGALRM raises it again 1 ms later, outside that callback."""
    if issubclass(unraisable.exc_type, Interrupted):
        SWALLOWED[:] = unraisable.exc_value.args[:1]
        signal.setitimer(signal.ITIMER_REAL, 0.001)
    else:
        sys.__unraisablehook__(unraisable)


def interrupt_again(signum, frame):
    if SWALLOWED:  # (a SIGALRM from elsewhere before any stop: nothing to do)
        raise Interrupted(SWALLOWED[0])


def stop_on_signals() -> None:
    """Ctrl-C, kill and a closed terminal raise Interrupted (the data scripts' mains: one line, exit status 128 + the signal)."""
    for signum in STOP_SIGNALS:  # one ignored from the start stays so: under nohup a closed terminal is meant to stop nothing
        signal.getsignal(signum) is signal.SIG_IGN or signal.signal(signum, interrupt)
    sys.unraisablehook = raise_again
    signal.signal(signal.SIGALRM, interrupt_again)


@contextlib.contextmanager
def signals_held():
    """A stop signal that comes inside is raised at its end. (Blocking it in this thread would not hold it: Python runs its handler
    in the main thread whichever thread the kernel gave it to, SentencePiece's trainer threads among them.)"""
    HELD.append([])
    try:
        yield
    finally:
        came = HELD.pop()
    if came:
        raise Interrupted(came[0])


# The tokenizer options of the challenge's published tokenizers (FACTS.md).
TOKENIZER_OPTIONS = dict(
    model_type="bpe", character_coverage=0.999, byte_fallback=True, split_digits=True,
    normalization_rule_name="nmt_nfkc", add_dummy_prefix=False, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
    hard_vocab_limit=False,
)


def write_shard(path: Path, tokens: np.ndarray) -> None:
    with ShardWriter(path) as w:
        w.write(tokens)


class ShardWriter:
    """One shard file, written as tokens arrive; the header's count is filled in at close."""

    def __init__(self, path: Path):
        self.path, self.count = path, 0
        self.f = open(path, "wb")
        self.f.write(np.zeros(HEADER_INTS, dtype="<i4").tobytes())

    def write(self, tokens: np.ndarray) -> None:
        self.f.write(np.asarray(tokens).astype("<u2", copy=False).tobytes())
        self.count += len(tokens)

    def close(self) -> None:
        header = np.zeros(HEADER_INTS, dtype="<i4")
        header[:3] = (SHARD_MAGIC, SHARD_VERSION, self.count)
        self.f.seek(0)
        self.f.write(header.tobytes())
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SplitWriter:
    """<prefix>_<split>_NNNNNN.bin shards of shard_tokens tokens each, the last one shorter."""

    def __init__(self, folder: Path, prefix: str, split: str, shard_tokens: int):
        self.folder, self.prefix, self.split, self.shard_tokens = folder, prefix, split, shard_tokens
        self.files, self.tokens, self.docs, self.current = 0, 0, 0, None

    def add(self, tokens: np.ndarray, docs: int) -> None:
        self.tokens, self.docs = self.tokens + len(tokens), self.docs + docs
        while len(tokens):
            if self.current is None:
                self.current = ShardWriter(self.folder / f"{self.prefix}_{self.split}_{self.files:06d}.bin")
                self.files += 1
            room = self.shard_tokens - self.current.count
            self.current.write(tokens[:room])
            tokens = tokens[room:]
            if self.current.count == self.shard_tokens:
                self.current.close()
                self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


# ---- reading documents, streamed ----

# Compressed input is known by its first bytes, not its name: (magic, codec, a new decompressor with .eof and .unused_data). Each
# stream ends in a marker, so a file cut short is refused (a streaming reader of zstd ends quietly at the cut: hence decompressors).
CODECS = [(b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=31)), (b"BZh", "bzip2", bz2.BZ2Decompressor),
          (b"\xfd7zXZ\x00", "xz", lzma.LZMADecompressor),
          (b"\x28\xb5\x2f\xfd", "zstd", lambda: importlib.import_module("zstandard").ZstdDecompressor().decompressobj())]
# Tables of documents, one a row, known by their first bytes too: Parquet (FineWeb's own files), Arrow IPC as a file, and as a stream
# (what Hugging Face's datasets caches and save_to_disk writes, data-00000-of-00003.arrow).
TABLE_MAGIC = {b"PAR1": "a Parquet file", b"ARROW1": "an Arrow file", b"\xff\xff\xff\xff": "an Arrow file"}
ARROW_STREAM_END = b"\xff\xff\xff\xff\x00\x00\x00\x00"
READ_CHUNK = 1 << 16  # of a compressed file, about 3x as much text: at 1 MiB a read, the exporter and its forked workers held
# about 60 MB more in all (counted once, as PSS; README, Data), at 64 KiB none, at the same speed


def optional_module(name: str, what: str, package: str | None = None):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(f"{what} needs the {package or name} package; install it with `python3 -m pip install {package or name}`") from None


def first_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


def last_bytes(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - n))
        return f.read()


def decompressed_chunks(path: Path):
    """The bytes of a file, decompressed as its first bytes say (gzip, bzip2, xz, zstd; several streams one after another too), in
    chunks; a stream cut short or corrupted is one line that names the file."""
    head = first_bytes(path)
    codec = next((c for c in CODECS if head.startswith(c[0])), None)
    with open(path, "rb") as f:
        chunks = iter(lambda: f.read(READ_CHUNK), b"")
        if codec is None:
            yield from chunks
            return
        _, name, new = codec
        if name == "zstd":  # an optional package: its absence named with the file
            optional_module("zstandard", f"--input {path}: zstd-compressed input")
        inflater = new()
        for chunk in chunks:
            while chunk:
                inflater = new() if inflater.eof else inflater  # the next stream of a concatenation (cat a.gz b.gz)
                with refused(f"--input {path}: not a valid {name} stream"):  # zlib.error, OSError, LZMAError, ZstdError: corrupted
                    out = inflater.decompress(chunk)
                yield out
                chunk = inflater.unused_data if inflater.eof else b""
        if not inflater.eof:
            raise ExportError(f"--input {path}: its {name} stream ends early (a file cut short?)")


def table_kind(path: Path) -> str | None:  # 'a Parquet file', 'an Arrow file' or None (JSON lines or text, compressed or not)
    head = first_bytes(path)
    return next((kind for magic, kind in TABLE_MAGIC.items() if head.startswith(magic)), None)


def jsonl_lines(path: Path, whole=None):
    """(line number, raw bytes) of every non-blank line, through decompressed_chunks (a line may span chunks); whole, a hash, takes
    every byte (the sha256 a source manifest gives for the plain file)."""
    if kind := table_kind(path):
        raise ExportError(f"--input {path}: {kind}, where JSON lines are read (plain, or compressed by gzip, bzip2, xz or zstd)")
    n, parts = 0, []
    for chunk in decompressed_chunks(path):
        if whole is not None:
            whole.update(chunk)
        *done, rest = chunk.split(b"\n")
        for line in done:
            n, line = n + 1, b"".join(parts) + line if parts else line
            parts = []
            if line.strip():
                yield n, line + b"\n"
        parts.append(rest)
    if (last := b"".join(parts)).strip():
        yield n + 1, last


def table_texts(path: Path, field: str = "text"):
    """(row number, text) of a table's text column (FineWeb's Parquet: "text"), read through pyarrow a batch at a time (Arrow: mapped)."""
    kind = table_kind(path)
    pa = optional_module("pyarrow", f"--input {path}: {kind}", "pyarrow")
    reading = lambda: refused(f"--input {path}: not a readable {kind.split(' ', 1)[1]}")  # not a readable Parquet file
    with reading():
        if kind == "a Parquet file":
            opened = f = optional_module("pyarrow.parquet", f"--input {path}: a Parquet file", "pyarrow").ParquetFile(path)
            columns = f.schema_arrow.names
            batches = f.iter_batches(batch_size=1024, columns=[field]) if field in columns else None
        else:  # the map is what holds the file open; a stream cut between batches would read as a shorter one, but for its end marker
            stream = not first_bytes(path).startswith(b"ARROW1")
            if stream and last_bytes(path, len(ARROW_STREAM_END)) != ARROW_STREAM_END:
                raise ExportError(f"--input {path}: its Arrow stream ends early (no end-of-stream marker: a file cut short?)")
            opened = pa.memory_map(str(path))
            f = pa.ipc.open_stream(opened) if stream else pa.ipc.open_file(opened)
            columns = f.schema.names
            batches = (f.get_batch(i) for i in range(f.num_record_batches)) if hasattr(f, "num_record_batches") else iter(f)
    with contextlib.closing(opened):
        if field not in columns:
            raise ExportError(f"--input {path}: no {json.dumps(field)} column (its columns: {', '.join(columns[:8])}; --text-field names another)")
        n = 0
        while True:
            with reading():
                batch = next(batches, None)
            if batch is None:
                return
            column = batch.column(batch.schema.get_field_index(field))
            with reading():  # pyarrow trusts a file's offsets: corrupted ones were a SIGSEGV or a SystemError, so each batch is checked
                try:
                    column.validate(full=True)
                except pa.ArrowInvalid as e:  # text that is not UTF-8 (Latin-1 written as a string, a corrupted page; checked last,
                    if "UTF8" not in str(e):  # after the offsets) is read as bytes, which row_texts decodes, naming the row
                        raise
                    column = column.cast(pa.large_binary())
            yield from row_texts(path, n, column.to_pylist(), field)
            n += batch.num_rows


def row_texts(path: Path, n: int, values: list, field: str):  # (row, text) of values after row n: binary ones as UTF-8; a null refused
    for n, value in enumerate(values, n + 1):
        if isinstance(value, bytes):
            with refused(f"--input {path}: row {n} is not UTF-8", UnicodeDecodeError):
                value = value.decode("utf-8")
        if not isinstance(value, str):
            raise ExportError(f"--input {path}: row {n}: {json.dumps(field)} is {'null' if value is None else type(value).__name__}, not a string")
        yield n, value


@contextlib.contextmanager
def refused(message: str, kinds=Exception):
    """An error of a library reading the input, as one line: the message, then the library's reason."""
    try:
        yield
    except ExportError:
        raise
    except kinds as e:
        raise ExportError(f"{message} ({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None


class NotJSON(ValueError):
    """What json cannot read, as one exception: bytes that are not the encoding's text, text that is not JSON, an integer of more than
    Python's 4,300 digits (a ValueError that is no JSONDecodeError) or nesting deeper than json recurses (a RecursionError, no
    ValueError at all). Its words are the one json or the decoder raised; not_text and too_deep say which kind it was."""


def outside_json(source: Path | bytes, encoding: str = "utf-8"):
    """The JSON value of a file (read here: an OSError passes) or of a line's bytes, made elsewhere. Every reader of outside JSON (the
    exporter's, the downloader's, records/tools.py's) comes through here, as each of six once met one of those exceptions unready."""
    data = source.read_bytes() if isinstance(source, Path) else source
    try:
        return json.loads(data.decode(encoding))
    except (ValueError, RecursionError) as e:
        error = NotJSON(str(e))
        error.not_text, error.too_deep = isinstance(e, UnicodeDecodeError), isinstance(e, RecursionError)
        raise error from None


def document_text(n: int, line: bytes, source: str, field: str = "text") -> str:
    """The text of one JSON line: its object's `field` ("text" in the challenge's documents)."""
    what = f"a JSON object with a {json.dumps(field)} field"
    try:
        obj = outside_json(line, "utf-8-sig")  # -sig: a byte-order mark (a Windows editor's, before line 1) is not JSON, nor text
    except NotJSON as e:
        why = "UTF-8" if e.not_text else what + " (nested too deep to read)" * e.too_deep
        raise ExportError(f"--input {source}: line {n} is not {why}") from None
    if not isinstance(obj, dict) or field not in obj:
        raise ExportError(f"--input {source}: line {n} is not {what}" + (f" (its fields: {', '.join(list(obj)[:8])})"
                                                                         if isinstance(obj, dict) and obj else ""))
    text = obj[field]
    if not isinstance(text, str):
        raise ExportError(f"--input {source}: line {n}: {json.dumps(field)} is not a string")
    try:  # JSON may escape a lone surrogate (\\ud800), which no encoder takes
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ExportError(f"--input {source}: line {n}: {json.dumps(field)} holds a lone surrogate {text[e.start]!r} at character {e.start}, "
                          "which is not UTF-8 text") from None
    return text


# A folder's files by name: a .txt file is one document, a .jsonl one a document a line (each may be compressed), a .parquet or .arrow
# one a document a row; other files are left out (a README.md, datasets' state.json, say), and hidden ones and those in hidden folders.
COMPRESSED_SUFFIX = r"(\.(gz|bz2|xz|zst))?$"  # names only: reading goes by the first bytes
DOCUMENT_FILE = re.compile(r"\.(txt|jsonl)" + COMPRESSED_SUFFIX + r"|\.(parquet|arrow)$")


def file_documents(path: Path, field: str = "text"):
    """(where, text) of each document of one file: a table's rows (Parquet, Arrow: by its first bytes), else JSON lines, compressed or not."""
    if table_kind(path):
        yield from ((f"{path} row {n}", text) for n, text in table_texts(path, field))
    else:
        yield from ((f"{path} line {n}", document_text(n, line, str(path), field)) for n, line in jsonl_lines(path))


def iter_documents(source: Path, field: str = "text"):
    """(where, text) of each document: a folder's files sorted by path (DOCUMENT_FILE), or one file's (file_documents: `field`)."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and DOCUMENT_FILE.search(p.name)
                       and not any(part.startswith(".") for part in p.relative_to(source).parts))  # ._x.txt (a Mac's copy), .git/
        if not files:
            raise ExportError(f"--input {source}: no .txt, .jsonl, .parquet or .arrow files below this folder")
        for p in files:
            if DOCUMENT_FILE.search(p.name)[1] == "txt":
                with refused(f"--input {source}: {p} is not UTF-8", UnicodeDecodeError):
                    text = b"".join(decompressed_chunks(p)).decode("utf-8-sig")
                yield str(p), text
            else:
                yield from file_documents(p, field)
    elif source.is_file():
        yield from file_documents(source, field)
    else:
        raise ExportError(f"--input {source}: no such file or folder (accepted: a folder of .txt, .jsonl, .parquet or .arrow files, or one "
                          ".jsonl, .parquet or .arrow file)")


# ---- encoding on every core, in order, with a bounded number of batches in flight ----

_worker_encoder = None


def _init_worker(encoder) -> None:
    """What encodes: a SentencePiece model's path; None, byte260; a list of characters, char: the i-th is id UNK_ID + 1 + i, through a
    table indexed by code point (any other is UNK_ID), so that a document is encoded as one array, not character by character."""
    global _worker_encoder
    import sentencepiece as spm
    _worker_encoder = spm.SentencePieceProcessor(model_file=encoder) if isinstance(encoder, str) else encoder
    if isinstance(encoder, list):
        _worker_encoder = np.full(sys.maxunicode + 1, UNK_ID, dtype=np.uint16)
        _worker_encoder[[ord(c) for c in encoder]] = np.arange(UNK_ID + 1, UNK_ID + 1 + len(encoder))


def _init_pool_worker(encoder) -> None:
    """A worker leaves the stop signals to the exporter, which closes the pool: each worker printed a KeyboardInterrupt traceback
    of its own, and one that a signal to the process group killed while it held the pool's queue lock made the pool's teardown
    wait forever. It starts with them blocked (see encode_stream), and ignores them before it takes them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _init_worker(encoder)


def _encode_batch(texts: list) -> np.ndarray:
    """BOS + tokens of each document, concatenated. A text given as (n, bytes, source) is a
    raw JSONL line, parsed here so that parsing too runs on every core."""
    texts = [document_text(*t) if isinstance(t, tuple) else t for t in texts]
    if _worker_encoder is None:
        pieces = [np.concatenate(([BOS_ID], np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.uint16) + BYTE_OFFSET)).astype(np.uint16)
                  for t in texts]
    elif isinstance(_worker_encoder, np.ndarray):  # code points, 4 bytes each, through the table
        pieces = [np.concatenate(([BOS_ID], _worker_encoder[np.frombuffer(t.encode("utf-32-le"), dtype="<u4")])).astype(np.uint16) for t in texts]
    else:
        pieces = [np.array([BOS_ID] + ids, dtype=np.uint16) for ids in _worker_encoder.encode(texts)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)


def encode_stream(encoder, batches, workers: int):
    """(tag, tokens, docs) for each (tag, texts) batch, in order; encoder as _init_worker takes it (a Path becomes its string)."""
    encoder = str(encoder) if isinstance(encoder, Path) else encoder
    if workers <= 1:
        _init_worker(encoder)
        for tag, texts in batches:
            yield tag, _encode_batch(texts), len(texts)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    # The workers are forked with the stop signals blocked (the pool's own threads too, which start replacement workers): one
    # that comes while they start waits for their own dispositions, not raising the exporter's Interrupted inside one. The pool
    # is made and ended by close and join with them held (a signal cut Pool() short: its workers lived on, a traceback from one
    # that found the staged tokenizer removed, and the half-made pool's teardown waited forever), on every exit: terminate()
    # sends the SIGTERM the workers ignore.
    pool = None
    try:
        with signals_held():  # a signal that came meanwhile is raised at its end, with the pool made
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                pool = ctx.Pool(workers, initializer=_init_pool_worker, initargs=(encoder,))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        pending = collections.deque()
        for tag, texts in batches:
            pending.append((tag, len(texts), pool.apply_async(_encode_batch, (texts,))))
            if len(pending) >= 2 * workers:
                tag0, n0, job = pending.popleft()
                yield tag0, job.get(), n0
        while pending:
            tag0, n0, job = pending.popleft()
            yield tag0, job.get(), n0
    finally:  # the workers finish the batches queued (at most 2 each) and end
        with signals_held():
            if pool is not None:
                pool.close()
                pool.join()


def batched(tagged, size: int = BATCH_DOCS):
    """Group (tag, item) into (tag, [items]) of at most size, never mixing tags."""
    tag, items = None, []
    for t, item in tagged:
        if items and (t != tag or len(items) == size):
            yield tag, items
            items = []
        tag = t
        items.append(item)
    if items:
        yield tag, items


def check_counts(**counts) -> None:
    """Options that count something (--shard-tokens: a shard of 0 tokens never fills, and the writer looped for ever)."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ExportError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    most = 4 * default_workers()  # --workers 100000 forked thousands of encoders, until the machine ran out of memory
    if (counts.get("workers") or 0) > most:
        raise ExportError(f"--workers {counts['workers']}: accepted 1 to {most} (4 a core here: more encode no faster, and each is a process "
                          "with its own copy of the tokenizer)")


def write_dataset(encoder, tagged_texts, folder: Path, prefix: str, shard_tokens: int, workers: int) -> dict:
    """Shards of each split from (split, text) pairs; each split has its own files, so a split
    change never continues another split's shard. encoder: as encode_stream takes it."""
    writers: dict[str, SplitWriter] = {}
    with contextlib.closing(encode_stream(encoder, batched(tagged_texts), workers)) as stream:  # its workers end here, whatever
        for split, tokens, docs in stream:  # happens (left to the garbage collector, the pool could outlive the exit's own teardown)
            writers.setdefault(split, SplitWriter(folder, prefix, split, shard_tokens)).add(tokens, docs)
    for w in writers.values():
        w.close()
    return {s: {"files": w.files, "tokens": w.tokens, "docs": w.docs} for s, w in writers.items()}


# ---- the tokenizer ----

def train_tokenizer(sentences, vocab_size: int, model_prefix: Path, **overrides) -> None:
    """SentencePiece BPE with the challenge's options; its random generator is seeded so that
    the same input always gives the same tokenizer file, byte for byte (and so the same sha256,
    which an artifact records and EVAL_ONLY compares): the trainer writes its options into the
    file, model_prefix among them, so it runs in the prefix's folder and is given the bare name
    (the export's temporary folder has a random name)."""
    import sentencepiece as spm
    spm.set_random_generator_seed(overrides.pop("seed", 1))
    bad_input, here = [], os.getcwd()

    def guarded():  # an error in the input reaches the trainer as its own failure: keep ours
        try:
            yield from sentences
        except (ExportError, Interrupted) as e:  # a stop signal too: the trainer reported it as "could not train"
            bad_input.append(e)
            raise

    try:
        os.chdir(model_prefix.parent)
        spm.SentencePieceTrainer.train(sentence_iterator=guarded(), model_prefix=model_prefix.name, vocab_size=vocab_size,
                                       minloglevel=2, **TOKENIZER_OPTIONS, **overrides)
    except (RuntimeError, SystemError, ExportError) as e:  # sentencepiece 0.1.99 reports an iterator's error as a SystemError
        if bad_input:
            raise bad_input[0] from None
        raise ExportError(f"SentencePiece could not train a {vocab_size}-piece tokenizer: {str(e).strip().splitlines()[-1]}") from None
    finally:
        os.chdir(here)


def document_lines(docs):
    """Tokenizer training sentences for other corpora: each document's non-blank lines,
    stripped, NUL replaced by a space."""
    return (line.strip() for d in docs for line in d.replace("\x00", " ").splitlines() if line.strip())


def check_json_tokenizer(tokenizer: str, vocab_size: int | None, **options) -> None:
    """--byte260's and --char's vocabularies are not trained by SentencePiece: a vocabulary size (but byte260's 260), or an option that would
    train or choose a tokenizer, is refused."""
    why = "its tokenizer is fixed: 260 ids, nothing to train" if tokenizer == "byte260" else "its vocabulary is the documents' characters"
    given = {"--vocab-size": vocab_size if vocab_size != 260 or tokenizer == "char" else None,
             **{f"--{k.replace('_', '-')}": v for k, v in options.items()}}
    flag, value = next(((f, v) for f, v in given.items() if v is not None), (None, None))
    if flag:
        raise ExportError(f"{flag} {value}: not with --{tokenizer} ({why})")


def json_tokenizer(tokenizer: str, texts=()) -> dict:
    """byte260's tokenizer, or the char tokenizer of these texts: every character (NUL counted as a space, as the challenge counts them),
    most frequent first, ties by code point; the i-th is id UNK_ID + 1 + i."""
    if tokenizer == "byte260":
        return BYTE260
    counts = collections.Counter()
    for text in texts:
        counts.update(text.replace("\x00", " "))
    chars = [c for c, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    if UNK_ID + 1 + len(chars) > 65536:
        raise ExportError(f"--char: the documents hold {len(chars)} distinct characters; a char vocabulary holds at most {65535 - UNK_ID} "
                          "(ids fit uint16)")
    return {"tokenizer_type": "char", "config": {"pad_id": 0, "bos_id": BOS_ID, "eos_id": EOS_ID, "unk_id": UNK_ID, "chars": chars},
            "vocab_size": UNK_ID + 1 + len(chars)}


def json_tokenizer_text(tok: dict) -> str:  # as the challenge writes its JSON tokenizers, so that the same vocabulary is the same bytes
    return json.dumps(tok, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def encoder_of(tok: dict):  # a JSON tokenizer as encode_stream takes it
    return tok["config"]["chars"] if tok["tokenizer_type"] == "char" else None


def tokenizer_names(tokenizer: str, vocab_size: int | None) -> tuple[str, str, str, str]:
    """(what follows fineweb_ or <name>_ in the tokenizer's file name, what follows fineweb10B_ or <name>_ in the dataset's, the
    tokenizer's name and kind in the challenge's manifest)."""
    return {"byte260": ("pure_byte_260", "byte260", "pure_byte_260", "pure_byte"), "char": ("char", "char", "char_utf8", "char")}.get(
        tokenizer, (f"{vocab_size}_bpe", f"sp{vocab_size}", f"sp_bpe_{vocab_size}", "sentencepiece_bpe"))


def check_vocab_size(vocab_size: int) -> None:
    if not 256 + 4 <= vocab_size <= 65536:
        raise ExportError(f"--vocab-size {vocab_size}: accepted 260 to 65536 (256 byte pieces + 4 specials, ids fit uint16)")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def move_into_place(tmp: Path, out: Path, names: list[str]) -> None:
    """Each of tmp/<name> replaces out/<name>, datasets before the tokenizer and manifest."""
    for name in names:
        final = out / name
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp / name, final)


# ---- the challenge's protocol ----

def sidecar_of(jsonl: Path) -> Path:  # docs_selected.jsonl (or .jsonl.gz, ...) -> docs_selected.source_manifest.json
    return jsonl.with_name(re.sub(r"\.jsonl" + COMPRESSED_SUFFIX, "", jsonl.name) + ".source_manifest.json")


SAME_EXPORT = ("num_docs", "num_val_docs", "shard_size")  # what one manifest states for all its datasets


def merged_manifest(path: Path, manifest: dict) -> dict:
    """The manifest at path with this export's tokenizer and dataset in (replacing those of the same name, keeping the others'), as the
    published one lists every variant of one set of documents: sp1024 then byte260 into one --out leaves both listed. A manifest of other
    documents (or split, or shard size), or one that cannot be read, is replaced, and a line on stderr says what it no longer lists."""
    try:
        old = outside_json(path)
    except FileNotFoundError:
        return manifest
    except (OSError, NotJSON) as e:
        print(f"note: {path}: not a readable manifest ({e}); replaced", file=sys.stderr)
        return manifest
    lists = ("tokenizer_specs", "tokenizers", "datasets")
    if not (isinstance(old, dict) and all(isinstance(old.get(k, []), list) for k in lists) and isinstance(old.get("docs_meta"), (dict, type(None)))
            and all(isinstance(e, dict) and isinstance(e.get("name", ""), str) for k in lists for e in old.get(k, []))):  # names: keys below
        print(f"note: {path}: not a manifest (an object with lists of named tokenizers and datasets); replaced", file=sys.stderr)
        return manifest
    old_sha, new_sha = (old.get("docs_meta") or {}).get("sha256"), manifest["docs_meta"]["sha256"]
    differ = [k for k in SAME_EXPORT if old.get(k) != manifest[k]] + (["docs sha256"] if old_sha not in (None, new_sha) else [])
    if differ:
        gone = [d.get("name") for d in old.get("datasets", []) if d.get("name") != manifest["datasets"][0]["name"]]
        print(f"note: {path}: of another export ({', '.join(differ)} differ); replaced, no longer listing: {', '.join(map(str, gone)) or 'none'}"
              " (their files are left in place)", file=sys.stderr)
        return manifest
    merged = {**old, **{k: v for k, v in manifest.items() if k not in lists}}
    for k in lists:
        ours = {e["name"]: e for e in manifest[k]}
        merged[k] = [ours.pop(e.get("name"), e) for e in old.get(k, [])] + list(ours.values())
    return merged


def export_challenge(source: Path, out: Path, vocab_size: int | None, num_val_docs: int | None = None,
                     tokenizer_train_docs: int | None = None, shard_tokens: int = 100_000_000,
                     reuse_tokenizer: Path | None = None, workers: int | None = None, tokenizer: str = "sp") -> dict:
    """The challenge's protocol into out/ (tokenizer, shards, manifest.json merged as merged_manifest says); returns the dataset's entry."""
    import sentencepiece as spm

    if not source.is_file():
        raise ExportError(f"--input {source}: no such file (the challenge's docs_selected.jsonl)")
    sidecar = None
    if sidecar_of(source).is_file():
        try:
            sidecar = outside_json(sidecar_of(source))
        except NotJSON as e:
            raise ExportError(f"{sidecar_of(source)}: not a JSON source manifest ({e})") from None
        if not isinstance(sidecar, dict):
            raise ExportError(f"{sidecar_of(source)}: not a JSON source manifest (a {type(sidecar).__name__}, not an object)")
    if num_val_docs is None:
        num_val_docs = (sidecar or {}).get("docs_val", 50_000)
        if type(num_val_docs) is not int:
            raise ExportError(f"{sidecar_of(source)}: docs_val {num_val_docs!r} is not a count of documents (give --num-val-docs)")
    if num_val_docs < 0:
        raise ExportError(f"--num-val-docs {num_val_docs}: must be at least 0")
    if tokenizer != "sp":
        check_json_tokenizer(tokenizer, vocab_size, reuse_tokenizer=reuse_tokenizer, tokenizer_train_docs=tokenizer_train_docs)
        vocab_size = 260  # char's: its characters', once counted
    elif reuse_tokenizer is not None:
        if not reuse_tokenizer.is_file():
            raise ExportError(f"--reuse-tokenizer {reuse_tokenizer}: no such file")
        try:
            n = spm.SentencePieceProcessor(model_file=str(reuse_tokenizer)).vocab_size()
        except (RuntimeError, OSError):
            raise ExportError(f"--reuse-tokenizer {reuse_tokenizer}: not a SentencePiece model") from None
        if vocab_size is not None and vocab_size != n:
            raise ExportError(f"--vocab-size {vocab_size}: --reuse-tokenizer {reuse_tokenizer} has {n} pieces")
        vocab_size = n
    if vocab_size is None:
        raise ExportError("--vocab-size: required with --challenge (unless --reuse-tokenizer gives it)")
    check_vocab_size(vocab_size)
    out.mkdir(parents=True, exist_ok=True)
    stem, suffix, _, _ = tokenizer_names(tokenizer, vocab_size)
    tok_rel, ds_name = f"tokenizers/fineweb_{stem}", f"fineweb10B_{suffix}"
    tok_files = [f"{tok_rel}.json"] if tokenizer != "sp" else [f"{tok_rel}.model", f"{tok_rel}.vocab"]
    tmp = Path(tempfile.mkdtemp(prefix=".challenge_export_", dir=out))
    try:
        (tmp / "tokenizers").mkdir()
        if tokenizer != "sp":  # char: every document's characters, validation included, as the challenge counts them
            tok_json = json_tokenizer(tokenizer, (document_text(n, line, str(source)) for n, line in jsonl_lines(source)))
            (tmp / tok_files[0]).write_text(json_tokenizer_text(tok_json), encoding="utf-8")
            vocab_size = tok_json["vocab_size"]
        elif reuse_tokenizer is not None:
            shutil.copyfile(reuse_tokenizer, tmp / f"{tok_rel}.model")
            vocab = reuse_tokenizer.with_suffix(".vocab")
            sp = spm.SentencePieceProcessor(model_file=str(reuse_tokenizer))
            (tmp / f"{tok_rel}.vocab").write_text(vocab.read_text(encoding="utf-8") if vocab.is_file() else "".join(
                f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.vocab_size())), encoding="utf-8")
        else:
            def sentences(absolute=source.resolve()):  # read while the trainer runs in the tokenizer's folder
                for i, (n, line) in enumerate(jsonl_lines(absolute)):
                    if tokenizer_train_docs is not None and i >= tokenizer_train_docs:
                        return
                    text = document_text(n, line, str(source)).replace("\x00", " ").strip()
                    if text:
                        yield text
            train_tokenizer(sentences(), vocab_size, tmp / tok_rel)
        digest, whole, count = hashlib.sha256(), hashlib.sha256(), [0]

        def tagged():
            for i, (n, line) in enumerate(jsonl_lines(source, whole)):
                digest.update(line)
                count[0] += 1
                yield ("val" if i < num_val_docs else "train"), (n, line, str(source))

        ds = tmp / "datasets" / ds_name
        ds.mkdir(parents=True)
        encoder = encoder_of(tok_json) if tokenizer != "sp" else tmp / tok_files[0]
        stats = write_dataset(encoder, tagged(), ds, "fineweb", shard_tokens, workers or default_workers())
        num_docs = count[0]
        described = [f"{k} {theirs}, the input {ours}" for k, ours in (("num_docs", num_docs), ("docs_sha256", whole.hexdigest()))
                     if (theirs := (sidecar or {}).get(k)) is not None and theirs != ours]
        if described:  # the manifest would give their sidecar for other documents
            raise ExportError(f"{sidecar_of(source)}: describes other documents than --input {source} ({described[0]}): a partial or "
                              "changed copy? Fetch it again, or move the sidecar away to export these documents as they are")
        if num_docs < num_val_docs:
            raise ExportError(f"--num-val-docs {num_val_docs}: the input has only {num_docs} documents")
        val, train = stats.get("val", {"files": 0, "tokens": 0, "docs": 0}), stats.get("train", {"files": 0, "tokens": 0, "docs": 0})
        *_, tok_name, kind = tokenizer_names(tokenizer, vocab_size)  # vocab_size as read back: SentencePiece's, or char's count
        trained = {"trained_on_docs": tokenizer_train_docs if tokenizer_train_docs is not None else num_docs}
        spec = {"name": tok_name, "kind": kind, "vocab_size": vocab_size, **(
            {"config": BYTE260["config"]} if tokenizer == "byte260" else trained if tokenizer == "char" else {
                **trained, "reused_from": str(reuse_tokenizer) if reuse_tokenizer else None, "options": TOKENIZER_OPTIONS})}
        paths = {"path": tok_files[0]} if tokenizer != "sp" else {"model_path": tok_files[0], "vocab_path": tok_files[1]}
        if tokenizer == "char":  # as the challenge's manifest lists a char tokenizer
            paths.update(pad_id=0, unk_id=UNK_ID, chars=tok_json["config"]["chars"])
        manifest = {
            "version": "10B", "num_docs": num_docs, "num_val_docs": num_val_docs,
            "shuffle_seed": (sidecar or {}).get("shuffle_seed"), "shard_size": shard_tokens, "append_eos": False,
            "docs_meta": {"path": source.name, "sha256": digest.hexdigest(), "num_docs": num_docs, "source_manifest": sidecar},
            "tokenizer_specs": [spec],
            "tokenizers": [{"name": tok_name, "kind": kind, "vocab_size": vocab_size, "bos_id": BOS_ID, "eos_id": EOS_ID,
                            "recommended_bigram_vocab_size": math.ceil(vocab_size / 128) * 128 * 5, **paths}],
            "datasets": [{"name": ds_name, "tokenizer_name": tok_name, "tokenizer_kind": kind,
                          "path": f"datasets/{ds_name}", "train_glob": f"datasets/{ds_name}/fineweb_train_*.bin",
                          "val_glob": f"datasets/{ds_name}/fineweb_val_*.bin", "vocab_size": vocab_size, "bos_id": BOS_ID, "eos_id": EOS_ID,
                          "stats": {"docs_total": num_docs, "docs_val": val["docs"], "docs_train": train["docs"],
                                    "files_total": val["files"] + train["files"], "files_val": val["files"], "files_train": train["files"],
                                    "tokens_total": val["tokens"] + train["tokens"], "tokens_val": val["tokens"],
                                    "tokens_train": train["tokens"]}}],
        }
        manifest = merged_manifest(out / "manifest.json", manifest)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        move_into_place(tmp, out, [f"datasets/{ds_name}", *tok_files, "manifest.json"])
        return next(d for d in manifest["datasets"] if d["name"] == ds_name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- any other corpus ----

def export(train_docs, val_docs, out: Path, name: str, vocab_size: int | None = None, shard_tokens: int = 100_000_000,
           extra: dict | None = None, workers: int = 1, tokenizer_sentences=None, tagged_docs=None, tokenizer: str = "sp") -> Path:
    """Tokenizer + shards + manifest under out/ from lists of documents (or, streamed, from
    `tokenizer_sentences` and `tagged_docs` = (split, text) pairs); returns the dataset folder.
    tokenizer: sp, SentencePiece of vocab_size (default 1024) trained on tokenizer_sentences; byte260, the challenge's pure-byte tokenizer;
    char, the challenge's character-level one, whose characters are counted over tokenizer_sentences (the whole documents, both splits)."""
    import sentencepiece as spm

    if tokenizer != "sp":
        check_json_tokenizer(tokenizer, vocab_size)
    vocab_size = 260 if tokenizer != "sp" else 1024 if vocab_size is None else vocab_size  # char's: its characters', once counted
    check_vocab_size(vocab_size)
    if tagged_docs is None:
        if not train_docs or not val_docs:
            raise ExportError(f"need documents in both splits, got {len(train_docs)} train and {len(val_docs)} val")
        tagged_docs = [("train", d) for d in train_docs] + [("val", d) for d in val_docs]
        tokenizer_sentences = train_docs + val_docs if tokenizer == "char" else document_lines(train_docs)
    out.mkdir(parents=True, exist_ok=True)
    stem, suffix, _, _ = tokenizer_names(tokenizer, vocab_size)
    tok_name, ds_name = f"{name}_{stem}", f"{name}_{suffix}"
    tok_files = [f"tokenizers/{tok_name}.json"] if tokenizer != "sp" else [f"tokenizers/{tok_name}.model", f"tokenizers/{tok_name}.vocab"]
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}_export_", dir=out))
    try:
        (tmp / "tokenizers").mkdir()
        if tokenizer != "sp":
            tok_json = json_tokenizer(tokenizer, tokenizer_sentences)
            (tmp / tok_files[0]).write_text(json_tokenizer_text(tok_json), encoding="utf-8")
            vocab_size, encoder = tok_json["vocab_size"], encoder_of(tok_json)
            entry = {"kind": tok_json["tokenizer_type"], "path": tok_files[0], "config": tok_json["config"]}
        else:
            # num_threads is written into the file too: SentencePiece's own default (16) on every machine, not its core count,
            # so that the same documents give the same tokenizer file everywhere (the pieces do not depend on it)
            train_tokenizer(tokenizer_sentences, vocab_size, tmp / "tokenizers" / tok_name,
                            input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=16)
            vocab_size = spm.SentencePieceProcessor(model_file=str(tmp / tok_files[0])).vocab_size()  # hard_vocab_limit=False: maybe fewer
            entry = {"kind": "sentencepiece", "model_path": tok_files[0], "vocab_path": tok_files[1], "options": TOKENIZER_OPTIONS}
            encoder = tmp / tok_files[0]
        ds = tmp / "datasets" / ds_name
        ds.mkdir(parents=True)
        stats = write_dataset(encoder, tagged_docs, ds, name, shard_tokens, workers)
        tr, va = stats.get("train"), stats.get("val")
        if not tr or not va:
            raise ExportError(f"need documents in both splits, got {(tr or {}).get('docs', 0)} train and {(va or {}).get('docs', 0)} val")
        manifest = {
            "datasets": [{
                "name": ds_name, "tokenizer_name": tok_name, "path": f"datasets/{ds_name}",
                "train_glob": f"datasets/{ds_name}/{name}_train_*.bin", "val_glob": f"datasets/{ds_name}/{name}_val_*.bin",
                "stats": {"files_train": tr["files"], "files_val": va["files"], "tokens_train": tr["tokens"], "tokens_val": va["tokens"],
                          "docs_train": tr["docs"], "docs_val": va["docs"], "shard_tokens": shard_tokens},
                **(extra or {}),
            }],
            "tokenizers": [{"name": tok_name, "vocab_size": vocab_size, **entry}],
        }
        (ds / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        move_into_place(tmp, out, [f"datasets/{ds_name}", *tok_files])
        return out / "datasets" / ds_name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def choose_val_docs(n: int, val_docs: int, seed: int) -> set[int]:
    """Which of n non-empty documents (by their index among them) are held out."""
    if not 0 < val_docs < n:
        raise ExportError(f"--val-docs {val_docs}: accepted 1 to {n - 1} ({n} non-empty documents)")
    return set(random.Random(seed).sample(range(n), val_docs))


def export_corpus(source: Path, out: Path, name: str, vocab_size: int | None, val_docs: int | None, val_fraction: float,
                  shard_tokens: int, seed: int, workers: int | None = None, tokenizer: str = "sp", text_field: str = "text") -> Path:
    """Two streamed passes over the input: count, then tokenizer and shards."""
    n = sum(1 for _, text in iter_documents(source, text_field) if text.strip())
    if n < 2:  # one document held out and one to train on, at the least
        raise ExportError(f"--input {source}: {n} non-empty document{'s' * (n != 1)}; accepted at least 2 (one held out for validation)")
    if val_docs is None:
        if not 0 < val_fraction < 1:
            raise ExportError(f"--val-fraction {val_fraction}: accepted strictly between 0 and 1")
        val_docs = max(1, round(val_fraction * n))
    held = choose_val_docs(n, val_docs, seed)

    def nonempty():  # an absolute path: the tokenizer's sentences are read while its trainer runs in the tokenizer's folder
        return (text for _, text in iter_documents(source.resolve(), text_field) if text.strip())

    sentences = nonempty() if tokenizer == "char" else document_lines(d for i, d in enumerate(nonempty()) if i not in held)
    tagged = (("val" if i in held else "train", d) for i, d in enumerate(nonempty()))
    return export(None, None, out, name, vocab_size, shard_tokens, workers=workers or default_workers(),
                  tokenizer_sentences=sentences, tagged_docs=tagged, tokenizer=tokenizer,
                  extra={"source": str(source), **({"text_field": text_field} if text_field != "text" else {}),
                         "split": {"rule": "whole documents drawn with the seed, file order kept", "seed": seed, "val_docs": val_docs}})


def quoted(text: str) -> str:  # an argument as a refusal quotes it: a pasted file's text stays one short line
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}... ({len(text):,} characters)"


def say(msg: str) -> None:
    """stdout, for a console that may go (`| head`, a tee killed): its loss costs the console, never the work (the data scripts')."""
    try:
        print(msg, flush=True)
    except OSError:  # a reader gone (EPIPE), a terminal closed under a job that outlives it (EIO): what stdout still buffers goes
        for fd in {1, 2 if os.path.sameopenfile(1, 2) else 1}:  # to /dev/null, at exit too (no "Exception ignored"), and stderr
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)  # where it is the same console: the error line of a failure then ends quietly


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", type=Path, required=True, help="docs_selected.jsonl (--challenge; compressed too), or JSON lines, Parquet, or a folder "
                   "of .txt, .jsonl and .parquet files (JSON lines and .txt plain or .gz, .bz2, .xz, .zst)")
    p.add_argument("--challenge", action="store_true", help="the challenge's export protocol (FACTS.md)")
    p.add_argument("--name", help="dataset name for other corpora (letters, digits, _ and -)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output root (default: data/)")
    p.add_argument("--vocab-size", type=int, default=None, help="tokenizer size (default 1024; with --challenge required)")
    p.add_argument("--byte260", action="store_true", help="the challenge's pure-byte tokenizer (byte b is id 4 + b; a JSON file, nothing "
                   "trained) instead of SentencePiece: datasets/<name>_byte260/, or fineweb10B_byte260/ with --challenge")
    p.add_argument("--char", action="store_true", help="the challenge's character-level tokenizer (every character of the documents, most "
                   "frequent first, is id 4, 5, ...; a JSON file): datasets/<name>_char/, or fineweb10B_char/ with --challenge")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default 100,000,000)")
    p.add_argument("--workers", type=int, default=None, help="encoding processes (default: every core)")
    c = p.add_argument_group("--challenge")
    c.add_argument("--num-val-docs", type=int, help="validation documents (default: the sidecar's docs_val, else 50,000)")
    c.add_argument("--tokenizer-train-docs", type=int, help="train the tokenizer on the first N documents only")
    c.add_argument("--reuse-tokenizer", type=Path, help="a SentencePiece .model to use instead of training one")
    o = p.add_argument_group("other corpora")
    o.add_argument("--val-docs", type=int, help="documents held out for validation")
    o.add_argument("--val-fraction", type=float, default=0.05, help="fraction of documents held out (default 0.05)")
    o.add_argument("--seed", type=int, default=1337)
    o.add_argument("--text-field", default="text", help="the JSON field or Parquet column that holds a document (default text; The Stack's: "
                   "content)")
    a = p.parse_args(argv)
    tokenizer = "byte260" if a.byte260 else "char" if a.char else "sp"
    stop_on_signals()
    try:
        if a.byte260 and a.char:
            raise ExportError("--byte260 and --char: two tokenizers; accepted one of them, or neither (SentencePiece)")
        check_counts(shard_tokens=a.shard_tokens, workers=a.workers, tokenizer_train_docs=a.tokenizer_train_docs)
        if a.out.exists() and not a.out.is_dir():  # a file or a device: mkdir's 'File exists' said nothing of --out
            raise ExportError(f"--out {a.out}: not a folder; accepted a folder, made if missing")
        if a.challenge and a.text_field != "text":
            raise ExportError(f"--text-field {a.text_field}: the challenge's documents are in \"text\"; accepted without --challenge")
        if not a.text_field:
            raise ExportError("--text-field '': empty; accepted the name of a JSON field or Parquet column")
        if a.challenge:
            d = export_challenge(a.input, a.out, a.vocab_size, a.num_val_docs, a.tokenizer_train_docs, a.shard_tokens,
                                 a.reuse_tokenizer, a.workers, tokenizer)
            s = d["stats"]
            say(f"wrote {a.out / d['path']}: {s['tokens_train']} train tokens in {s['files_train']} shards, "
                  f"{s['tokens_val']} val tokens in {s['files_val']} shards ({s['docs_val']} of {s['docs_total']} documents held out)")
            return 0
        if a.name is None:
            raise ExportError("--name: missing; a corpus other than the challenge's needs one, for datasets/<name>_*/ (or give --challenge)")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", a.name):  # 200: a longer one failed at the first file, its name too long
            raise ExportError(f"--name {quoted(a.name)}: accepted 1 to 200 letters, digits, _ and - (or give --challenge)")
        folder = export_corpus(a.input, a.out, a.name, a.vocab_size, a.val_docs, a.val_fraction, a.shard_tokens, a.seed, a.workers,
                               tokenizer, a.text_field)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or a.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # the exit status of a process the signal ended, as a shell reads it
        print(f"error: stopped by {signal.Signals(e.args[0]).name}; nothing of this export was written to {a.out} (an earlier export "
              "there is kept); rerun the same command", file=sys.stderr)
        return 128 + e.args[0]
    stats = json.loads((folder / "manifest.json").read_text())["datasets"][0]["stats"]
    say(f"wrote {folder}: {stats['tokens_train']} train tokens in {stats['files_train']} shards, "
          f"{stats['tokens_val']} val tokens in {stats['files_val']} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
