"""DATA: data/cached_challenge_fineweb.py as a real process, with the real huggingface_hub
client, against a local Hub on 127.0.0.1 (tests/hub_server.py) serving the published layout:
variants, byte260, docs, a corrupted file, a server that dies mid-download, reruns."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_with_closed_console, run_with_closed_terminal, small_disk
from export_corpus import write_shard

pytest.importorskip("huggingface_hub")
from hub_server import LocalHub  # noqa: E402

REPO = "someone/parameter-golf-mirror"
CLI = [sys.executable, str(ROOT / "data" / "cached_challenge_fineweb.py")]


def published_tree(root):
    """A dataset repo in the published layout under root/datasets: sp1024 (3 train shards of
    6,000 tokens, 1 val), sp8192 (2 train, 1 val), byte260 with its JSON tokenizer, docs."""
    base = root / "datasets"
    rng = np.random.default_rng(0)
    datasets, tokenizers = [], []
    for variant, vocab, n_train in (("sp1024", 1024, 3), ("sp8192", 8192, 2), ("byte260", 260, 1)):
        name = f"fineweb10B_{variant}"
        (base / "datasets" / name).mkdir(parents=True)
        for split, n in (("val", 1), ("train", n_train)):
            for i in range(n):
                write_shard(base / f"datasets/{name}/fineweb_{split}_{i:06d}.bin", rng.integers(0, vocab, 6000 + i).astype(np.uint16))
        tok = {"name": f"tok_{variant}", "kind": "sentencepiece" if variant != "byte260" else "byte", "vocab_size": vocab}
        if variant == "byte260":
            tok["path"] = "tokenizers/fineweb_pure_byte_260.json"
        else:
            tok["model_path"], tok["vocab_path"] = f"tokenizers/fineweb_{vocab}_bpe.model", f"tokenizers/fineweb_{vocab}_bpe.vocab"
        tokenizers.append(tok)
        datasets.append({"name": name, "tokenizer_name": tok["name"], "path": f"datasets/{name}",
                         "train_glob": f"datasets/{name}/fineweb_train_*.bin", "val_glob": f"datasets/{name}/fineweb_val_*.bin",
                         "stats": {"files_train": n_train, "files_val": 1}})
    (base / "tokenizers").mkdir()
    for vocab in (1024, 8192):
        (base / f"tokenizers/fineweb_{vocab}_bpe.model").write_bytes(bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))
        (base / f"tokenizers/fineweb_{vocab}_bpe.vocab").write_text(f"<unk>\t0\nvocab {vocab}\n")
    (base / "tokenizers/fineweb_pure_byte_260.json").write_text(json.dumps({"tokenizer_type": "pure_byte", "config": {  # as published
        "pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3, "byte_offset": 4, "byte_count": 256}, "vocab_size": 260}))
    docs = "".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(300)).encode()
    (base / "docs_selected.jsonl").write_bytes(docs)
    (base / "docs_selected.source_manifest.json").write_text(json.dumps(
        {"num_docs": 300, "docs_val": 30, "docs_sha256": hashlib.sha256(docs).hexdigest(), "shuffle_seed": 1}))
    (base / "manifest.json").write_text(json.dumps({"version": "10B", "datasets": datasets, "tokenizers": tokenizers}))
    return base


# The last 0.x client. transformers 4 and other packages pin huggingface_hub below 1.0, so many participants' machines have it, and it
# speaks requests where 1.0 and later speak httpx: the downloader took its session for httpx's and failed every file as a network error.
OLD_CLIENT = "0.36.2"


@pytest.fixture(params=["installed", OLD_CLIENT, "python3.9"])
def python(request) -> str:
    """The downloader's interpreter: this one (its huggingface_hub, the newest), one with the last 0.x client, and Python 3.9, the
    system python3 of RHEL 9 (the challenge's README runs the downloader with `python3`; train_gpt.py needs 3.10)."""
    if request.param == "python3.9":
        return request.getfixturevalue("python39_with")("numpy", "huggingface_hub")
    return sys.executable if request.param == "installed" else request.getfixturevalue("interpreter_with")(f"huggingface_hub=={OLD_CLIENT}")


@pytest.fixture
def hub(tmp_path):
    published_tree(tmp_path / "remote")
    server = LocalHub(tmp_path / "remote", REPO)
    yield server
    server.stop()


def downloader(hub_or_endpoint, tmp_path, *args, python=sys.executable, **env) -> tuple[list[str], dict]:
    """The downloader's command and environment, against the local Hub (or any endpoint)."""
    endpoint = hub_or_endpoint if isinstance(hub_or_endpoint, str) else hub_or_endpoint.endpoint
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MATCHED_FINEWEB_"))}
    e.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    e.update({"MATCHED_FINEWEB_REPO_ID": REPO, **env})
    return [python, *CLI[1:], "--data-dir", str(tmp_path / "data"), *args], e


def run(hub_or_endpoint, tmp_path, *args, python=sys.executable, closed_console=None, **env):
    cmd, e = downloader(hub_or_endpoint, tmp_path, *args, python=python, **env)
    if closed_console:  # "pipe" or "terminal"
        return {"pipe": run_with_closed_console, "terminal": run_with_closed_terminal}[closed_console](cmd, env=e, timeout=120)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=120)


