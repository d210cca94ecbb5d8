"""Download the challenge's published FineWeb export from the Hugging Face Hub.

    python3 data/cached_challenge_fineweb.py --variant sp1024 [--train-shards 80]
    python3 data/cached_challenge_fineweb.py --variant sp1024 10        # 10 train shards
    python3 data/cached_challenge_fineweb.py --variant byte260 --skip-manifest --with-docs

The same interface as the challenge's own downloader: `--variant byte260|char|sp<N>` (any
variant the manifest lists; char, which the challenge's data README builds locally, where a mirror of
one's own export holds it: data/export_corpus.py --char), the train shard count as `--train-shards N` or a positional
N (default 80), `--skip-manifest` (use the local data/manifest.json), `--with-docs` (also
fetch docs_selected.jsonl and its source manifest, to re-export with
data/export_corpus.py --challenge). The source is `MATCHED_FINEWEB_REPO_ID` (default
willdepueoai/parameter-golf) under `MATCHED_FINEWEB_REMOTE_ROOT_PREFIX` (default datasets);
`HF_ENDPOINT` and `HF_TOKEN` work as for any Hugging Face client. Fills:

    data/manifest.json
    data/datasets/fineweb10B_<variant>/fineweb_{train,val}_NNNNNN.bin   (every val shard)
    data/tokenizers/...   (as the manifest names them: .model + .vocab, or byte260's or char's .json)
    data/docs_selected.jsonl, data/docs_selected.source_manifest.json  (--with-docs)

What it adds to that interface:
- every file is checked before it is kept: the Hub's advertised sha256 (large files) or git
  blob hash (small files), its size, and for a shard the header (magic, version, count);
- a download goes to NAME.part beside its destination and resumes from there after an
  interruption, in the same run (a few retries) or in the next one;
- a file an earlier Hugging Face client left in its cache is checked and linked instead of
  fetched again, and removed from the cache if it fails the check;
- a file already in place is not fetched again: a second run transfers nothing;
- the Hub's rate limit (429 Too Many Requests; 503 busy) and a passing server error (500, 502, 504) are waited out as its
  Retry-After asks (else 10 s more each time), up to RETRIES times;
- HF_TOKEN goes to the Hub's origin only, never to the CDN (another origin) a large file's signed URL points at;
- one download into a folder at a time: a second (another terminal, a cluster's nodes on one shared disk) waits for
  the first, then finds its files in place;
- every failure is one `error:` line (exit status 2) that says what to do; Ctrl-C, a closed terminal or `kill`
  too (exit status 128 + the signal's number), what was fetched kept for the next run.
`huggingface_hub` is needed only here: `pip install huggingface_hub`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import sys
import time
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_corpus import Interrupted, NotJSON, outside_json, say, stop_on_signals  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_REPO_ID, DEFAULT_REMOTE_ROOT = "willdepueoai/parameter-golf", "datasets"
DOCS_FILES = ("docs_selected.jsonl", "docs_selected.source_manifest.json")
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
CHUNK = 1 << 20
RETRIES = 3  # resumed attempts within one run before giving up (the next run resumes too)
MOST_FILES = 100_000  # a split's file count in a manifest: 10^13 tokens at the published 10^8 a shard (a mirror's 10^12 listed them all)
TRANSIENT = (429, 500, 502, 503, 504)  # answers that a later attempt may not get: limits, a busy or failing server or proxy
LONGEST_WAIT = 300  # seconds: the most a rate limit's Retry-After is waited, each time (the Hub counts requests over 5 minutes)
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}  # this machine's, not the network's


class DownloadError(Exception):
    """Printed as one line, exit status 2."""


def check_shard(path: Path) -> int:
    """Token count of a shard whose header and size agree (FACTS.md format)."""
    size = path.stat().st_size
    header = np.fromfile(path, dtype="<i4", count=256) if size >= 1024 else np.zeros(3, dtype="<i4")
    if header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION or size != 1024 + 2 * int(header[2]):
        raise DownloadError(f"{path}: not a valid challenge shard (magic {header[0]}, version {header[1]}, {size} bytes)")
    return int(header[2])


def etag_kind(etag: str) -> str | None:
    """What the Hub's ETag of a file is: the sha256 of an LFS file, the git blob sha1 of a
    small one, or something we cannot check."""
    if re.fullmatch(r"[0-9a-f]{64}", etag or ""):
        return "sha256"
    if re.fullmatch(r"[0-9a-f]{40}", etag or ""):
        return "git-sha1"
    return None


def file_digest(path: Path, kind: str | None) -> str | None:
    if kind is None:
        return None
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, etag: str, size: int | None, is_shard: bool) -> None:
    """Raise DownloadError unless path has the advertised size, hash and (shards) header."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(f"{path.name}: {actual} bytes where the Hub advertises {size}")
    kind = etag_kind(etag)
    digest = file_digest(path, kind)
    if digest is not None and digest != etag:
        raise DownloadError(f"{path.name}: {kind} {digest[:12]}... does not match the Hub's {etag[:12]}... (corrupted)")
    if is_shard:
        check_shard(path)


