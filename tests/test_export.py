"""DATA: data/export_corpus.py --challenge (the challenge's export protocol, FACTS.md) against
an independent export of the same documents written here, its determinism, and the
streaming folder/JSONL mode for other corpora."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

import train_gpt
from conftest import ROOT, live_processes, small_disk, synthetic_documents
from export_corpus import TOKENIZER_OPTIONS

CLI = [sys.executable, str(ROOT / "data" / "export_corpus.py")]
VOCAB = 512
# byte260's tokenizer file as the challenge's downloader brings it (FACTS.md: ids 0-3 pad/bos/eos/unk, byte b is id 4 + b).
PUBLIC_BYTE260 = {"tokenizer_type": "pure_byte", "config": {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3, "byte_offset": 4, "byte_count": 256},
                  "vocab_size": 260}


def read_shard(path):
    header = np.fromfile(path, dtype="<i4", count=256)
    tokens = np.fromfile(path, dtype="<u2", offset=1024)
    assert header[0] == 20240520 and header[1] == 1 and header[2] == tokens.size
    return tokens


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory):
    """docs_selected.jsonl with its sidecar: 240 documents, among them an empty one, one that
    is only spaces, one with a NUL, one with surrounding whitespace and one over 4,192 bytes."""
    folder = tmp_path_factory.mktemp("docs")
    docs = synthetic_documents(236, seed=11)
    docs[3:3] = ["", "   ", "before\x00after and more words", "  padded document with spaces around  \n"]
    docs.append(" ".join(synthetic_documents(40, seed=12)))  # longer than SentencePiece's max_sentence_length
    assert len(docs[-1].encode()) > 4192
    path = folder / "docs_selected.jsonl"
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)), encoding="utf-8")
    sidecar = {"num_docs": len(docs), "docs_val": 30, "docs_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "shuffle_seed": 1234}
    (folder / "docs_selected.source_manifest.json").write_text(json.dumps(sidecar))
    return path, docs


def export_challenge(docs_path, out, *args, cwd=None):
    r = subprocess.run(CLI + ["--input", str(docs_path), "--challenge", "--out", str(out), *args], capture_output=True, text=True, timeout=600,
                       cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads((Path(cwd or ".") / out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def exported(docs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_a")
    return out, export_challenge(docs_file[0], out, "--vocab-size", str(VOCAB), "--shard-tokens", "9000")


def pieces_and_scores(model_file):
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.vocab_size())]


def test_challenge_export_equals_an_independent_export_of_the_same_documents(docs_file, exported, tmp_path):
    path, docs = docs_file
    out, manifest = exported
    # The tokenizer: trained here with the protocol's input and options, SentencePiece's defaults for the rest.
    sentences = [d.replace("\x00", " ").strip() for d in docs]
    spm.SentencePieceTrainer.train(sentence_iterator=iter([s for s in sentences if s]), model_prefix=str(tmp_path / "ref"),
                                   vocab_size=VOCAB, minloglevel=2, **TOKENIZER_OPTIONS)
    model = out / "tokenizers" / f"fineweb_{VOCAB}_bpe.model"
    assert pieces_and_scores(model) == pieces_and_scores(tmp_path / "ref.model")
    # The shards: the first 30 documents (the sidecar's docs_val) in file order are validation, each BOS + the
    # encoding of its raw text (an empty one a lone BOS), cut every 9,000 tokens, each split numbered from 0.
    sp = spm.SentencePieceProcessor(model_file=str(model))
    stream = lambda ds: np.concatenate([[1] + sp.encode(d) for d in ds]).astype(np.uint16)
    folder = out / f"datasets/fineweb10B_sp{VOCAB}"
    for split, part in (("val", docs[:30]), ("train", docs[30:])):
        expected = stream(part)
        files = sorted(folder.glob(f"fineweb_{split}_*.bin"))
        assert [f.name for f in files] == [f"fineweb_{split}_{i:06d}.bin" for i in range(-(-expected.size // 9000))]
        assert [read_shard(f).size for f in files[:-1]] == [9000] * (len(files) - 1)
        assert np.array_equal(np.concatenate([read_shard(f) for f in files]), expected)
    assert sp.encode("") == [] and (stream(docs[3:5]) == [1, 1] + sp.encode("   ")).all()  # empty documents are kept
    # The manifest, as FACTS.md describes it.
    ds, tok = manifest["datasets"][0], manifest["tokenizers"][0]
    assert (manifest["version"], manifest["num_docs"], manifest["num_val_docs"], manifest["shuffle_seed"]) == ("10B", len(docs), 30, 1234)
    assert manifest["shard_size"] == 9000 and manifest["append_eos"] is False
    assert manifest["docs_meta"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tok["recommended_bigram_vocab_size"] == 4 * 128 * 5 and (tok["bos_id"], tok["eos_id"]) == (1, 2)
    assert (out / tok["model_path"]).is_file() and (out / tok["vocab_path"]).is_file() and tok["vocab_size"] == VOCAB
    assert ds["name"] == f"fineweb10B_sp{VOCAB}" and ds["tokenizer_name"] == tok["name"] and ds["val_glob"].endswith("fineweb_val_*.bin")
    s = ds["stats"]
    assert (s["docs_total"], s["docs_val"], s["docs_train"]) == (len(docs), 30, len(docs) - 30)
    assert s["tokens_val"] == stream(docs[:30]).size and s["tokens_total"] == s["tokens_val"] + s["tokens_train"]
    assert s["files_total"] == s["files_val"] + s["files_train"] == len(list(folder.glob("*.bin")))
    # What train_gpt.py reads: every validation token, in order.
    import train_gpt
    assert np.array_equal(train_gpt.load_validation_tokens(str(folder), 16, VOCAB).numpy(), stream(docs[:30]))


def test_two_exports_are_identical_whatever_the_number_of_workers(docs_file, exported, tmp_path):
    out, manifest = exported
    rel = lambda p: os.path.relpath(p, tmp_path)  # relative paths: the tokenizer trains in its own folder, and still reads the input
    again = export_challenge(rel(docs_file[0]), ".", "--vocab-size", str(VOCAB), "--shard-tokens", "9000", "--workers", "1", cwd=tmp_path)
    assert again == manifest
    name = f"datasets/fineweb10B_sp{VOCAB}"
    files = sorted(p.name for p in (out / name).iterdir())
    assert files == sorted(p.name for p in (tmp_path / name).iterdir())
    assert all((out / name / f).read_bytes() == (tmp_path / name / f).read_bytes() for f in files)
    model = f"tokenizers/fineweb_{VOCAB}_bpe.model"  # byte for byte: the trainer writes its options, model_prefix among them, into the file
    assert (out / model).read_bytes() == (tmp_path / model).read_bytes() and b"_export_" not in (out / model).read_bytes()


def test_options_val_docs_tokenizer_docs_and_reuse(docs_file, exported, tmp_path):
    path, docs = docs_file
    out, _ = exported
    m = export_challenge(path, tmp_path / "a", "--vocab-size", str(VOCAB), "--num-val-docs", "5", "--tokenizer-train-docs", "100")
    assert m["num_val_docs"] == 5 and m["datasets"][0]["stats"]["docs_val"] == 5 and m["tokenizer_specs"][0]["trained_on_docs"] == 100
    spm.SentencePieceTrainer.train(sentence_iterator=iter([d.replace("\x00", " ").strip() for d in docs[:100] if d.strip()]),
                                   model_prefix=str(tmp_path / "ref100"), vocab_size=VOCAB, minloglevel=2, **TOKENIZER_OPTIONS)
    assert pieces_and_scores(tmp_path / f"a/tokenizers/fineweb_{VOCAB}_bpe.model") == pieces_and_scores(tmp_path / "ref100.model")
    reused = out / f"tokenizers/fineweb_{VOCAB}_bpe.model"
    m = export_challenge(path, tmp_path / "b", "--reuse-tokenizer", str(reused), "--shard-tokens", "9000")
    assert m["tokenizers"][0]["vocab_size"] == VOCAB
    assert (tmp_path / f"b/tokenizers/fineweb_{VOCAB}_bpe.model").read_bytes() == reused.read_bytes()
    name = f"datasets/fineweb10B_sp{VOCAB}/fineweb_train_000001.bin"
    assert (tmp_path / "b" / name).read_bytes() == (out / name).read_bytes()


def test_variants_exported_into_one_folder_are_all_listed_as_in_the_published_manifest(docs_file, exported, tmp_path):
    """sp then byte260 into one --out: the manifest lists both (each entry as its own export writes it), a re-export replaces its own
    entry in place, the published manifest's other variants are kept; other documents or an unreadable manifest replace it, saying so."""
    path, _ = docs_file
    out, alone = exported
    reuse = ["--reuse-tokenizer", str(out / f"tokenizers/fineweb_{VOCAB}_bpe.model"), "--shard-tokens", "9000"]

    def export(*args, folder="out"):
        r = subprocess.run(CLI + ["--input", str(path), "--challenge", "--out", str(tmp_path / folder), *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return json.loads((tmp_path / folder / "manifest.json").read_text()), r.stderr

    byte_alone, _ = export("--byte260", "--shard-tokens", "9000", folder="byte260_alone")
    sp, note = export(*reuse)
    assert note == "" and (sp["datasets"], sp["tokenizers"]) == (alone["datasets"], alone["tokenizers"])
    both, note = export("--byte260", "--shard-tokens", "9000")
    assert note == "" and [d["name"] for d in both["datasets"]] == [f"fineweb10B_sp{VOCAB}", "fineweb10B_byte260"]
    for k in ("tokenizer_specs", "tokenizers", "datasets"):
        assert both[k] == sp[k] + byte_alone[k] and len(both[k]) == 2
    assert {k: v for k, v in both.items() if k not in ("tokenizer_specs", "tokenizers", "datasets")} == {
        k: v for k, v in byte_alone.items() if k not in ("tokenizer_specs", "tokenizers", "datasets")}
    assert all((tmp_path / "out" / d["path"]).is_dir() and len(list((tmp_path / "out" / d["path"]).glob("*.bin"))) == d["stats"]["files_total"]
               for d in both["datasets"])
    again, _ = export(*reuse)  # a re-export: the same entries, in the same order, none twice
    assert again == both
    # The published manifest (no sha256 of the documents, other variants listed, fields we do not write): kept, ours added.
    public = {"version": "10B", "num_docs": alone["num_docs"], "num_val_docs": 30, "shard_size": 9000, "extra": {"kept": True},
              "tokenizers": [{"name": "sp_bpe_8192", "model_path": "tokenizers/fineweb_8192_bpe.model"}],
              "datasets": [{"name": "fineweb10B_sp8192", "tokenizer_name": "sp_bpe_8192", "path": "datasets/fineweb10B_sp8192"},
                           {"name": f"fineweb10B_sp{VOCAB}", "tokenizer_name": "published"}]}
    (tmp_path / "out/manifest.json").write_text(json.dumps(public))
    m, note = export(*reuse)
    assert note == "" and m["extra"] == {"kept": True} and m["docs_meta"] == alone["docs_meta"]
    assert m["datasets"] == [public["datasets"][0], alone["datasets"][0]] and m["tokenizers"] == public["tokenizers"] + alone["tokenizers"]
    # Other documents (another split): replaced, and the line says what is no longer listed; an unreadable manifest: replaced.
    m, note = export(*reuse, "--num-val-docs", "5")
    assert [d["name"] for d in m["datasets"]] == [f"fineweb10B_sp{VOCAB}"] and m["num_val_docs"] == 5
    assert note.startswith("note: ") and "num_val_docs differ" in note and "no longer listing: fineweb10B_sp8192" in note, note
    for unreadable in ("{half", '{"num_docs": ' + "1" * 5000 + "}"):  # the second: past Python's int limit, a traceback until 2026-12-06
        (tmp_path / "out/manifest.json").write_text(unreadable)
        m, note = export(*reuse)
        assert m["datasets"] == alone["datasets"] and "not a readable manifest" in note and len(note.splitlines()) == 1
    # A name that is not text (a key in the merge) and docs_meta as a list: tracebacks until 2026-12-06 (every field replaced in turn)
    for odd in ({**public, "datasets": [{"name": ["fineweb10B_sp8192"]}]}, {**public, "docs_meta": [{"sha256": "0"}]}):
        (tmp_path / "out/manifest.json").write_text(json.dumps(odd))
        m, note = export(*reuse)
        assert m["datasets"] == alone["datasets"] and "not a manifest (an object with lists of named tokenizers" in note and len(note.splitlines()) == 1


@pytest.mark.parametrize("lines, args, message", [
    ([b'{"text": "ok"}', b'{"text": "caf\xe9"}'], [], "line 2 is not UTF-8"),
    ([b'{"text": "ok"}', b'{"body": "x"}'], [], 'line 2 is not a JSON object with a "text" field'),
    ([b'{"text": 5}'], [], 'line 1: "text" is not a string'),
    ([b'{"text": "ok", "m": ' + b'[' * 100_000 + b']' * 100_000 + b'}'], [],  # valid JSON past Python's recursion limit: was a traceback
     'line 1 is not a JSON object with a "text" field (nested too deep to read)'),
    ([b'{"text": "ok", "n": ' + b'1' * 5000 + b'}'], [], 'line 1 is not a JSON object with a "text" field'),  # Python's int limit: until 2026-12-06
    ([b'{"text": "ok"}', b'{"text": "half a pair \\ud83d here"}'], [], 'line 2: "text" holds a lone surrogate \'\\ud83d\' at character 12'),
    ([b'{"text": "a"}'], ["--byte260", "--vocab-size", "1024"], "--vocab-size 1024: not with --byte260 (its tokenizer is fixed: 260 ids"),
    ([b'{"text": "a"}'], ["--byte260", "--tokenizer-train-docs", "5"], "--tokenizer-train-docs 5: not with --byte260"),
    ([b'{"text": "a"}'], ["--char", "--vocab-size", "260"], "--vocab-size 260: not with --char (its vocabulary is the documents' characters)"),
    ([b'{"text": "a"}'], ["--char", "--reuse-tokenizer", "x.model"], "--reuse-tokenizer x.model: not with --char"),
    ([b'{"text": "a"}'], ["--char", "--byte260"], "--byte260 and --char: two tokenizers; accepted one of them"),
    ([b'{"text": "a b c"}'] * 3, ["--num-val-docs", "9"], "--num-val-docs 9: the input has only 3 documents"),
    ([b'{"text": "a"}'], ["--vocab-size", "100"], "--vocab-size 100: accepted 260 to 65536"),
    ([b'{"text": "a"}'], ["--reuse-tokenizer", "/nonexistent.model"], "--reuse-tokenizer /nonexistent.model: no such file"),
])
def test_bad_input_is_one_line_and_replaces_nothing(tmp_path, lines, args, message, python=sys.executable):
    src = tmp_path / "docs.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/manifest.json").write_text("earlier")
    sized = args if {"--vocab-size", "--reuse-tokenizer", "--byte260", "--char"} & set(args) else args + ["--vocab-size", "300"]
    r = subprocess.run([python, *CLI[1:], "--input", str(src), "--challenge", "--out", str(tmp_path / "out"), *sized], capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (tmp_path / "out/manifest.json").read_text() == "earlier" and [p.name for p in (tmp_path / "out").iterdir()] == ["manifest.json"]


def test_an_older_sentencepiece_exports_and_names_bad_input_in_one_line(tmp_path, interpreter_with):
    """sentencepiece 0.1.99 (2023, still pinned by some projects) reports an error raised by the documents it is fed as a SystemError,
    not the RuntimeError of 0.2: a line that is not UTF-8 was a traceback there. Its tokenizer, trained here, reads back as ours."""
    python = interpreter_with("sentencepiece==0.1.99")
    (tmp_path / "bad").mkdir()
    test_bad_input_is_one_line_and_replaces_nothing(tmp_path / "bad", [b'{"text": "ok"}', b'{"text": "caf\xe9"}'], [], "line 2 is not UTF-8",
                                                     python)
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": f"document {i}: the quick brown fox, {i * 7} times"}) + "\n" for i in range(60)))
    r = subprocess.run([python, *CLI[1:], "--input", str(src), "--challenge", "--out", str(tmp_path / "out"), "--vocab-size", "300",
                        "--num-val-docs", "10"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    version = subprocess.run([python, "-c", "import sentencepiece; print(sentencepiece.__version__)"], capture_output=True, text=True)
    assert version.stdout.strip() == "0.1.99"
    data, tok = tmp_path / "out/datasets/fineweb10B_sp300", tmp_path / "out/tokenizers/fineweb_300_bpe.model"
    tokens, token_bytes, _, kind = train_gpt.load_eval_data(str(data), str(tok), 300, 16, "cpu")  # the read-back check passes
    assert kind == "sentencepiece" and token_bytes.sum() == sum(len(f"document {i}: the quick brown fox, {i * 7} times".encode())
                                                                 for i in range(10))


@pytest.mark.parametrize("docs, said", [([], "0 non-empty documents;"), (["one", "  "], "1 non-empty document;")])
def test_other_corpora_need_a_document_to_hold_out_and_one_to_train_on(tmp_path, docs, said):
    """An empty corpus said '--val-docs 1: accepted 1 to -1': now the input is named, with its count and what is accepted."""
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    r = subprocess.run(CLI + ["--input", str(src), "--name", "c", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and not (tmp_path / "out").exists(), r.stderr
    assert r.stderr == f"error: --input {src}: {said} accepted at least 2 (one held out for validation)\n"


def test_other_corpora_stream_and_are_deterministic(tmp_path):
    docs = synthetic_documents(80, seed=5) + ["   "]
    jl = tmp_path / "c.jsonl"
    jl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    outs = []
    for run in ("x", "y"):  # y with relative paths: the tokenizer trains in its own folder, and still reads the input
        r = subprocess.run(CLI + ["--input", str(jl) if run == "x" else jl.name, "--name", "c", "--out", str(tmp_path / run) if run == "x" else run,
                                  "--val-docs", "8", "--shard-tokens", "5000", "--vocab-size", "400", "--workers", "2" if run == "x" else "1"],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        outs.append(tmp_path / run)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".bin"]) > 3
    # every file byte for byte, the tokenizer's too (an artifact records its sha256); the manifests name the input as it was given
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files if f.name != "manifest.json")
    manifests = [(o / "datasets/c_sp400/manifest.json").read_text() for o in outs]
    assert manifests[0] != manifests[1] and manifests[0].replace(json.dumps(str(jl)), json.dumps(jl.name)) == manifests[1]
    folder = outs[0] / "datasets/c_sp400"
    m = json.loads((folder / "manifest.json").read_text())["datasets"][0]
    assert m["stats"]["docs_val"] == 8 and m["stats"]["docs_train"] == 72  # the blank document is not one
    # Validation documents keep their file order.
    sp = spm.SentencePieceProcessor(model_file=str(outs[0] / "tokenizers/c_400_bpe.model"))
    val = np.concatenate([read_shard(f) for f in sorted(folder.glob("c_val_*.bin"))])
    starts = np.flatnonzero(val == 1)
    firsts = [sp.decode(val[s + 1:e].tolist()) for s, e in zip(starts, list(starts[1:]) + [val.size])]
    order = [docs.index(next(d for d in docs if sp.decode(sp.encode(d)) == f)) for f in firsts]
    assert order == sorted(order)


@pytest.mark.parametrize("sidecar, message", [
    ("[1, 2]", "not a JSON source manifest (a list, not an object)"),
    ("[" * 100_000 + "]" * 100_000, "not a JSON source manifest (maximum recursion depth exceeded"),  # was a RecursionError traceback
    ('{"docs_val": "many"}', "docs_val 'many' is not a count of documents (give --num-val-docs)"),
    ('{"docs_val": ' + "1" * 5000 + "}", "not a JSON source manifest (Exceeds the limit (4300"),  # a ValueError traceback until 2026-12-06
], ids=["list", "too_deep", "text_count", "huge_int"])
def test_a_malformed_sidecar_is_one_line(tmp_path, sidecar, message):
    (tmp_path / "docs_selected.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "docs_selected.source_manifest.json").write_text(sidecar)
    r = subprocess.run(CLI + ["--input", str(tmp_path / "docs_selected.jsonl"), "--challenge", "--byte260", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def byte260_stream(docs):
    """What byte260 shards hold for these documents: each is BOS, then 4 + each byte of its UTF-8."""
    return np.concatenate([[1] + [4 + b for b in d.encode("utf-8")] for d in docs]).astype(np.uint16)


def test_byte260_challenge_export_is_each_documents_utf8_and_train_gpt_counts_each_byte_once(tmp_path):
    docs = synthetic_documents(40, seed=3)
    docs[2:2] = ["", "café, naïve — 中文 😀", "nul\x00inside", "  spaced  \n"]  # written as JSON \\u escapes, the emoji a surrogate pair
    src = tmp_path / "docs_selected.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "docs_selected.source_manifest.json").write_text(json.dumps({"docs_val": 8, "shuffle_seed": 5}))
    m = export_challenge(src, tmp_path / "a", "--byte260", "--shard-tokens", "2000")
    assert export_challenge(src, tmp_path / "b", "--byte260", "--shard-tokens", "2000", "--workers", "1") == m
    folder, tok_file = tmp_path / "a/datasets/fineweb10B_byte260", tmp_path / "a/tokenizers/fineweb_pure_byte_260.json"
    for split, part in (("val", docs[:8]), ("train", docs[8:])):
        files = sorted(folder.glob(f"fineweb_{split}_*.bin"))
        assert len(files) == -(-byte260_stream(part).size // 2000) and np.array_equal(np.concatenate([read_shard(f) for f in files]),
                                                                                     byte260_stream(part))
        assert all(f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes() for f in files)
    assert tok_file.read_text() == challenge_json(PUBLIC_BYTE260) and not list(tok_file.parent.glob("*.model"))
    tok, ds = m["tokenizers"][0], m["datasets"][0]
    assert (tok["kind"], ds["tokenizer_kind"], tok["path"], tok["vocab_size"], ds["vocab_size"]) == (
        "pure_byte", "pure_byte", "tokenizers/fineweb_pure_byte_260.json", 260, 260)
    assert ds["stats"]["tokens_val"] == byte260_stream(docs[:8]).size and m["num_val_docs"] == 8 and m["shuffle_seed"] == 5
    # train_gpt.py reads the JSON: every byte of the validation documents is one byte of val_bpb, BOS none; no id has a leading space.
    import train_gpt
    val, token_bytes, sha, kind = train_gpt.load_eval_data(str(folder), str(tok_file), 260, 16, "cpu")
    assert kind == "pure_byte" and sha == hashlib.sha256(tok_file.read_bytes()).hexdigest()
    assert int(token_bytes.sum()) == sum(len(d.encode("utf-8")) for d in docs[:8])
    assert token_bytes.tolist() == [int(t >= 4) for t in val.tolist()]  # one byte a byte id, none for BOS (and no leading spaces)


def challenge_json(tok: dict) -> str:
    """A JSON tokenizer as the challenge's exporter writes it (2-space indent, sorted keys, characters as themselves, a final newline)."""
    return json.dumps(tok, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def char_tokenizer_of(docs):
    """The challenge's char tokenizer of these documents, from its protocol: every character of every document, NUL counted as a space,
    most frequent first and ties by code point; the i-th is id 4 + i (ids 0-3 pad, bos, eos, unk)."""
    counts = {}
    for d in docs:
        for c in d.replace("\x00", " "):
            counts[c] = counts.get(c, 0) + 1
    chars = sorted(counts, key=lambda c: (-counts[c], c))
    return {"tokenizer_type": "char", "config": {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3, "chars": chars}, "vocab_size": 4 + len(chars)}


def test_char_challenge_export_is_the_challenges_tokenizer_and_train_gpt_counts_each_characters_bytes(tmp_path):
    """--challenge --char: the tokenizer file is byte for byte the one the challenge's char workflow writes for these documents (so its
    sha256, which an artifact records, is the same), each document is BOS + its characters' ids (a NUL, never counted as itself, is unk),
    and train_gpt.py counts each validation character's UTF-8 bytes once: 1 to 4 a character, none for BOS and unk."""
    docs = synthetic_documents(40, seed=4)
    docs[2:2] = ["", "café, naïve — 中文 😀 ∑", "nul\x00inside", "  spaced  \n", "ZZZ"]
    src = tmp_path / "docs_selected.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "docs_selected.source_manifest.json").write_text(json.dumps({"docs_val": 9}))
    m = export_challenge(src, tmp_path / "a", "--char", "--shard-tokens", "3000")
    assert export_challenge(src, tmp_path / "b", "--char", "--shard-tokens", "3000", "--workers", "1") == m
    tok = char_tokenizer_of(docs)
    tok_file, folder = tmp_path / "a/tokenizers/fineweb_char.json", tmp_path / "a/datasets/fineweb10B_char"
    assert tok_file.read_text(encoding="utf-8") == challenge_json(tok) and "\x00" not in tok["config"]["chars"]
    ids = {c: 4 + i for i, c in enumerate(tok["config"]["chars"])}
    stream = lambda part: np.array([t for d in part for t in [1] + [ids.get(c, 3) for c in d]], dtype=np.uint16)
    for split, part in (("val", docs[:9]), ("train", docs[9:])):
        files = sorted(folder.glob(f"fineweb_{split}_*.bin"))
        assert np.array_equal(np.concatenate([read_shard(f) for f in files]), stream(part)) and len(files) == -(-stream(part).size // 3000)
        assert all(f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes() for f in files)
    entry, ds = m["tokenizers"][0], m["datasets"][0]
    assert (entry["name"], entry["kind"], entry["path"], entry["vocab_size"], entry["chars"], entry["unk_id"]) == (
        "char_utf8", "char", "tokenizers/fineweb_char.json", tok["vocab_size"], tok["config"]["chars"], 3)
    assert (ds["name"], ds["tokenizer_kind"], ds["vocab_size"], ds["stats"]["tokens_val"]) == ("fineweb10B_char", "char", tok["vocab_size"],
                                                                                             stream(docs[:9]).size)
    val, token_bytes, sha, kind = train_gpt.load_eval_data(str(folder), str(tok_file), tok["vocab_size"], 16, "cpu")
    assert kind == "char" and sha == hashlib.sha256(challenge_json(tok).encode()).hexdigest()
    assert int(token_bytes.sum()) == sum(len(c.encode()) for d in docs[:9] for c in d if c != "\x00") and int(token_bytes.max()) == 4
    back = {i: c for c, i in ids.items()}
    assert token_bytes.tolist() == [0] + [len(back[t].encode()) if t in back else 0 for t in val[1:].tolist()]


def export_text_folder(tmp_path, docs, flag: str):
    """The documents as a folder of .txt files, exported as corpus c under tmp_path/out with --byte260 or --char, 3 held out."""
    (tmp_path / "txt").mkdir()
    for i, d in enumerate(docs):
        (tmp_path / f"txt/{i:03d}.txt").write_text(d, encoding="utf-8")
    r = subprocess.run(CLI + ["--input", str(tmp_path / "txt"), "--name", "c", flag, "--val-docs", "3", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_other_corpora_and_the_embedded_corpus_export_char_too(tmp_path):
    """<name>_char from a folder of .txt files: its characters counted over both splits (so validation holds no unknown one); and
    `bash run.sh data --char` (data/shakespeare.py) builds shakespeare_char, which train_gpt.py reads with its VOCAB_SIZE."""
    docs = synthetic_documents(20, seed=6) + ["ünïcödé ✓ 😀"]
    export_text_folder(tmp_path, docs, "--char")
    tok = char_tokenizer_of(docs)
    assert (tmp_path / "out/tokenizers/c_char.json").read_text(encoding="utf-8") == challenge_json(tok)
    folder = tmp_path / "out/datasets/c_char"
    entry = json.loads((folder / "manifest.json").read_text())["tokenizers"][0]
    assert (entry["kind"], entry["vocab_size"], entry["path"]) == ("char", tok["vocab_size"], "tokenizers/c_char.json")
    tokens = np.concatenate([read_shard(f) for f in sorted(folder.glob("*.bin"))])  # every document back, whole, from its characters
    chars, starts = tok["config"]["chars"], list(np.flatnonzero(tokens == 1)) + [tokens.size]
    assert sorted("".join(chars[t - 4] for t in tokens[s + 1:e]) for s, e in zip(starts, starts[1:])) == sorted(docs)
    r = subprocess.run([sys.executable, str(ROOT / "data/shakespeare.py"), "--char", "--out", str(tmp_path / "shk")], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    n = json.loads((tmp_path / "shk/tokenizers/shakespeare_char.json").read_text())["vocab_size"]
    val, token_bytes, _, kind = train_gpt.load_eval_data(str(tmp_path / "shk/datasets/shakespeare_char"),
                                                         str(tmp_path / "shk/tokenizers/shakespeare_char.json"), n, 256, "cpu")
    assert kind == "char" and 60 < n < 120 and int(token_bytes.sum()) == int((val >= 4).sum())  # the plays are ASCII: a byte a character


def test_other_corpora_export_byte260_too(tmp_path):
    docs = synthetic_documents(20, seed=6) + ["ünïcödé ✓ 😀"]
    export_text_folder(tmp_path, docs, "--byte260")
    assert sorted(p.name for p in (tmp_path / "out/tokenizers").iterdir()) == ["c_pure_byte_260.json"]
    assert json.loads((tmp_path / "out/tokenizers/c_pure_byte_260.json").read_text()) == PUBLIC_BYTE260
    folder = tmp_path / "out/datasets/c_byte260"
    tok = json.loads((folder / "manifest.json").read_text())["tokenizers"][0]
    assert (tok["kind"], tok["vocab_size"], tok["path"]) == ("pure_byte", 260, "tokenizers/c_pure_byte_260.json")
    tokens = np.concatenate([read_shard(f) for f in sorted(folder.glob("*.bin"))])  # every document back, whole, from its bytes
    starts = list(np.flatnonzero(tokens == 1)) + [tokens.size]
    back = [bytes((tokens[s + 1:e] - 4).astype(np.uint8)).decode("utf-8") for s, e in zip(starts, starts[1:])]
    assert sorted(back) == sorted(docs)


def test_a_full_disk_is_one_line_and_keeps_the_earlier_export(docs_file, tmp_path):
    """A real full disk (a 64 KB tmpfs, root only): one line, exit 2, the earlier manifest kept and no temporary folder left."""
    with small_disk(tmp_path / "disk", "64k") as disk:
        (disk / "manifest.json").write_text("earlier")
        r = subprocess.run(CLI + ["--input", str(docs_file[0]), "--challenge", "--byte260", "--out", str(disk)], capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "No space left on device" in lines[0], r.stderr
        assert [p.name for p in disk.iterdir()] == ["manifest.json"] and (disk / "manifest.json").read_text() == "earlier"


def test_a_byte_order_mark_is_neither_json_nor_text(tmp_path):
    """A JSONL saved by a Windows editor starts with a UTF-8 byte-order mark: its first line was refused as `not a JSON object with a
    "text" field`. A .txt file's mark became the document's first three bytes. Both now export exactly as the same files without it."""
    docs = synthetic_documents(12, seed=3)
    for form, bom in (("plain", b""), ("bom", b"\xef\xbb\xbf")):
        (tmp_path / f"{form}.jsonl").write_bytes(bom + "".join(json.dumps({"text": d}) + "\n" for d in docs).encode())
        (tmp_path / f"{form}_txt").mkdir()
        for i, d in enumerate(docs):
            (tmp_path / f"{form}_txt" / f"{i:02d}.txt").write_bytes(bom + d.encode())
        for source in (f"{form}.jsonl", f"{form}_txt"):
            r = subprocess.run(CLI + ["--input", str(tmp_path / source), "--name", "c", "--byte260", "--out", str(tmp_path / f"out_{source}")],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
    shards = lambda out: [f.read_bytes() for f in sorted((tmp_path / out / "datasets/c_byte260").glob("*.bin"))]
    assert shards("out_bom.jsonl") == shards("out_plain.jsonl") and shards("out_bom_txt") == shards("out_plain_txt")
    assert len(shards("out_plain.jsonl")) == 2


# ---- compressed and Parquet input, written by the libraries that write them elsewhere ----

def compressed(raw: bytes, codec: str) -> bytes:
    """raw as each tool writes it: gzip in two members (as `cat a.gz b.gz` makes), the others one stream each."""
    import bz2
    import gzip
    import lzma
    half = len(raw) // 2 + 7  # mid-line
    return {"gz": lambda: gzip.compress(raw[:half]) + gzip.compress(raw[half:]), "bz2": lambda: bz2.compress(raw),
            "xz": lambda: lzma.compress(raw), "zst": lambda: __import__("zstandard").ZstdCompressor(level=3).compress(raw)}[codec]()


def write_parquet(path: Path, docs: list, **options) -> None:
    """FineWeb's own layout: a "text" column among others, in row groups (pyarrow, as Hugging Face's datasets writes Parquet)."""
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"id": [f"<urn:{i}>" for i in range(len(docs))], "text": docs, "token_count": [len(d) for d in docs]}),
                   path, **options)


def write_arrow(path: Path, docs: list, stream: bool = True) -> None:
    """Arrow IPC in batches of 7 rows: as a stream, what Hugging Face's datasets writes to its cache and save_to_disk, or as a file."""
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"text": docs, "id": list(range(len(docs)))})
    with (pa.ipc.new_stream if stream else pa.ipc.new_file)(str(path), table.schema) as writer:
        writer.write_table(table, max_chunksize=7)


def test_other_corpora_read_compressed_jsonl_parquet_and_folders_of_them_as_the_same_documents(tmp_path):
    """The same documents as a plain JSONL, as JSONL compressed by gzip (two members), bzip2, xz and zstd, as Parquet (pyarrow, row
    groups of 7, zstd pages inside), as Arrow (a stream, as Hugging Face's datasets caches it, and a file), and as a folder holding a
    Parquet part, a zstd JSONL part, an Arrow part, a README and hidden files (a Mac's ._ copy, a .git folder): every export writes
    the same shards and tokenizer, byte for byte."""
    from export_corpus import export_corpus
    pytest.importorskip("zstandard")
    docs = synthetic_documents(60, seed=21)
    raw = "".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)).encode()
    (tmp_path / "c.jsonl").write_bytes(raw)
    for codec in ("gz", "bz2", "xz", "zst"):
        (tmp_path / f"c.jsonl.{codec}").write_bytes(compressed(raw, codec))
    write_parquet(tmp_path / "c.parquet", docs, row_group_size=7, compression="zstd")
    write_arrow(tmp_path / "c.arrow", docs)
    write_arrow(tmp_path / "c_file.arrow", docs, stream=False)
    folder = tmp_path / "parts"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    write_parquet(folder / "a" / "000_00000.parquet", docs[:25])
    (folder / "b" / "more.jsonl.zst").write_bytes(compressed("".join(json.dumps({"text": d}) + "\n" for d in docs[25:40]).encode(), "zst"))
    write_arrow(folder / "b" / "rest.arrow", docs[40:])
    (folder / "README.md").write_text("# not a document\n")
    (folder / "a" / "._000_00000.parquet").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # a Mac's copy: AppleDouble
    (folder / ".git").mkdir()
    (folder / ".git" / "stray.jsonl").write_text(json.dumps({"text": "not part of the corpus"}) + "\n")
    outs = {}
    for source in ("c.jsonl", "c.jsonl.gz", "c.jsonl.bz2", "c.jsonl.xz", "c.jsonl.zst", "c.parquet", "c.arrow", "c_file.arrow", "parts"):
        outs[source] = export_corpus(tmp_path / source, tmp_path / f"out_{source}", "c", 400, 6, 0.05, 5000, 1337, workers=1).parent.parent
    files = sorted(p.relative_to(outs["c.jsonl"]) for p in outs["c.jsonl"].rglob("*") if p.is_file() and p.name != "manifest.json")
    assert len([f for f in files if f.suffix == ".bin"]) > 3 and any(f.suffix == ".model" for f in files)
    for source, out in outs.items():
        assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json") == files, source
        assert all((out / f).read_bytes() == (outs["c.jsonl"] / f).read_bytes() for f in files), source
        m = json.loads((out / "datasets/c_sp400/manifest.json").read_text())["datasets"][0]
        assert (m["stats"]["docs_val"], m["stats"]["docs_train"], m["source"]) == (6, 54, str(tmp_path / source))
    # A folder of .txt documents, some of them compressed (.txt.gz, .txt.xz), is the folder of the same plain ones.
    for form in ("plain", "mixed"):
        (tmp_path / form).mkdir()
        for i, d in enumerate(docs[:20]):
            codec = {1: "gz", 2: "xz"}.get(i % 3) if form == "mixed" else None
            (tmp_path / form / (f"{i:02d}.txt" + (f".{codec}" if codec else ""))).write_bytes(compressed(d.encode(), codec) if codec else d.encode())
        export_corpus(tmp_path / form, tmp_path / f"out_{form}", "t", None, 3, 0.05, 100_000, 1337, workers=1, tokenizer="byte260")
    shards = lambda form: [f.read_bytes() for f in sorted((tmp_path / f"out_{form}/datasets/t_byte260").glob("*.bin"))]
    assert len(shards("plain")) == 2 and shards("mixed") == shards("plain")


def test_a_compressed_docs_selected_exports_as_the_plain_one_with_its_sidecar(docs_file, exported, tmp_path):
    """--challenge reads docs_selected.jsonl.gz (or .bz2, .xz, .zst) as the plain file: its sidecar docs_selected.source_manifest.json
    is found beside it (docs_val 30), and shards, tokenizer and manifest are the plain export's, the documents' sha256 included."""
    path, _ = docs_file
    out, manifest = exported
    src = tmp_path / "docs_selected.jsonl.gz"
    src.write_bytes(compressed(path.read_bytes(), "gz"))
    (tmp_path / "docs_selected.source_manifest.json").write_bytes(path.with_name("docs_selected.source_manifest.json").read_bytes())
    again = export_challenge(src, tmp_path / "out", "--vocab-size", str(VOCAB), "--shard-tokens", "9000")
    assert again["docs_meta"].pop("path") == "docs_selected.jsonl.gz" and manifest["docs_meta"]["path"] == "docs_selected.jsonl"
    assert again == {**manifest, "docs_meta": {k: v for k, v in manifest["docs_meta"].items() if k != "path"}}
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert made and all((tmp_path / "out" / f).read_bytes() == (out / f).read_bytes() for f in made)


def test_compressed_or_parquet_input_that_cannot_be_read_is_one_line_and_replaces_nothing(tmp_path):
    """A stream cut short (gzip, zstd, Arrow: zstd's streaming reader, and pyarrow given an Arrow stream cut between batches, would have
    ended quietly at the cut), a corrupted xz, a Parquet file without a "text" column, with a null text, Latin-1 text or cut short, an Arrow file cut
    short or with corrupted offsets, a table given to --challenge, Parquet without pyarrow and zstd without zstandard: each one line that names the file, exit 2,
    and the earlier export untouched."""
    import lzma
    pytest.importorskip("zstandard")
    docs = synthetic_documents(30, seed=4)
    raw = "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()
    (tmp_path / "cut.jsonl.gz").write_bytes(compressed(raw, "gz")[:-30])
    (tmp_path / "cut.jsonl.zst").write_bytes(compressed(raw, "zst")[:-30])
    xz = bytearray(lzma.compress(raw))
    xz[len(xz) // 2] ^= 0xFF
    (tmp_path / "bad.jsonl.xz").write_bytes(bytes(xz))
    write_parquet(tmp_path / "ok.parquet", docs)
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"content": docs}), tmp_path / "other.parquet")
    pq.write_table(pa.table({"text": docs[:3] + [None]}), tmp_path / "null.parquet")
    # Latin-1 bytes in a string column (pyarrow writes what it is given): pyarrow's UnicodeDecodeError, a traceback until 2026-12-07
    latin = pa.array([d.encode() for d in docs[:9]] + [b"caf\xe9"], type=pa.binary()).view(pa.string())
    pq.write_table(pa.table({"text": latin}), tmp_path / "latin1.parquet")
    write_arrow(tmp_path / "latin1.arrow", latin)
    # An Arrow stream whose offsets (where each row's text starts) were corrupted: pyarrow trusts them, and the export died of SIGBUS
    # (one past the file's end) or a SystemError (a negative length), until 2026-12-07
    write_arrow(tmp_path / "sized.arrow", ["a" * 1001, "b" * 2003, "c" * 307])
    offsets = lambda second: np.array([0, second, 3004, 3311], dtype=np.int32).tobytes()
    for name, second in (("far_offset.arrow", 1 << 30), ("negative_offset.arrow", -5)):
        assert (tmp_path / "sized.arrow").read_bytes().count(offsets(1001)) == 1
        (tmp_path / name).write_bytes((tmp_path / "sized.arrow").read_bytes().replace(offsets(1001), offsets(second)))
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "ok.parquet").read_bytes()[:-40])
    write_arrow(tmp_path / "ok.arrow", docs)
    (tmp_path / "cut.arrow").write_bytes((tmp_path / "ok.arrow").read_bytes()[:-200])
    (tmp_path / "unended.arrow").write_bytes((tmp_path / "ok.arrow").read_bytes()[:-8])  # cut between batches: pyarrow reads it as whole
    write_arrow(tmp_path / "file.arrow", docs, stream=False)
    (tmp_path / "cut_file.arrow").write_bytes((tmp_path / "file.arrow").read_bytes()[:-100])
    without = lambda module: [sys.executable, "-c", f"import sys; sys.modules[{module!r}] = None; sys.path.insert(0, {str(ROOT / 'data')!r}); "
                              "import export_corpus; sys.exit(export_corpus.main(sys.argv[1:]))"]
    (tmp_path / "ok.jsonl.zst").write_bytes(compressed(raw, "zst"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("earlier")
    cases = [(CLI, "cut.jsonl.gz", [], "cut.jsonl.gz: its gzip stream ends early (a file cut short?)"),
             (CLI, "cut.jsonl.zst", [], "cut.jsonl.zst: its zstd stream ends early (a file cut short?)"),
             (CLI, "bad.jsonl.xz", [], "bad.jsonl.xz: not a valid xz stream (LZMAError: "),
             (CLI, "other.parquet", [], 'other.parquet: no "text" column (its columns: content; --text-field names another)'),
             (CLI, "null.parquet", [], 'null.parquet: row 4: "text" is null, not a string'),
             (CLI, "cut.parquet", [], "cut.parquet: not a readable Parquet file ("),
             (CLI, "latin1.parquet", [], "latin1.parquet: row 10 is not UTF-8 (UnicodeDecodeError: "),
             (CLI, "latin1.arrow", [], "latin1.arrow: row 10 is not UTF-8 (UnicodeDecodeError: "),
             (CLI, "far_offset.arrow", [], "far_offset.arrow: not a readable Arrow file (ArrowInvalid: Offset invariant failure: "),
             (CLI, "negative_offset.arrow", [], "negative_offset.arrow: not a readable Arrow file (ArrowInvalid: Offset invariant failure: "),
             (CLI, "cut.arrow", [], "cut.arrow: its Arrow stream ends early (no end-of-stream marker: a file cut short?)"),
             (CLI, "unended.arrow", [], "unended.arrow: its Arrow stream ends early"),
             (CLI, "cut_file.arrow", [], "cut_file.arrow: not a readable Arrow file ("),
             (CLI, "ok.arrow", ["--challenge", "--vocab-size", "300"], "ok.arrow: an Arrow file, where JSON lines are read"),
             (CLI, "ok.parquet", ["--challenge", "--vocab-size", "300"], "ok.parquet: a Parquet file, where JSON lines are read"),
             (without("pyarrow"), "ok.parquet", [], "ok.parquet: a Parquet file needs the pyarrow package; install it with `python3 -m pip install "
              "pyarrow`"),
             (without("zstandard"), "ok.jsonl.zst", [], "ok.jsonl.zst: zstd-compressed input needs the zstandard package; install it with")]
    for cli, name, args, message in cases:
        r = subprocess.run(cli + ["--input", str(tmp_path / name), *(args or ["--name", "c"]), "--out", str(out)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and r.stderr.startswith(f"error: --input {tmp_path / name}: ") and message in r.stderr, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert [p.name for p in out.iterdir()] == ["manifest.json"] and (out / "manifest.json").read_text() == "earlier"


def test_the_exporters_own_arguments_are_checked_in_one_line_before_any_work(tmp_path):
    """Found by hand with hostile values (2026-12-07): `--workers 100000` forked thousands of encoders until the machine ran out of
    memory; `--vocab-size 0` exported at the default, 1024; a missing --name was `--name None`; a 300-character name failed at the
    first file, its name too long; an --out that is a file was mkdir's `File exists`. Each is one line now, exit 2, nothing written."""
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in synthetic_documents(20, seed=3)))
    (tmp_path / "a_file").write_text("kept")
    most = 4 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    cases = [(["--name", "c", "--workers", "100000"], f"--workers 100000: accepted 1 to {most} (4 a core here: more encode no faster"),
             (["--name", "c", "--vocab-size", "0"], "--vocab-size 0: accepted 260 to 65536"),
             ([], "--name: missing; a corpus other than the challenge's needs one, for datasets/<name>_*/ (or give --challenge)"),
             (["--name", "a" * 300], f"--name '{'a' * 60}'... (300 characters): accepted 1 to 200 letters, digits, _ and -"),
             (["--name", "c", "--out", str(tmp_path / "a_file")], f"--out {tmp_path / 'a_file'}: not a folder; accepted a folder, made if missing")]
    for args, said in cases:
        out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
        r = subprocess.run(CLI + ["--input", str(tmp_path / "docs.jsonl"), *args, *out], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith(f"error: {said}") and r.stderr.count("\n") == 1, (args[:4], r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "docs.jsonl"] and (tmp_path / "a_file").read_text() == "kept"


def test_other_corpora_take_the_document_from_the_field_text_field_names(tmp_path):
    """Corpora that keep the document elsewhere (The Stack: "content"): --text-field content reads JSON lines and Parquet as the same
    documents under "text" (byte-identical shards and tokenizer; the manifest says which field). Without it, the line or file names
    the fields it has; with --challenge, whose documents are in "text", it is refused. Each refusal one line, exit 2."""
    docs = synthetic_documents(40, seed=8)
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "content.jsonl").write_text("".join(json.dumps({"content": d, "lang": "en", "text": 7}) + "\n" for d in docs))
    (tmp_path / "lines").mkdir()
    (tmp_path / "lines" / "content.jsonl").write_text("".join(json.dumps({"content": d, "lang": "en"}) + "\n" for d in docs))
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"content": docs, "stars": list(range(len(docs)))}), tmp_path / "content.parquet", row_group_size=9)
    export = lambda src, out, *more: subprocess.run(CLI + ["--input", str(tmp_path / src), "--name", "c", "--vocab-size", "320", "--val-docs", "4",
                                                           "--out", str(tmp_path / out), *more], capture_output=True, text=True, timeout=120)
    for src, out, more in (("text.jsonl", "ref", []), ("content.jsonl", "jl", ["--text-field", "content"]),
                           ("content.parquet", "pq", ["--text-field", "content"])):
        r = export(src, out, *more)
        assert r.returncode == 0, r.stderr
    files = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*") if p.is_file() and p.name != "manifest.json")
    for out in ("jl", "pq"):
        assert all((tmp_path / out / f).read_bytes() == (tmp_path / "ref" / f).read_bytes() for f in files), out
        assert json.loads((tmp_path / out / "datasets/c_sp320/manifest.json").read_text())["datasets"][0]["text_field"] == "content"
    assert "text_field" not in json.loads((tmp_path / "ref/datasets/c_sp320/manifest.json").read_text())["datasets"][0]
    for src, more, said in (("lines", [], 'content.jsonl: line 1 is not a JSON object with a "text" field (its fields: content, lang)'),
                            ("content.jsonl", [], 'content.jsonl: line 1: "text" is not a string'),
                            ("content.parquet", [], 'content.parquet: no "text" column (its columns: content, stars; --text-field names another)'),
                            ("content.jsonl", ["--challenge", "--text-field", "content"], "--text-field content: the challenge's documents are in"),
                            ("text.jsonl", ["--text-field", ""], "--text-field '': empty")):
        r = export(src, "bad", *more)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and said in r.stderr and r.stderr.count("\n") == 1, (src, r.stderr)
        assert not (tmp_path / "bad").exists()


def test_what_hugging_faces_datasets_writes_exports_as_the_same_documents(tmp_path, monkeypatch):
    """The files of a corpus as Hugging Face's `datasets` library leaves them: save_to_disk's folder (two Arrow shards beside
    dataset_info.json and state.json), the Arrow file of its cache after load_dataset("json", ...), and its to_parquet and to_json
    files. Each exports byte for byte as our own JSONL of the same documents."""
    from export_corpus import export_corpus
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    docs = synthetic_documents(50, seed=31)
    (tmp_path / "ours.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    ds = datasets.Dataset.from_dict({"text": docs, "id": list(range(len(docs)))})
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=2)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow",
                                                                       "dataset_info.json", "state.json"]
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "ours.jsonl"), cache_dir=str(tmp_path / "cache"), split="train")
    (cached,) = [Path(f["filename"]) for f in loaded.cache_files]
    ds.to_parquet(str(tmp_path / "hf.parquet"))
    ds.to_json(str(tmp_path / "hf.jsonl"))
    outs = {src: export_corpus(path, tmp_path / f"out_{src}", "c", 400, 5, 0.05, 6000, 1337, workers=1).parent.parent
            for src, path in (("ours", tmp_path / "ours.jsonl"), ("saved", tmp_path / "saved"), ("cache", cached),
                              ("parquet", tmp_path / "hf.parquet"), ("json", tmp_path / "hf.jsonl"))}
    files = sorted(p.relative_to(outs["ours"]) for p in outs["ours"].rglob("*") if p.is_file() and p.name != "manifest.json")
    assert len([f for f in files if f.suffix == ".bin"]) > 2
    for src, out in outs.items():
        assert all((out / f).read_bytes() == (outs["ours"] / f).read_bytes() for f in files), src