def test_fetches_a_variant_checks_it_and_a_rerun_transfers_nothing(hub, tmp_path, python):
    r = run(hub, tmp_path, "--variant", "sp1024", "2", python=python)  # positional shard count
    assert r.returncode == 0, r.stderr
    data = tmp_path / "data"
    got = sorted(p.name for p in (data / "datasets/fineweb10B_sp1024").iterdir())
    assert got == ["fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    for rel in ("datasets/fineweb10B_sp1024/fineweb_train_000001.bin", "tokenizers/fineweb_1024_bpe.model", "manifest.json"):
        assert (data / rel).read_bytes() == (tmp_path / "remote/datasets" / rel).read_bytes()
    assert "12,001 tokens" in r.stdout and "6,000 tokens" in r.stdout
    assert any(p.startswith("/blob/") for p in hub.gets())  # shards came through the CDN redirect, as from the Hub
    before = len(hub.requests)
    again = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "2", python=python)
    assert again.returncode == 0, again.stderr
    assert "0 files fetched this run, 0 bytes transferred" in again.stdout
    assert [m for m, *_ in hub.requests[before:]] == ["HEAD"]  # only the manifest's metadata was asked for
    offline = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "2", "--skip-manifest", python=python)
    assert offline.returncode == 0 and len(hub.requests) == before + 1  # --skip-manifest: no request at all


@pytest.mark.parametrize("console", ["pipe", "terminal"])
def test_a_console_that_closes_costs_the_download_nothing(hub, tmp_path, console):
    """`... | head -3`, or a tee killed: the first progress line found no reader and the download ended with
    `error: <data dir>: Broken pipe; free space or fix permissions` (neither was the cause); now every file comes. The same for
    a terminal closed under a download that `setsid` or `disown` kept alive (EIO; it ended with a traceback there, exit 1)."""
    r = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "2", closed_console=console)
    assert r.returncode == 0 and (r.stderr or "") == "", r.stderr
    shards = tmp_path / "data/datasets/fineweb10B_sp1024"
    assert sorted(p.name for p in shards.iterdir()) == ["fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]


def test_hf_token_goes_to_the_hub_and_never_to_the_cdn_a_large_file_is_sent_from(hub, tmp_path, python):
    """A large file's metadata comes from the Hub, its bytes from a signed URL on another origin (a CDN, or wherever a mirror's
    Hub redirects). The transfer sent HF_TOKEN there too: anyone a mirror pointed its files at got the participant's token.
    Now the token goes to the Hub's origin alone, which a private repo's small files (the manifest) still get with it."""
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python, HF_TOKEN="hf_not_for_the_cdn")
    assert r.returncode == 0, r.stderr
    assert {origin for origin, _, _ in hub.tokens} == {hub.endpoint}, hub.tokens
    assert any(method == "GET" and path.endswith("/manifest.json") for _, method, path in hub.tokens), hub.tokens
    assert any(path.startswith("/blob/") for _, path, _ in hub.requests)  # the CDN was asked, without the token


def test_a_token_the_hub_refuses_is_one_line_that_names_hf_token(hub, tmp_path, python):
    """A wrong or expired HF_TOKEN is refused by the Hub (401) even for a public repo; the run said `the Hub answered HTTP 401;
    try again later`, which no later mends. Now the line says what the Hub said and to check HF_TOKEN; unset, the run fetches."""
    hub.refused_tokens.add("hf_expired")
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python, HF_TOKEN="hf_expired")
    assert r.returncode == 2 and r.stderr == (f"error: {REPO}:datasets/manifest.json: the Hub refused the request (HTTP 401: Invalid credentials "
                                              "in Authorization header); check HF_TOKEN (a token that is wrong or expired is refused, even for "
                                              "a public repo; unset, a public repo needs none)\n"), r.stderr
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 0, r.stderr


def test_a_hugging_face_home_that_cannot_be_read_is_named_not_called_a_network_error(hub, tmp_path):
    """HF_HOME under a regular file (a typo, a stale setting): the client's own files (the token) cannot be read, and the run said
    `network error ([Errno 20] Not a directory: '.../token')`, sending the participant to check the connection."""
    (tmp_path / "afile").write_text("")
    r = run(hub, tmp_path, "--variant", "sp1024", "1", HF_HOME=str(tmp_path / "afile" / "home"))
    assert r.returncode == 2 and r.stderr == (f"error: {tmp_path / 'afile' / 'home' / 'token'}: Not a directory; a file the Hugging Face "
                                              "client reads (check HF_HOME and HF_TOKEN_PATH)\n"), r.stderr