class Hub:
    """The dataset repository, through the real huggingface_hub client (its URLs, HEAD
    metadata with redirects, session, token headers and error types)."""

    def __init__(self, repo_id: str, remote_root: str):
        try:
            from huggingface_hub import constants  # reads its HF_* variables now (a lazy import read them mid-download, a traceback)
        except ImportError:
            raise DownloadError("huggingface_hub is not installed: pip install huggingface_hub") from None
        except Exception as e:  # noqa: BLE001 - HF_HUB_ETAG_TIMEOUT=x, say
            raise DownloadError(f"huggingface_hub refused its settings ({type(e).__name__}: {e}); check the HF_* variables") from None
        from huggingface_hub.utils import logging as hub_logging
        hub_logging.set_verbosity_error()  # 0.x logs each of its own retries ('Retrying in 4s [Retry 3/5]'); a failure here is one line
        self.offline = constants.HF_HUB_OFFLINE  # HF_HUB_OFFLINE=1 (a cluster's compute nodes): the files here, nothing fetched
        self.repo_id, self.remote_root = repo_id, remote_root.strip("/")
        self.transferred = 0  # bytes received in this run

    def remote(self, rel: str) -> str:
        return f"{self.remote_root}/{rel}" if self.remote_root else rel

    def explain(self, e: Exception, rel: str) -> DownloadError:
        """One line for anything the network or the Hub can throw."""
        from huggingface_hub import constants
        from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError  # 0.24 to 2.x
        where = f"{self.repo_id}:{self.remote(rel)}"
        if isinstance(e, DownloadError):
            return e
        if isinstance(e, RepositoryNotFoundError):
            return DownloadError(f"dataset repo {self.repo_id} not found at {constants.ENDPOINT} (or it needs a token): "
                                 "check MATCHED_FINEWEB_REPO_ID and HF_TOKEN")
        if isinstance(e, (EntryNotFoundError, RevisionNotFoundError)):
            return DownloadError(f"{where} does not exist: check MATCHED_FINEWEB_REMOTE_ROOT_PREFIX and --variant")
        if isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code == 429:
            return DownloadError(f"{where}: the Hub still limits this machine's requests (HTTP 429, too many requests) after {RETRIES} waits; "
                                 "wait a few minutes and rerun the same command (finished files are kept, a partial one resumes); a token "
                                 "(HF_TOKEN) raises the limit")
        if isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code in (401, 403):  # no later would help
            said = (getattr(e, "server_message", None) or "").strip().split("\n")[0][:160]
            return DownloadError(f"{where}: the Hub refused the request (HTTP {e.response.status_code}{': ' * bool(said)}{said}); check HF_TOKEN "
                                 "(a token that is wrong or expired is refused, even for a public repo; unset, a public repo needs none)")
        if isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code in TRANSIENT:
            return DownloadError(f"{where}: the Hub still answers HTTP {status(e.response.status_code)} after {RETRIES} waits; rerun the "
                                 "same command later (finished files are kept, a partial one resumes)")
        if isinstance(e, HfHubHTTPError) and e.response is not None:  # a mirror's or proxy's 404 has no EntryNotFound code: no later helps
            return DownloadError(f"{where}: {constants.ENDPOINT} answered HTTP {status(e.response.status_code)}; check HF_ENDPOINT, "
                                 "MATCHED_FINEWEB_REPO_ID and MATCHED_FINEWEB_REMOTE_ROOT_PREFIX")
        if isinstance(e, OSError) and e.filename and not str(e.filename).startswith(("http:", "https:")):  # a file here, not the network
            client = str(e.filename).startswith(tuple(str(getattr(constants, k, None) or "\0") for k in ("HF_HOME", "HF_TOKEN_PATH")))
            return DownloadError(f"{e.filename}: {e.strerror or e}" + client * "; a file the Hugging Face client reads (check HF_HOME and "
                                                                                  "HF_TOKEN_PATH)")
        return DownloadError(f"{where}: network error ({first_line(e)}) talking to {constants.ENDPOINT}; check the connection "
                             "or HF_ENDPOINT and rerun the same command (finished files are kept, a partial one resumes)")

    def metadata(self, rel: str):
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        url = hf_hub_url(self.repo_id, self.remote(rel), repo_type="dataset")
        for attempt in range(RETRIES + 1):
            try:
                return get_hf_file_metadata(url)
            except Exception as e:  # noqa: BLE001 - everything becomes one line
                if (wait := self.asked_to_wait(e, attempt, rel)) is None:
                    raise self.explain(e, rel) from None
                time.sleep(wait)

    def asked_to_wait(self, e: Exception, attempt: int, rel: str) -> float | None:
        """Seconds to wait before another attempt where the Hub asked for it (429 too many requests, 503 busy) or failed on its side
        (500, 502, 504: a proxy's or a server's passing failure, which huggingface_hub retries too): its Retry-After in whole seconds,
        else the t= of its RateLimit header (the IETF draft's: `"resolvers";r=0;t=55`, seconds to the window's reset), else 10 s more
        each time; None for any other failure, and after the last attempt."""
        response = getattr(e, "response", None)
        if attempt == RETRIES or getattr(response, "status_code", None) not in TRANSIENT:
            return None
        said = re.fullmatch(r"\s*(\d+)\s*", response.headers.get("Retry-After", "")) or re.search(r";\s*t\s*=\s*(\d+)",
                                                                                                response.headers.get("RateLimit", ""))
        wait = min(float(said[1]) if said else 10.0 * (attempt + 1), LONGEST_WAIT)
        say(f"{self.repo_id}:{self.remote(rel)}: the Hub answered HTTP {status(response.status_code)}; waiting {wait:.0f} s "
            f"{'as it asks' if said else 'before trying again'} ({attempt + 1} of {RETRIES})")
        return wait

    def from_cache(self, rel: str, meta, destination: Path, is_shard: bool) -> bool:
        """Link a file an earlier client cached; a cached file that fails its check is
        removed from the cache (the blob and its snapshot link) so it is fetched anew."""
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(self.repo_id, self.remote(rel), revision=meta.commit_hash, repo_type="dataset")
        if not isinstance(cached, str):
            return False
        pointer = Path(cached)
        try:
            check_file(pointer, meta.etag, meta.size, is_shard)
        except (DownloadError, OSError) as e:
            print(f"removing a bad copy from the Hugging Face cache: {pointer.resolve()} ({e})", file=sys.stderr)
            pointer.resolve().unlink(missing_ok=True)
            pointer.unlink(missing_ok=True)
            return False
        place(pointer, destination)
        say(f"linked {rel} from the Hugging Face cache")
        return True

    def fetch(self, rel: str, destination: Path, is_shard: bool = False, meta=None) -> None:
        """destination <- the repo's file rel, checked; resumes destination.part."""
        meta = meta or self.metadata(rel)
        if etag_kind(meta.etag) is None:  # the Hub's are lowercase hex; another (an MD5, a proxy's own) let any bytes in, unchecked
            from huggingface_hub import constants
            raise DownloadError(f"{self.repo_id}:{self.remote(rel)}: the Hub gave " + (f"the ETag {meta.etag[:80]!r}, neither a sha256 (a large "
                                "file's) nor a git blob sha1 (a small one's)" if meta.etag else "no ETag") + ", so the file cannot be checked; "
                                f"is HF_ENDPOINT={constants.ENDPOINT} a mirror or proxy that rewrites ETags?")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if self.from_cache(rel, meta, destination, is_shard):
            return
        part, tag = destination.with_name(destination.name + ".part"), destination.with_name(destination.name + ".part.etag")
        if part.exists() and (not tag.exists() or tag.read_text() != meta.etag):
            part.unlink()  # a partial download of another version of the file
        tag.write_text(meta.etag)
        for attempt in range(RETRIES + 1):
            try:
                self.transfer(meta, part)
                break
            except Exception as e:  # noqa: BLE001
                if isinstance(e, OSError) and e.errno in DISK_ERRNOS:  # retrying cannot help, and it is no network error
                    raise DownloadError(f"{part}: {e.strerror}; free space (or fix permissions) and rerun the same command (finished "
                                        "files are kept, this one resumes)") from None
                if attempt == RETRIES or isinstance(e, DownloadError):
                    raise self.explain(e, rel) from None
                if (wait := self.asked_to_wait(e, attempt, rel)) is None:  # a rate limit says so itself; a drop or a stall was silent
                    wait, have = 0.5 * (attempt + 1), part.stat().st_size if part.exists() else 0
                    say(f"{self.repo_id}:{self.remote(rel)}: network error ({first_line(e)}); resuming from byte {have:,} in {wait:.1f} s "
                        f"({attempt + 1} of {RETRIES})")
                time.sleep(wait)
        try:
            check_file(part, meta.etag, meta.size, is_shard)
        except DownloadError as e:
            part.unlink(missing_ok=True)
            tag.unlink(missing_ok=True)
            raise DownloadError(f"{e}; the bad download was deleted, rerun the same command to fetch it again") from None
        os.replace(part, destination)
        tag.unlink(missing_ok=True)
        say(f"fetched {rel} ({destination.stat().st_size:,} bytes)")

    def transfer(self, meta, part: Path) -> None:
        """GET the file's bytes onto the end of part, asking only for what is missing."""
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
        have = part.stat().st_size if part.exists() else 0
        if meta.size is not None and have >= meta.size:
            return
        headers = {**build_hf_headers(), "Accept-Encoding": "identity"}  # byte ranges are offsets in the file itself
        if urlsplit(meta.location)[:2] != urlsplit(constants.ENDPOINT)[:2]:  # a large file's signed URL, on a CDN (another origin):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}  # HF_TOKEN is the Hub's, not the CDN's
        if have:
            headers["Range"] = f"bytes={have}-"
        session = get_session()
        if callable(getattr(session, "stream", None)):  # httpx: huggingface_hub 1.0 and later
            request = session.stream("GET", meta.location, headers=headers, follow_redirects=True, timeout=60)
        else:  # requests: huggingface_hub 0.x, which transformers 4 and other packages still pin (its session's .stream is a flag)
            request = session.get(meta.location, headers=headers, stream=True, allow_redirects=True, timeout=60)
        with request as response:
            hf_raise_for_status(response)
            mode = "ab" if have and response.status_code == 206 else "wb"  # 200: the server sent it all again
            raw = response.iter_raw() if hasattr(response, "iter_raw") else response.raw.stream(1 << 16, decode_content=False)
            with open(part, mode) as f:
                for block in raw:  # as it arrives, undecoded: what came before a drop is kept
                    f.write(block)
                    self.transferred += len(block)
                    if meta.size is not None and f.tell() > meta.size:  # a broken mirror or proxy sending without end fills no disk
                        f.close()
                        part.unlink()
                        part.with_name(part.name + ".etag").unlink(missing_ok=True)
                        raise DownloadError(f"{part.name.removesuffix('.part')}: the server sent more than the {meta.size:,} bytes the "
                                            f"repository advertises for it; what came was deleted (a broken mirror or proxy? {self.repo_id})")