def test_a_docs_selected_its_sidecar_does_not_describe_is_one_line_and_replaces_nothing(docs_file, tmp_path):
    """docs_selected.jsonl cut short in a copy (a full disk on the way, `head -n`), or changed, beside the sidecar of the whole file:
    the export used to go on, and its manifest gave the sidecar (num_docs 241, the published sha256) for other documents. Now the
    sidecar's num_docs and docs_sha256 (of the plain file's bytes, a compressed copy's too) are checked: one line, nothing written;
    with the sidecar moved away the same documents export as they are."""
    path, docs = docs_file
    sidecar = path.with_name("docs_selected.source_manifest.json")
    lines = path.read_bytes().splitlines(keepends=True)
    forms = {"cut": b"".join(lines[:100]), "changed": path.read_bytes().replace(b'"id": 7}', b'"id": 8}', 1)}
    said = {"cut": f"(num_docs {len(docs)}, the input 100)", "changed": f"(docs_sha256 {json.loads(sidecar.read_text())['docs_sha256']}, the input "}
    for form, data in forms.items():
        folder = tmp_path / form
        folder.mkdir()
        (folder / "docs_selected.jsonl").write_bytes(data)
        (folder / sidecar.name).write_bytes(sidecar.read_bytes())
        (folder / "out").mkdir()
        (folder / "out" / "manifest.json").write_text("earlier")
        r = subprocess.run(CLI + ["--input", str(folder / "docs_selected.jsonl"), "--challenge", "--byte260", "--out", str(folder / "out")],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(f"error: {folder / sidecar.name}: describes other documents than --input {folder / 'docs_selected.jsonl'} "
                                   + said[form]) and "move the sidecar away" in r.stderr, r.stderr
        assert [p.name for p in (folder / "out").iterdir()] == ["manifest.json"] and (folder / "out/manifest.json").read_text() == "earlier"
    (tmp_path / "cut" / sidecar.name).unlink()
    m = export_challenge(tmp_path / "cut" / "docs_selected.jsonl", tmp_path / "cut" / "out", "--byte260", "--num-val-docs", "10")
    assert m["num_docs"] == 100 and m["docs_meta"]["source_manifest"] is None


@pytest.mark.parametrize("target, signum", [("group", signal.SIGINT), ("exporter", signal.SIGTERM)], ids=["ctrl_c", "kill"])
def test_a_signal_stops_an_export_with_one_line_and_keeps_the_earlier_one(tmp_path, target, signum):
    """Ctrl-C (SIGINT to the terminal's process group: the exporter and its encoding workers) or `kill PID` of the exporter, while
    it writes shards: one line, exit status 128 + the signal's number, the earlier export's files as they were, no staging folder
    and no worker left. Before, Ctrl-C printed a KeyboardInterrupt traceback from every worker and the exporter."""
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(3000)])
    source = tmp_path / "big.jsonl"
    with open(source, "w") as f:
        for row in rng.integers(0, 3000, size=(40000, 100)):
            f.write(json.dumps({"text": " ".join(words[row])}) + "\n")
    out = tmp_path / "out"
    earlier = {out / "datasets/big_sp1024/big_val_000000.bin": b"earlier shard", out / "tokenizers/big_1024_bpe.model": b"earlier model"}
    for path, data in earlier.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    proc = subprocess.Popen(CLI + ["--input", str(source), "--name", "big", "--out", str(out), "--workers", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    for _ in range(1200):  # the tokenizer is trained: the workers are encoding
        if list(out.glob(".big_export_*/datasets/big_sp1024")) or proc.poll() is not None:
            break
        time.sleep(0.05)
    (os.killpg if target == "group" else os.kill)(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and err == (f"error: stopped by {signal.Signals(signum).name}; nothing of this export was written "
                                                        f"to {out} (an earlier export there is kept); rerun the same command\n"), err[-3000:]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == earlier and sorted(p.name for p in out.iterdir()) == ["datasets", "tokenizers"]
    assert not live_processes(lambda proc: str(source).encode() in (proc / "cmdline").read_bytes())  # no worker: its command line