def test_offline_mode_uses_the_files_here_and_names_a_missing_one(hub, tmp_path):
    """HF_HUB_OFFLINE=1, as a cluster sets it on compute nodes whose data came from the login node: the rerun asked the Hub for the
    manifest and stopped with a network error, everything being here; now it checks the files here and fetches nothing, and a
    missing one is named in one line. A bad HF_* value of the library's own was a traceback from inside it; now one line."""
    assert run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "1").returncode == 0
    before = len(hub.requests)
    r = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "1", HF_HUB_OFFLINE="1")
    assert r.returncode == 0 and "0 files fetched this run" in r.stdout and len(hub.requests) == before, r.stderr
    shard = tmp_path / "data/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    shard.unlink()
    r = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "1", HF_HUB_OFFLINE="1")
    assert r.returncode == 2 and r.stderr == (f"error: HF_HUB_OFFLINE=1: offline, {shard} is missing and nothing can be fetched; run the "
                                              "same command without HF_HUB_OFFLINE where the network is, then again here\n")
    assert len(hub.requests) == before
    r = run(hub, tmp_path / "elsewhere", "--variant", "sp1024", HF_HUB_OFFLINE="1")
    assert r.returncode == 2 and r.stderr.endswith("manifest.json does not exist; run once without HF_HUB_OFFLINE where the network is\n")
    r = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "1", HF_HUB_ETAG_TIMEOUT="x")
    assert r.returncode == 2 and r.stderr == ("error: huggingface_hub refused its settings (ValueError: invalid literal for int() with base "
                                              "10: 'x'); check the HF_* variables\n"), r.stderr


def test_any_variant_the_manifest_has_byte260_and_docs(hub, tmp_path):
    r = run(hub, tmp_path, "--variant", "sp8192", "--train-shards", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data/tokenizers/fineweb_8192_bpe.vocab").exists()
    r = run(hub, tmp_path, "--variant", "byte260", "--train-shards", "1", "--with-docs")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "data"
    assert json.loads((data / "tokenizers/fineweb_pure_byte_260.json").read_text())["tokenizer_type"] == "pure_byte"
    import train_gpt  # what it fetched is what train_gpt.py trains on with VOCAB_SIZE=260
    val, _, _, kind = train_gpt.load_eval_data(str(data / "datasets/fineweb10B_byte260"), str(data / "tokenizers/fineweb_pure_byte_260.json"),
                                               260, 64, "cpu")
    assert kind == "pure_byte" and val.numel() == 6000
    assert (data / "docs_selected.jsonl").read_bytes() == (tmp_path / "remote/datasets/docs_selected.jsonl").read_bytes()
    assert json.loads((data / "docs_selected.source_manifest.json").read_text())["docs_val"] == 30
    bad = run(hub, tmp_path, "--variant", "sp4096")
    assert bad.returncode == 2 and bad.stderr.strip() == \
        "error: --variant sp4096: the manifest has no dataset fineweb10B_sp4096; it has: byte260, sp1024, sp8192"
    bad = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "9")
    assert bad.returncode == 2 and "--train-shards 9: fineweb10B_sp1024 has 3 train shards; accepted 0 to 3" in bad.stderr
    asked = len(hub.requests)  # a negative count is refused before the Hub is asked anything
    bad = run(hub, tmp_path, "--variant", "sp1024", "-1")
    assert bad.returncode == 2 and bad.stderr == "error: --train-shards -1: accepted 0 or more (0: the validation split alone)\n"
    assert len(hub.requests) == asked


def test_an_export_of_ones_own_with_char_and_sp_is_fetched_by_its_variant(tmp_path):
    """The challenge's data README builds its char variant locally, but a mirror of one's own export may hold it: an export
    that data/export_corpus.py --challenge made, sp and char into one manifest, served under MATCHED_FINEWEB_REPO_ID, fetched with
    --variant char: the same files, which train_gpt.py reads with the manifest's vocabulary."""
    from conftest import synthetic_documents

    import train_gpt

    docs = synthetic_documents(60, seed=9) + ["déjà vu — 中文 😀"]
    src = tmp_path / "docs/docs_selected.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    remote = tmp_path / "remote/datasets"
    for variant in (["--vocab-size", "512"], ["--char"]):
        r = subprocess.run([sys.executable, str(ROOT / "data/export_corpus.py"), "--input", str(src), "--challenge", "--num-val-docs", "6",
                            "--shard-tokens", "4000", "--out", str(remote), *variant], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    server = LocalHub(tmp_path / "remote", REPO)
    try:
        r = run(server, tmp_path, "--variant", "char", "--train-shards", "2")
    finally:
        server.stop()
    assert r.returncode == 0, r.stderr
    data = tmp_path / "data"
    fetched = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file() and p.name != ".download.lock")
    shards = {split: sorted(p.relative_to(remote).as_posix() for p in (remote / "datasets/fineweb10B_char").glob(f"*_{split}_*.bin"))
              for split in ("val", "train")}
    assert len(shards["train"]) > 2 and fetched == sorted(["manifest.json", "tokenizers/fineweb_char.json", *shards["val"], *shards["train"][:2]])
    assert all((data / f).read_bytes() == (remote / f).read_bytes() for f in fetched)
    vocab = next(t for t in json.loads((data / "manifest.json").read_text())["tokenizers"] if t["kind"] == "char")["vocab_size"]
    val, token_bytes, _, kind = train_gpt.load_eval_data(str(data / "datasets/fineweb10B_char"), str(data / "tokenizers/fineweb_char.json"),
                                                         vocab, 64, "cpu")
    assert kind == "char" and int(token_bytes.sum()) == sum(len(d.encode()) for d in docs[:6])