def status(code: int) -> str:  # an HTTP status as a person reads it: 502 (bad gateway, a server error)
    try:
        phrase = HTTPStatus(code).phrase.lower()
    except ValueError:
        phrase = "not a status HTTP defines"
    return f"{code} ({phrase}{', a server error' if code >= 500 else ''})"


def first_line(e: Exception) -> str:  # what a network error says, in one line
    return (str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)[:200]


def place(source: Path, destination: Path) -> None:
    """Hard-link (or copy) a cached file into data/, through a temporary name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".linking")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source.resolve(), tmp)
    except OSError:
        shutil.copyfile(source.resolve(), tmp)
    os.replace(tmp, destination)


def shard_names(glob: str, count: int) -> list[str]:
    """The first count files of a manifest glob such as datasets/X/fineweb_train_*.bin."""
    if glob.count("*") != 1:
        raise DownloadError(f"manifest glob {glob!r}: expected exactly one '*'")
    return [glob.replace("*", f"{i:06d}") for i in range(count)]


def inside(rel, what: str) -> str:
    """A path the manifest names, refused unless it stays inside the data folder: a mirror's manifest (MATCHED_FINEWEB_REPO_ID) is
    input like any other, and `data_dir / "/etc/x"` is /etc/x."""
    if not isinstance(rel, str) or not rel or PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
        raise DownloadError(f"the manifest's {what} {rel!r}: not a path inside the data folder; accepted: a relative path without '..'")
    return rel


def plan(manifest: dict, variant: str, train_shards: int) -> tuple[dict, list[tuple[str, bool]]]:
    """The dataset entry and the (path, is_shard) files a variant needs, from the manifest."""
    lists = [manifest.get(k) if isinstance(manifest, dict) else None for k in ("datasets", "tokenizers")]
    if not all(isinstance(v, list) and all(isinstance(e, dict) for e in v) for v in lists):
        raise DownloadError("manifest.json: not a manifest (an object with lists of datasets and tokenizers); delete it and rerun")
    datasets = {d["name"]: d for d in manifest["datasets"] if isinstance(d.get("name"), str)}  # another kind of name is no variant's
    name = f"fineweb10B_{variant}"
    if name not in datasets:
        have = sorted(n.removeprefix("fineweb10B_") for n in datasets if n)
        raise DownloadError(f"--variant {variant}: the manifest has no dataset {name}; it has: {', '.join(have) or 'none'}")
    entry = datasets[name]
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
    n_train, n_val = (stats.get(k, 0) for k in ("files_train", "files_val"))
    if not all(type(n) is int and 0 <= n <= MOST_FILES for n in (n_train, n_val)):
        raise DownloadError(f"the manifest's {name} stats: files_train {n_train!r}, files_val {n_val!r}; accepted: counts of files, 0 to "
                            f"{MOST_FILES:,}")
    if not 0 <= train_shards <= n_train:
        raise DownloadError(f"--train-shards {train_shards}: {name} has {n_train} train shards; accepted 0 to {n_train}")
    tokenizer = next((t for t in manifest["tokenizers"] if t.get("name") == entry.get("tokenizer_name")), None)
    if tokenizer is None:
        raise DownloadError(f"tokenizer {entry.get('tokenizer_name')!r} of {name} is not in the manifest's tokenizers")
    folder = inside(entry.get("path", f"datasets/{name}"), f"{name} path")
    globs = {split: inside(entry.get(f"{split}_glob", f"{folder}/fineweb_{split}_*.bin"), f"{name} {split}_glob") for split in ("val", "train")}
    files = [(p, True) for p in shard_names(globs["val"], n_val)]
    files += [(p, True) for p in shard_names(globs["train"], train_shards)]
    tok_files = [inside(tokenizer[k], f"tokenizer {tokenizer.get('name')!r} {k}") for k in ("model_path", "vocab_path", "path") if tokenizer.get(k)]
    if not tok_files:
        raise DownloadError(f"tokenizer {tokenizer.get('name')!r} names no file (model_path, vocab_path or path)")
    return entry, files + [(p, False) for p in tok_files]


@contextlib.contextmanager
def one_download_at_a_time(data_dir: Path):
    """Two downloads into one folder at once (a second terminal, or every node of a cluster on a shared disk) wrote the same NAME.part
    together, and both failed: one with 'the server sent more than the bytes the repository advertises' (a broken mirror, it said),
    the other with 'No such file or directory; free space or fix permissions'. A lock file in the folder (the OS's lock, released on
    any exit) makes a second wait for the first, saying so, and then find the first's files in place, checked."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".download.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            say(f"waiting for the download into {data_dir} under way (pid {lock.read().strip() or 'unknown'}) to end; what it fetches is "
                "used here, not fetched again")
            fcntl.flock(lock, fcntl.LOCK_EX)  # a signal meanwhile ends the wait (Interrupted), as it ends a download
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def download(variant: str, train_shards: int, data_dir: Path = DATA_DIR, **kw) -> dict:
    with one_download_at_a_time(data_dir):
        return download_unlocked(variant, train_shards, data_dir, **kw)


