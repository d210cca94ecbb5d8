"""Download the challenge's published FineWeb export from Hugging Face.

    python3 data/cached_challenge_fineweb.py --variant sp1024 [--train-shards 80]

Fills the layout train_gpt.py reads by default:

    data/datasets/fineweb10B_sp1024/fineweb_{train,val}_NNNNNN.bin
    data/tokenizers/fineweb_1024_bpe.model (+ .vocab)
    data/manifest.json

The export lives in the dataset repo willdepueoai/parameter-golf under datasets/ and is
described by its manifest.json (per dataset: shard counts and token counts; per tokenizer:
the model and vocab paths). The full validation split is always fetched; --train-shards
takes a prefix of the training shards (default 80, 100M tokens each). Every downloaded
shard's header is checked before it is kept. `huggingface_hub` is needed only here:
`pip install huggingface_hub`. HF_REPO_ID and HF_REMOTE_ROOT override the source.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO_ID = os.environ.get("HF_REPO_ID", "willdepueoai/parameter-golf")
REMOTE_ROOT = os.environ.get("HF_REMOTE_ROOT", "datasets")
DATA_DIR = Path(__file__).resolve().parent
VARIANTS = {"byte260": "fineweb10B_byte260", "sp512": "fineweb10B_sp512", "sp1024": "fineweb10B_sp1024",
            "sp2048": "fineweb10B_sp2048", "sp4096": "fineweb10B_sp4096"}


class DownloadError(Exception):
    """Printed as one line, exit status 2."""


def hub_fetch(remote_path: str) -> Path:
    """One file of the dataset repo, through the Hugging Face cache."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DownloadError("huggingface_hub is not installed: pip install huggingface_hub") from None
    folder, _, name = remote_path.rpartition("/")
    return Path(hf_hub_download(repo_id=REPO_ID, filename=name, subfolder=folder or None, repo_type="dataset"))


def check_shard(path: Path) -> int:
    """Token count of a shard whose header and size agree (FACTS.md format)."""
    size = path.stat().st_size
    header = np.fromfile(path, dtype="<i4", count=256) if size >= 1024 else np.zeros(3, dtype="<i4")
    if header[0] != 20240520 or header[1] != 1 or size != 1024 + 2 * int(header[2]):
        raise DownloadError(f"{path}: not a valid challenge shard (magic {header[0]}, version {header[1]}, {size} bytes)")
    return int(header[2])


def place(source: Path, destination: Path) -> None:
    """Hard-link (or copy) a cached file into data/, through a temporary name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source.resolve(), tmp)
    except OSError:
        shutil.copyfile(source.resolve(), tmp)
    os.replace(tmp, destination)


def download(variant: str, train_shards: int, fetch=hub_fetch, data_dir: Path = DATA_DIR) -> dict:
    """Fetch manifest, val shards, the first train_shards train shards and the tokenizer.
    `fetch(remote_path) -> local path` is the transport (Hugging Face by default)."""
    if variant not in VARIANTS:
        raise DownloadError(f"--variant {variant}: accepted {', '.join(VARIANTS)}")
    manifest_file = data_dir / "manifest.json"
    place(fetch(f"{REMOTE_ROOT}/manifest.json"), manifest_file)
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    name = VARIANTS[variant]
    entry = next((d for d in manifest.get("datasets", []) if d.get("name") == name), None)
    if entry is None:
        raise DownloadError(f"dataset {name} is not in {REPO_ID}:{REMOTE_ROOT}/manifest.json")
    stats = entry.get("stats") or {}
    n_train, n_val = int(stats.get("files_train", 0)), int(stats.get("files_val", 0))
    if not 0 <= train_shards <= n_train:
        raise DownloadError(f"--train-shards {train_shards}: {name} has {n_train} train shards; accepted 0 to {n_train}")
    tokenizer = next((t for t in manifest.get("tokenizers", []) if t.get("name") == entry.get("tokenizer_name")), None)
    if tokenizer is None:
        raise DownloadError(f"tokenizer {entry.get('tokenizer_name')} of {name} is not in the manifest")
    wanted = [(f"datasets/{name}/fineweb_val_{i:06d}.bin", True) for i in range(n_val)]
    wanted += [(f"datasets/{name}/fineweb_train_{i:06d}.bin", True) for i in range(train_shards)]
    wanted += [(tokenizer[k], False) for k in ("model_path", "vocab_path") if tokenizer.get(k)]
    tokens = {"train": 0, "val": 0}
    for rel, is_shard in wanted:
        destination = data_dir / rel
        if not destination.exists():
            place(fetch(f"{REMOTE_ROOT}/{rel}"), destination)
            print(f"fetched {rel}", flush=True)
        if is_shard:
            try:
                tokens["val" if "_val_" in rel else "train"] += check_shard(destination)
            except DownloadError:
                destination.unlink()  # never keep a broken shard: the next run fetches it again
                raise
    return {"dataset": data_dir / "datasets" / name, "tokens": tokens, "train_shards": train_shards, "val_shards": n_val}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Download the published FineWeb export (challenge format)")
    p.add_argument("--variant", default="sp1024", help=f"one of {', '.join(VARIANTS)} (default sp1024)")
    p.add_argument("--train-shards", type=int, default=80, help="prefix of train shards to fetch (default 80)")
    a = p.parse_args(argv)
    try:
        r = download(a.variant, a.train_shards)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{r['dataset']}: {r['train_shards']} train shards ({r['tokens']['train']} tokens), "
          f"{r['val_shards']} val shards ({r['tokens']['val']} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