def test_repo_and_root_come_from_the_matched_fineweb_variables(hub, tmp_path):
    r = run(hub, tmp_path, "--variant", "sp1024", "1", MATCHED_FINEWEB_REPO_ID="nobody/elsewhere")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "dataset repo nobody/elsewhere not found" in r.stderr and "MATCHED_FINEWEB_REPO_ID" in r.stderr
    assert all(REPO not in p for _, p, _ in hub.requests)  # never fell back to another repository
    r = run(hub, tmp_path, "--variant", "sp1024", "1", MATCHED_FINEWEB_REMOTE_ROOT_PREFIX="exports")
    assert r.returncode == 2 and f"{REPO}:exports/manifest.json does not exist" in r.stderr
    # The remote root is the folder the published layout sits in: the same tree one level up works.
    r = run(hub, tmp_path, "--variant", "sp1024", "1", MATCHED_FINEWEB_REMOTE_ROOT_PREFIX="")
    assert r.returncode == 2 and f"{REPO}:manifest.json does not exist" in r.stderr


def test_a_flipped_bit_is_caught_deleted_and_fetched_again(hub, tmp_path):
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    hub.corrupt.add(rel)  # header intact, size right: only the hash can tell
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "fineweb_train_000000.bin.part: sha256" in r.stderr and "corrupted" in r.stderr and "rerun" in r.stderr
    shard_dir = tmp_path / "data/datasets/fineweb10B_sp1024"
    assert not (shard_dir / "fineweb_train_000000.bin").exists() and not list(shard_dir.glob("*.part*"))
    hub.corrupt.clear()
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 0, r.stderr
    assert (shard_dir / "fineweb_train_000000.bin").read_bytes() == (tmp_path / "remote" / rel).read_bytes()


@pytest.mark.parametrize("rel", ["datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin", "datasets/tokenizers/fineweb_1024_bpe.vocab"],
                         ids=["large", "small"])
@pytest.mark.parametrize("etag", ['"d41d8cd98f00b204e9800998ecf8427e"', '"abc"', '"' + "A" * 64 + '"', '""'], ids=["md5", "short", "upper", "empty"])
def test_an_etag_that_is_no_hash_we_can_check_is_refused_before_any_byte(hub, tmp_path, rel, etag):
    """A mirror or proxy that rewrites the Hub's ETags (an S3 bucket's MD5, an id of its own): the file was fetched and kept
    with its size the only check, so flipped bits in a shard's tokens were kept (2026-12-07, a local Hub with mangled headers);
    one that gave none was refused. Now each is one line, before any byte of that file, with nothing of it left."""
    hub.etags[rel], hub.corrupt = etag, {rel}
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    said = "no ETag" if etag == '""' else f"the ETag {etag.strip(chr(34))!r}, neither a sha256"
    assert r.stderr.startswith(f"error: {REPO}:{rel}: the Hub gave {said}") and "cannot be checked; is HF_ENDPOINT=" in r.stderr, r.stderr
    name = rel.rsplit("/", 1)[1]
    assert not list((tmp_path / "data").rglob(f"{name}*")) and not [p for p in hub.gets() if p.endswith(name) or p.startswith("/blob/") and
                                                                     "train" in rel and hub.by_sha(p[6:]) == rel]