def download_unlocked(variant: str, train_shards: int, data_dir: Path = DATA_DIR, skip_manifest: bool = False,
                      with_docs: bool = False, repo_id: str | None = None, remote_root: str | None = None) -> dict:
    repo_id = repo_id or os.environ.get("MATCHED_FINEWEB_REPO_ID") or DEFAULT_REPO_ID
    remote_root = os.environ.get("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", DEFAULT_REMOTE_ROOT) if remote_root is None else remote_root
    if not re.fullmatch(r"byte260|char|sp[1-9][0-9]*", variant):
        raise DownloadError(f"--variant {variant!r}: accepted byte260, char or sp<N> (sp1024, sp8192, ...)")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise DownloadError(f"MATCHED_FINEWEB_REPO_ID={repo_id!r}: expected owner/name")
    hub = Hub(repo_id, remote_root)
    say(f"source: {repo_id}:{hub.remote('')} (dataset repo)")
    manifest_file = data_dir / "manifest.json"
    offline = "HF_HUB_OFFLINE=1: offline, " * hub.offline
    if skip_manifest or offline:
        if not manifest_file.is_file():
            raise DownloadError(f"{offline or '--skip-manifest: '}{manifest_file} does not exist; run once without "
                                f"{'HF_HUB_OFFLINE' if offline else '--skip-manifest'} where the network is")
    else:
        meta = hub.metadata("manifest.json")
        if not (manifest_file.is_file() and file_digest(manifest_file, etag_kind(meta.etag)) == meta.etag):
            hub.fetch("manifest.json", manifest_file, meta=meta)
    try:
        manifest = outside_json(manifest_file)
    except (OSError, NotJSON) as e:
        raise DownloadError(f"{manifest_file}: not a readable JSON manifest ({e}); delete it and rerun") from None
    entry, files = plan(manifest, variant, train_shards)
    if with_docs:
        files += [(name, False) for name in DOCS_FILES]
    tokens, fetched = {"train": 0, "val": 0}, 0
    for rel, is_shard in files:
        destination = data_dir / rel
        if destination.is_file():
            try:  # in place means checked when it was placed; a cheap look catches a truncated shard
                if is_shard:
                    check_shard(destination)
            except DownloadError:
                destination.unlink()
        if not destination.is_file() and offline:
            raise DownloadError(f"{offline}{destination} is missing and nothing can be fetched; run the same command without "
                                "HF_HUB_OFFLINE where the network is, then again here")
        if not destination.is_file():
            hub.fetch(rel, destination, is_shard)
            fetched += 1
        if is_shard:
            tokens["val" if "_val_" in Path(rel).name else "train"] += check_shard(destination)
    if with_docs:
        check_docs(data_dir)
    return {"dataset": data_dir / entry.get("path", f"datasets/fineweb10B_{variant}"), "tokens": tokens, "fetched": fetched,
            "bytes": hub.transferred, "train_shards": train_shards, "val_shards": sum("_val_" in Path(p).name for p, _ in files)}