def test_a_bad_copy_in_the_hugging_face_cache_is_removed_and_fetched_again(hub, tmp_path):
    """An earlier client (hf_hub_download, as the public downloader uses) cached a shard that
    was later damaged on disk: it is found, refused, removed from the cache, and fetched."""
    rel = "datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    code = (f"from huggingface_hub import hf_hub_download; print(hf_hub_download({REPO!r}, {rel!r}, subfolder='datasets', "
            "repo_type='dataset'))")
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_XET": "1"}
    cached = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
    blob = os.path.realpath(cached)
    data = bytearray(open(blob, "rb").read())
    data[3000] ^= 1
    os.chmod(blob, 0o644)
    open(blob, "wb").write(bytes(data))
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 0, r.stderr
    assert "removing a bad copy from the Hugging Face cache" in r.stderr
    assert not os.path.exists(blob) and not os.path.lexists(cached)
    assert (tmp_path / "data" / rel).read_bytes() == (tmp_path / "remote/datasets" / rel).read_bytes()
    # A good cached copy is linked, not transferred.
    subprocess.run([sys.executable, "-c", code.replace("000000", "000001")], env=env, capture_output=True, check=True)
    before = len(hub.gets("/blob/" + hashlib.sha256((tmp_path / "remote/datasets" / rel.replace("000000", "000001")).read_bytes()).hexdigest()))
    r = run(hub, tmp_path, "--variant", "sp1024", "2")
    assert r.returncode == 0 and "linked datasets/fineweb10B_sp1024/fineweb_train_000001.bin from the Hugging Face cache" in r.stdout
    assert len(hub.gets("/blob/" + hashlib.sha256((tmp_path / "remote/datasets" / rel.replace("000000", "000001")).read_bytes()).hexdigest())) == before


def test_a_server_that_dies_mid_download_leaves_a_part_that_the_next_run_resumes(hub, tmp_path, python):
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_val_000000.bin"
    size = (tmp_path / "remote" / rel).stat().st_size
    hub.die_after[rel] = 5000
    r = run(hub, tmp_path, "--variant", "sp1024", "0", python=python)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "network error" in r.stderr and "rerun the same command" in r.stderr
    part = tmp_path / "data/datasets/fineweb10B_sp1024/fineweb_val_000000.bin.part"
    assert part.stat().st_size == 5000
    assert not (tmp_path / "data/datasets/fineweb10B_sp1024/fineweb_val_000000.bin").exists()
    revived = LocalHub(tmp_path / "remote", REPO)
    try:
        r = run(revived, tmp_path, "--variant", "sp1024", "0", python=python)
        assert r.returncode == 0, r.stderr
        sha = hashlib.sha256((tmp_path / "remote" / rel).read_bytes()).hexdigest()
        ranges = [rng for m, p, rng in revived.requests if m == "GET" and p == f"/blob/{sha}"]
        assert ranges == ["bytes=5000-"]  # only the missing bytes were asked for
        model = sum((tmp_path / "remote/datasets/tokenizers" / f"fineweb_1024_bpe.{x}").stat().st_size for x in ("model", "vocab"))
        assert f"{size - 5000 + model:,} bytes transferred" in r.stdout  # the rest of the shard, then the tokenizer
        assert (tmp_path / "data" / rel[len("datasets/"):]).read_bytes() == (tmp_path / "remote" / rel).read_bytes()
        assert not part.exists()
    finally:
        revived.stop()


@pytest.mark.parametrize("target, signum", [("group", signal.SIGINT), ("downloader", signal.SIGTERM)], ids=["ctrl_c", "kill"])
def test_a_signal_mid_file_is_one_line_and_the_next_run_resumes_from_what_arrived(hub, tmp_path, target, signum):
    """A transfer that hangs, stopped by Ctrl-C or `kill`: one line, exit status 128 + the signal's number, the bytes that
    arrived kept as .part, and the next run asks only for the rest. Before, `kill` ended it without a word."""
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_val_000000.bin"
    hub.stall_after[rel] = 5000
    cmd, env = downloader(hub, tmp_path, "--variant", "sp1024", "0")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    part = tmp_path / "data/datasets/fineweb10B_sp1024/fineweb_val_000000.bin.part"
    for _ in range(600):
        if part.exists() and part.stat().st_size == 5000:
            break
        time.sleep(0.05)
    (os.killpg if target == "group" else os.kill)(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum and err == (f"error: stopped by {signal.Signals(signum).name}; what was fetched is kept, "
                                                        "rerun the same command to resume\n"), err
    assert part.stat().st_size == 5000
    del hub.stall_after[rel]
    r = run(hub, tmp_path, "--variant", "sp1024", "0")
    assert r.returncode == 0, r.stderr
    sha = hashlib.sha256((tmp_path / "remote" / rel).read_bytes()).hexdigest()
    assert [rng for m, p, rng in hub.requests if m == "GET" and p == f"/blob/{sha}"] == [None, "bytes=5000-"]
    assert (tmp_path / "data" / rel[len("datasets/"):]).read_bytes() == (tmp_path / "remote" / rel).read_bytes() and not part.exists()


SIGNAL_IN_A_CALLBACK = """
import os, runpy, signal, sys, weakref
class Cached: pass
def audit(event, args, fired=[]):  # as the downloader opens its first .part file, a weakref callback runs and the signal comes inside it
    if event == "open" and str(args[0]).endswith(".part") and not fired:
        fired.append(1)
        def callback(ref):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10 ** 5): pass
        cached = Cached()
        ref = weakref.ref(cached, callback)
        del cached
sys.addaudithook(audit)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_signal_inside_a_librarys_callback_still_stops_the_download(hub, tmp_path):
    """Python runs a signal's handler where the main thread is; inside a finalizer or a weakref callback (multiprocessing's and the
    HTTP clients' run such code) the exception it raised is printed as 'Exception ignored' and dropped: the download went on to its
    end, exit 0, and ignored every later signal (the handler ignores them once it has stopped). The stop is raised again a moment
    later, outside the callback: its one line, exit status 130. (The callback runs from an audit hook, from outside the script.)"""
    cmd, env = downloader(hub, tmp_path, "--variant", "sp1024", "1")
    r = subprocess.run([cmd[0], "-c", SIGNAL_IN_A_CALLBACK, *cmd[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 130 and r.stderr == "error: stopped by SIGINT; what was fetched is kept, rerun the same command to resume\n", (
        r.returncode, r.stderr[-2000:])


def test_two_downloads_into_one_folder_at_once_both_end_with_every_file_fetched_once(hub, tmp_path):
    """Two downloaders into the same folder at once (a second terminal, or each node of a cluster on a shared disk), over a slow link:
    both wrote the same NAME.part and both failed, one saying the server sent more than the repository advertises (a broken mirror,
    it said), the other `No such file or directory; free space or fix permissions`. Now the second waits for the first, saying so,
    and ends with the first's files in place, fetching nothing; a signal while it waits is its usual one line."""
    for i in range(3):
        hub.pace[f"datasets/datasets/fineweb10B_sp1024/fineweb_train_{i:06d}.bin"] = 0.03  # about 0.4 s a shard
    cmd, env = downloader(hub, tmp_path, "--variant", "sp1024", "3")
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = tmp_path / "data/datasets/fineweb10B_sp1024/fineweb_train_000000.bin.part"
    for _ in range(600):  # the first is writing a shard
        if part.exists() and part.stat().st_size:
            break
        time.sleep(0.02)
    waiting = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the signal once it waits: 0.3 s after its start, on a busy 2-core machine, caught it still importing (a KeyboardInterrupt traceback)
    assert waiting.stdout.readline().startswith("waiting for the download into ")
    os.kill(waiting.pid, signal.SIGINT)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 130 and err == "error: stopped by SIGINT; what was fetched is kept, rerun the same command to resume\n", err
    (out1, err1), (out2, err2) = first.communicate(timeout=120), second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0 and err1 == err2 == "", (err1, err2)
    assert out2.startswith(f"waiting for the download into {tmp_path / 'data'} under way (pid {first.pid}) to end; what it fetches is used "
                           "here, not fetched again\n") and "0 files fetched this run, 0 bytes transferred" in out2, out2
    assert "6 files fetched this run" in out1, out1  # 1 val and 3 train shards, the tokenizer's two files (and the manifest)
    for rel in [f"datasets/fineweb10B_sp1024/fineweb_train_{i:06d}.bin" for i in range(3)] + ["tokenizers/fineweb_1024_bpe.model"]:
        assert (tmp_path / "data" / rel).read_bytes() == (tmp_path / "remote/datasets" / rel).read_bytes()
    sha = hashlib.sha256((tmp_path / "remote/datasets/datasets/fineweb10B_sp1024/fineweb_train_000002.bin").read_bytes()).hexdigest()
    assert hub.gets(f"/blob/{sha}") == [f"/blob/{sha}"]  # its bytes asked for once, by the first


def test_a_server_that_sends_without_end_fills_no_disk(hub, tmp_path, python):
    """A broken mirror or proxy that sends a file and then zeros without end (HEAD gives the true size): the transfer stops at the
    first block past the advertised size, one line, nothing of it kept, the finished files kept; the next run fetches it whole.
    Before, every byte sent was written (the size was checked only at the end), until the disk was full."""
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    hub.endless.add(rel)
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)  # httpx (huggingface_hub 1.x) and requests (0.x) alike
    size = (tmp_path / "remote" / rel).stat().st_size
    assert r.returncode == 2 and r.stderr == (f"error: fineweb_train_000000.bin: the server sent more than the {size:,} bytes the repository "
                                              f"advertises for it; what came was deleted (a broken mirror or proxy? {REPO})\n"), r.stderr
    assert hub.oversent[rel] < 64 << 20  # it hung up within a few blocks (the loop sends up to 4 GB)
    shards = tmp_path / "data/datasets/fineweb10B_sp1024"
    assert not list(shards.glob("fineweb_train_*")) and (shards / "fineweb_val_000000.bin").is_file()  # the validation shard came first
    hub.endless.clear()
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 0 and (shards / "fineweb_train_000000.bin").read_bytes() == (tmp_path / "remote" / rel).read_bytes(), r.stderr


def test_a_dropped_connection_resumes_within_the_run(hub, tmp_path, python):
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    hub.drop_after[rel] = 3000
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 0, r.stderr
    sha = hashlib.sha256((tmp_path / "remote" / rel).read_bytes()).hexdigest()
    assert [rng for m, p, rng in hub.requests if p == f"/blob/{sha}"] == [None, "bytes=3000-"]
    said = [line for line in r.stdout.splitlines() if "resuming" in line]  # a retry said nothing: a stalled server was minutes of silence
    assert len(said) == 1 and said[0].startswith(f"{REPO}:{rel}: network error (") and said[0].endswith(
        "); resuming from byte 3,000 in 0.5 s (1 of 3)"), r.stdout


RATE_LIMITED = {  # the file the limit falls on, and how the answer says how long to wait
    "shard_retry_after": ("datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin", {"Retry-After": "1"}),
    "manifest_ratelimit": ("datasets/manifest.json", {"RateLimit": '"resolvers";r=0;t=1',
                                                      "RateLimit-Policy": '"fixed window";"resolvers";q=3000;w=300'})}


@pytest.mark.parametrize("asked", RATE_LIMITED)
def test_a_rate_limit_is_waited_out_as_the_hub_asks_and_one_that_lasts_is_one_line(hub, tmp_path, python, asked):
    """The Hub limits how many requests a machine makes in 5 minutes (80 shards and their metadata count), answering 429 Too Many
    Requests and how long to wait (a Retry-After, or the RateLimit header's t=). A 429 on a shard's transfer was retried after half a second, three times, then failed the run; on
    a file's metadata (the manifest's first of all) at once. Now each waits what the Hub asks, says so, and goes on; a limit that
    outlasts the retries is one line that says to wait and rerun, and the rerun fetches the rest."""
    rel, hub.busy_headers = RATE_LIMITED[asked]
    hub.busy[rel] = 2
    start = time.monotonic()
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    waits = [line for line in r.stdout.splitlines() if "the Hub answered HTTP 429" in line]
    assert waits == [f"{REPO}:{rel}: the Hub answered HTTP 429 (too many requests); waiting 1 s as it asks ({n} of 3)" for n in (1, 2)]
    assert time.monotonic() - start >= 2 and hub.busy[rel] == 0
    assert (tmp_path / "data" / rel.removeprefix("datasets/")).read_bytes() == (tmp_path / "remote" / rel).read_bytes()
    (tmp_path / "data" / rel.removeprefix("datasets/")).unlink()
    hub.busy[rel] = 4
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 2 and r.stderr == (f"error: {REPO}:{rel}: the Hub still limits this machine's requests (HTTP 429, too many "
                                              "requests) after 3 waits; wait a few minutes and rerun the same command (finished files are "
                                              "kept, a partial one resumes); a token (HF_TOKEN) raises the limit\n"), r.stderr
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 0 and (tmp_path / "data" / rel.removeprefix("datasets/")).is_file(), r.stderr


@pytest.mark.parametrize("code", [502, 500])
def test_a_failing_server_is_waited_out_and_one_that_lasts_is_one_line(hub, tmp_path, python, code):
    """A 502 from a proxy or a 500 from the Hub on a shard's metadata failed the run at once ("the Hub answered HTTP 502; try again
    later"), where huggingface_hub itself retries such answers. Now 500, 502 and 504 are waited out as 503 and 429 are (the Retry-After
    if the answer has one), and an error that outlasts the waits is one line naming it and what to do. The 0.x client retries a
    5xx itself (5 times, 1 to 8 s apart, quietly at the error verbosity the downloader sets), so there the waits are its own."""
    rel, own_retries = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin", f"huggingface_hub__{OLD_CLIENT}" in python
    hub.busy_status, hub.busy_headers, hub.busy[rel] = code, {"Retry-After": "1"}, 2
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    phrase = {500: "internal server error", 502: "bad gateway"}[code]
    assert r.returncode == 0 and r.stderr == "" and hub.busy[rel] == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if "waiting" in line] == ([] if own_retries else [
        f"{REPO}:{rel}: the Hub answered HTTP {code} ({phrase}, a server error); waiting 1 s as it asks ({n} of 3)" for n in (1, 2)]), r.stdout
    if own_retries:  # its retries, 6 requests a call and 23 s, outlast 4 failures and would take 90 s to exhaust
        return
    (tmp_path / "data" / rel.removeprefix("datasets/")).unlink()
    hub.busy[rel] = 4
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 2 and r.stderr == (f"error: {REPO}:{rel}: the Hub still answers HTTP {code} ({phrase}, a server error) after 3 "
                                              "waits; rerun the same command later (finished files are kept, a partial one resumes)\n")


def test_a_gateway_error_without_retry_after_is_waited_10_s(hub, tmp_path):
    """Without a Retry-After the wait is 10 s, said as the downloader's own, not as the Hub's."""
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    hub.busy_status, hub.busy_headers, hub.busy[rel] = 504, {}, 1
    start = time.monotonic()
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 0 and time.monotonic() - start >= 10, r.stderr
    assert f"{REPO}:{rel}: the Hub answered HTTP 504 (gateway timeout, a server error); waiting 10 s before trying again (1 of 3)" in r.stdout


def test_a_mirrors_plain_404_is_not_retried_and_names_the_settings(hub, tmp_path, python):
    """A 404 without the Hub's EntryNotFound code (a mirror or proxy at HF_ENDPOINT) is asked once, and the line names the
    settings to check: it said "try again later", which no later mends."""
    rel = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    hub.busy_status, hub.busy_headers, hub.busy[rel] = 404, {}, 1
    r = run(hub, tmp_path, "--variant", "sp1024", "1", python=python)
    assert r.returncode == 2 and r.stderr == (f"error: {REPO}:{rel}: {hub.endpoint} answered HTTP 404 (not found); check HF_ENDPOINT, "
                                              "MATCHED_FINEWEB_REPO_ID and MATCHED_FINEWEB_REMOTE_ROOT_PREFIX\n"), r.stderr
    assert [m for m, p, _ in hub.requests if p.endswith("fineweb_train_000000.bin")] == ["HEAD"], hub.requests  # once