def check_docs(data_dir: Path) -> None:
    """docs_selected.jsonl against the sha256 its source manifest records."""
    try:
        sidecar = outside_json(data_dir / DOCS_FILES[1])
    except NotJSON:
        sidecar = None  # refused below, with the other shapes
    want = sidecar.get("docs_sha256") if isinstance(sidecar, dict) else None
    if not isinstance(sidecar, dict) or not isinstance(want, (str, type(None))):
        raise DownloadError(f"{DOCS_FILES[1]}: not a source manifest (a JSON object with docs_sha256) as the repository serves it")
    if want and file_digest(data_dir / DOCS_FILES[0], "sha256") != want:
        (data_dir / DOCS_FILES[0]).unlink()
        raise DownloadError(f"{DOCS_FILES[0]}: sha256 differs from docs_sha256 in {DOCS_FILES[1]}; deleted, rerun to fetch it again")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Download the challenge's published FineWeb export (checked, resumable)")
    p.add_argument("train_shards_positional", nargs="?", type=int, metavar="TRAIN_SHARDS", help="alias of --train-shards")
    p.add_argument("--variant", default="sp1024", help="byte260, char or sp<N>, as the manifest lists them (default sp1024)")
    p.add_argument("--train-shards", type=int, default=None, help="prefix of train shards to fetch (default 80)")
    p.add_argument("--skip-manifest", action="store_true", help="use the local data/manifest.json instead of fetching it")
    p.add_argument("--with-docs", action="store_true", help="also fetch docs_selected.jsonl and its source manifest")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where to put everything (default: this folder)")
    a = p.parse_args(argv)
    if a.train_shards is not None and a.train_shards_positional is not None and a.train_shards != a.train_shards_positional:
        p.error("give the train shard count once (positional or --train-shards)")
    shards = next((n for n in (a.train_shards, a.train_shards_positional) if n is not None), 80)
    if shards < 0:  # refused before the network is asked anything (the manifest bounds it from above)
        print(f"error: --train-shards {shards}: accepted 0 or more (0: the validation split alone)", file=sys.stderr)
        return 2
    stop_on_signals()  # Ctrl-C, kill, a closed terminal: the same line (kill was silent)
    try:
        r = download(a.variant, shards, a.data_dir, skip_manifest=a.skip_manifest, with_docs=a.with_docs)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # what arrived so far is kept in NAME.part; exit 128 + n, as a process the signal ended
        print(f"error: stopped by {signal.Signals(e.args[0]).name}; what was fetched is kept, rerun the same command to resume", file=sys.stderr)
        return 128 + e.args[0]
    except OSError as e:
        print(f"error: {e.filename or a.data_dir}: {e.strerror or e}; free space or fix permissions and rerun", file=sys.stderr)
        return 2
    say(f"{r['dataset']}: {r['train_shards']} train shards ({r['tokens']['train']:,} tokens), {r['val_shards']} val shards "
          f"({r['tokens']['val']:,} tokens); {r['fetched']} files fetched this run, {r['bytes']:,} bytes transferred")
    return 0


if __name__ == "__main__":
    sys.exit(main())