def test_no_server_and_bad_arguments_are_one_line_errors(tmp_path, python):
    r = run("http://127.0.0.1:9", tmp_path, "--variant", "sp1024", "1", python=python)  # nothing listens on the discard port
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "network error" in r.stderr, r.stderr  # 0.x: no retry lines
    r = run("http://127.0.0.1:9", tmp_path, "--variant", "sp1024", "--skip-manifest")
    assert r.returncode == 2 and "--skip-manifest:" in r.stderr and "run once without --skip-manifest" in r.stderr
    r = run("http://127.0.0.1:9", tmp_path, "--variant", "gpt2")
    assert r.returncode == 2 and "--variant 'gpt2': accepted byte260, char or sp<N>" in r.stderr


@pytest.mark.parametrize("change, message", [
    (lambda m: m["datasets"][0].update(val_glob="../../escaped_*.bin"), "fineweb10B_sp1024 val_glob '../../escaped_*.bin': not a path inside"),
    (lambda m: m["datasets"][0].update(train_glob="/tmp/abs_train_*.bin"), "fineweb10B_sp1024 train_glob '/tmp/abs_train_*.bin': not a path"),
    (lambda m: m["tokenizers"][0].update(model_path="tokenizers/../../../x.model"), "tokenizer 'tok_sp1024' model_path 'tokenizers/../../../x"),
    (lambda m: m["datasets"][0].update(path=7), "fineweb10B_sp1024 path 7: not a path inside the data folder"),
    (lambda m: m["datasets"][0]["stats"].update(files_val="1"), "fineweb10B_sp1024 stats: files_train 3, files_val '1'; accepted: counts"),
    (lambda m: m["datasets"][0]["stats"].update(files_train=-2), "files_train -2, files_val 1; accepted: counts of files"),
    # each a traceback until 2026-12-06, found by replacing every field of this manifest in turn: a name that is a list
    # (unhashable), a number (no removeprefix), and a count of 10^12 validation files, whose names were all listed (memory, hours)
    (lambda m: (m["datasets"][0].update(name=["fineweb10B_sp1024"]), m["datasets"][1].update(name=8192)),
     "--variant sp1024: the manifest has no dataset fineweb10B_sp1024; it has: byte260"),
    (lambda m: m["datasets"][0]["stats"].update(files_val=10**12), "files_val 1000000000000; accepted: counts of files, 0 to 100,000"),
    (lambda m: m.update(tokenizers={"tok_sp1024": {}}), "manifest.json: not a manifest (an object with lists of datasets and tokenizers)"),
])
def test_a_mirror_whose_manifest_points_outside_the_data_folder_is_refused_before_any_file(hub, tmp_path, change, message):
    """A mirror's manifest (MATCHED_FINEWEB_REPO_ID) is input like any other: a path that leaves the data folder, or counts and
    lists of another shape, is one line before anything but the manifest is fetched, and nothing lands outside the data folder."""
    manifest_file = tmp_path / "remote/datasets/manifest.json"
    manifest = json.loads(manifest_file.read_text())
    change(manifest)
    manifest_file.write_text(json.dumps(manifest))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "hf_home" not in p.parts)
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "hf_home" not in p.parts)
    assert [str(p) for p in after if p not in before] == ["data", "data/.download.lock", "data/manifest.json"]  # (the lock: one at a time)
    assert [p for m, p, _ in hub.requests if m == "GET"] == [f"/datasets/{REPO}/resolve/main/datasets/manifest.json"]


@pytest.mark.parametrize("sidecar", ["[1, 2]", "{half", '{"docs_sha256": 5}', "[" * 100_000 + "]" * 100_000, '{"n": ' + "1" * 5000 + "}"],
                         ids=["list", "half", "digest_number", "too_deep", "huge_int"])  # the last two: valid JSON, past what Python's json reads
def test_a_source_manifest_of_another_shape_is_one_line(hub, tmp_path, sidecar):
    (tmp_path / "remote/datasets/docs_selected.source_manifest.json").write_text(sidecar)
    r = run(hub, tmp_path, "--variant", "sp1024", "1", "--with-docs")
    assert r.returncode == 2 and r.stderr.strip() == ("error: docs_selected.source_manifest.json: not a source manifest (a JSON object "
                                                      "with docs_sha256) as the repository serves it"), r.stderr


@pytest.mark.parametrize("value, reason", [("[" * 100_000 + "]" * 100_000, "maximum recursion depth exceeded"),
                                           ("1" * 5000, "Exceeds the limit (4300")], ids=["too_deep", "huge_int"])
def test_a_manifest_past_what_json_reads_is_one_line(hub, tmp_path, value, reason):
    """Valid JSON nested 100,000 deep (a hostile or broken mirror) stops Python's json with a RecursionError, and an integer of 5,000
    digits with a ValueError that is no JSONDecodeError: each was a traceback (the integer until 2026-12-06)."""
    (tmp_path / "remote/datasets/manifest.json").write_text('{"datasets": ' + value + "}")
    r = run(hub, tmp_path, "--variant", "sp1024", "1")
    manifest = tmp_path / "data" / "manifest.json"
    assert r.returncode == 2 and r.stderr.startswith(f"error: {manifest}: not a readable JSON manifest ({reason}")
    assert r.stderr.endswith("; delete it and rerun\n") and len(r.stderr.splitlines()) == 1, r.stderr


def test_a_full_disk_is_one_line_that_says_so_and_the_rerun_resumes(hub, tmp_path):
    """A real full disk (a 20 KB tmpfs, root only) mid-shard: not a 'network error', no retries, the finished files kept;
    with room again the same command resumes the partial shard and ends with every file checked."""
    with small_disk(tmp_path / "disk", "20k") as disk:
        r = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "2", "--data-dir", str(disk))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0] and "network" not in lines[0], r.stderr
        assert "free space" in lines[0] and "rerun the same command" in lines[0]
        first = [(p, rng) for m, p, rng in hub.requests if m == "GET" and p.startswith("/blob/")]  # shards come from the CDN
        assert len(first) == len(set(first)) == 1  # the shard that did not fit was asked for once, not retried
        assert (disk / "datasets/fineweb10B_sp1024/fineweb_val_000000.bin.part").stat().st_size > 0
        assert subprocess.run(["mount", "-o", "remount,size=2m", str(disk)], capture_output=True).returncode == 0
        before = len(hub.requests)
        again = run(hub, tmp_path, "--variant", "sp1024", "--train-shards", "2", "--data-dir", str(disk))
        assert again.returncode == 0, again.stderr
        resumed = [rng for m, p, rng in hub.requests[before:] if m == "GET" and p == first[0][0]]
        assert len(resumed) == 1 and resumed[0].startswith("bytes=") and resumed[0] != "bytes=0-"  # only the missing bytes were asked for
        for rel in ("datasets/fineweb10B_sp1024/fineweb_train_000001.bin", "datasets/fineweb10B_sp1024/fineweb_val_000000.bin"):
            assert (disk / rel).read_bytes() == (tmp_path / "remote/datasets" / rel).read_bytes()
        assert not list(disk.rglob("*.part"))
