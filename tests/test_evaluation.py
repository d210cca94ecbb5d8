"""EVALUATION: byte accounting, the window plan, plain and sliding evaluation."""

import io
import json
import math
import zlib

import numpy as np
import pytest
import sentencepiece as spm
import torch

from bench_peer import house_name  # the house's names of q, k, v and o as ours
from conftest import ROOT
from train_gpt import GPT, Hyperparameters, eval_batch_seqs, evaluate, load_validation_tokens, quantize_state_dict, target_bytes, window_plan


def test_target_bytes_match_a_direct_decode(tiny_data):
    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    counts = lambda ids: target_bytes(sp, torch.tensor(ids, dtype=torch.int32), sp.vocab_size())
    assert counts([1, 0, 1, 2, 3]).tolist() == [0, 0, 0, 0, 0]  # pad, BOS, EOS, unknown: no bytes
    assert (counts([1] + list(range(4, 260)))[1:] == 1).all()  # the 256 byte-fallback pieces count one byte each
    docs = tiny_data["val_docs"] + ["naïve café 🙂 — 日本 12345", "x"]
    total_bytes = total_decoded = 0
    for doc in docs:
        ids = [1] + sp.encode(doc)  # BOS then the document, as in the shards
        counted = int(counts(ids).sum())
        decoded = len(sp.decode(ids[1:]).encode("utf-8"))
        assert counted == decoded, doc[:60]
        total_bytes, total_decoded = total_bytes + counted, total_decoded + decoded
    assert total_bytes == total_decoded > 10_000
    # Across a document boundary (BOS) the leading space of the next document's first piece is
    # not a byte of the text; within a document it is.
    assert int(counts([1] + sp.encode(docs[0]) + [1] + sp.encode(docs[1])).sum()) == \
        len(sp.decode(sp.encode(docs[0])).encode()) + len(sp.decode(sp.encode(docs[1])).encode())


# The challenge's character-level tokenizer (its data README's char workflow): ids 0-3 pad, bos, eos, unk, then one a character.
CHAR = {"tokenizer_type": "char", "config": {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3, "chars": [" ", "é", "中", "😀"]},
        "vocab_size": 8}


def with_config(**changes):
    return {**CHAR, "config": {**CHAR["config"], **changes}}


@pytest.mark.parametrize("tok, why", [
    (CHAR, None),
    ({"tokenizer_type": "pure_byte", "config": {"byte_offset": 4}, "vocab_size": 260}, None),
    (with_config(chars=[" ", "é", " ", "😀"]), "tokenizer_type 'char', vocab_size 8; accepted: pure_byte with 256 byte ids within the "
     "vocabulary, or char with its chars each one character, once, and vocab_size = unk_id + 1 + their number"),  # a character twice
    (with_config(chars=[" ", "é", "ab", "😀"]), "tokenizer_type 'char', vocab_size 8; accepted"),  # two characters in one id
    (with_config(chars=" é中😀"), "tokenizer_type 'char', vocab_size 8; accepted"),  # a string, not a list
    ({**CHAR, "vocab_size": 9}, "tokenizer_type 'char', vocab_size 9; accepted"),  # one id without a character
    (with_config(chars=[" ", "é", "中", "\ud83d"]), "(UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud83d'"),  # half a pair
    (with_config(unk_id="3"), "(TypeError: can only concatenate str"),
    ({"tokenizer_type": "pure_byte", "config": {"byte_offset": 5}, "vocab_size": 260}, "tokenizer_type 'pure_byte', vocab_size 260; accepted"),
    ({"tokenizer_type": "wordpiece", "vocab_size": 8}, "tokenizer_type 'wordpiece', vocab_size 8; accepted"),
])
def test_the_challenges_json_tokenizers_count_utf8_bytes_and_a_malformed_one_is_one_line(tmp_path, tok, why):
    """A char tokenizer's i-th character is id unk_id + 1 + i and counts its UTF-8 bytes (1 to 4); pad, BOS, EOS and unk count none.
    What the challenge's format cannot hold (a character twice, two in one id, a vocabulary that is not unk_id + 1 + their number, half a
    surrogate pair, an unk_id that is text) is refused in one line that names the file and what is accepted."""
    from export_corpus import write_shard
    from train_gpt import DataError, load_eval_data

    (tmp_path / "d").mkdir()
    write_shard(tmp_path / "d/x_val_000000.bin", np.array([1, 4, 5, 6, 7, 3, 2, 0, 1, 7, 7, 4], dtype=np.uint16))
    (tmp_path / "t.json").write_text(json.dumps(tok), encoding="utf-8")
    if why is None:
        _, token_bytes, _, kind = load_eval_data(str(tmp_path / "d"), str(tmp_path / "t.json"), tok["vocab_size"], 4, "cpu")
        expected = [0, 1, 2, 3, 4, 0, 0, 0, 0, 4, 4, 1] if kind == "char" else [0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1]
        assert token_bytes.tolist() == expected
        return
    with pytest.raises(DataError) as e:
        load_eval_data(str(tmp_path / "d"), str(tmp_path / "t.json"), tok["vocab_size"], 4, "cpu")
    message = str(e.value)
    assert message.startswith(f"TOKENIZER_PATH={tmp_path / 't.json'}: not a JSON tokenizer (the kinds read: SentencePiece's .model, not "
                              "its .vocab, and the challenge's JSON pure_byte and char) (") and why in message and "\n" not in message, message


@pytest.mark.parametrize("n, seq, stride", [(64, 16, 16), (64, 16, 4), (70, 16, 5), (64, 16, 1), (17, 16, 3), (16, 16, 7), (1000, 64, 48)])
def test_window_plan_scores_every_target_exactly_once(n, seq, stride):
    starts, score_from = window_plan(n, seq, stride)
    scored = np.zeros(n + 1, dtype=int)  # index t = target token t (targets are 1..n)
    for s, f in zip(starts, score_from):
        assert 0 <= s <= n - seq and 0 <= f < seq
        scored[s + 1 + f: s + 1 + seq] += 1
        if s != starts[0]:
            assert f >= seq - stride  # every later window scores at most its last `stride`: full context for the rest
    assert scored[0] == 0 and (scored[1:] == 1).all()
    assert score_from[0] == 0 and starts[0] == 0 and starts[-1] == n - seq


def test_window_plan_at_stride_equal_context_is_the_plain_split():
    starts, score_from = window_plan(96, 32, 32)
    assert starts == [0, 32, 64] and score_from == [0, 0, 0]


def tiny_model(seed=0, seq=32):
    cfg = Hyperparameters({"VOCAB_SIZE": "1024", "NUM_LAYERS": "2", "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1",
                           "TRAIN_SEQ_LEN": str(seq)})
    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():  # move away from the zero-initialised projections so every position matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def val_setup(tiny_data):
    sp = spm.SentencePieceProcessor(model_file=tiny_data["tokenizer_path"])
    tokens = load_validation_tokens(tiny_data["data_path"], 32, 1024)
    return tokens[:3001], target_bytes(sp, tokens[:3001], 1024)


def test_sliding_at_stride_equal_context_equals_plain_exactly(val_setup):
    tokens, token_bytes = val_setup
    model = tiny_model()
    plain = evaluate(model, tokens, 32, 32, 8, token_bytes)
    sliding = evaluate(model, tokens, 32, 32, 8, token_bytes)
    assert plain == sliding
    assert plain[2] == (3000 // 32) * 32
    # Direct: one forward per non-overlapping window, mean loss weighted by tokens.
    with torch.no_grad():
        nll = [model(tokens[s:s + 32][None].long(), tokens[s + 1:s + 33][None].long()).double().sum() for s in range(0, plain[2], 32)]
    assert math.isclose(plain[0], float(sum(nll)) / plain[2], rel_tol=1e-9)


@pytest.mark.parametrize("stride", [8, 13, 31])
def test_sliding_matches_a_direct_per_token_computation(val_setup, stride):
    tokens, token_bytes = val_setup
    tokens, token_bytes = tokens[:801], token_bytes[:801]
    seq, model = 32, tiny_model(1)
    loss, bpb, scored = evaluate(model, tokens, seq, stride, 5, token_bytes)
    n = (800 // seq) * seq
    assert scored == n
    # Each target t is predicted from the window the FACTS rule assigns it: the first window
    # for t <= seq, else the regular window whose last `stride` positions hold t, or the
    # final window aligned with the end.
    total = 0.0
    last_regular = ((n - seq) // stride) * stride
    with torch.no_grad():
        for t in range(1, n + 1):
            if t <= seq:
                s = 0
            else:
                s = -(-(t - seq) // stride) * stride
                if s > last_regular:
                    s = n - seq
            out = model(tokens[s:s + seq][None].long(), tokens[s + 1:s + seq + 1][None].long())
            total += float(out[0, t - s - 1])
    assert math.isclose(loss, total / n, rel_tol=1e-6)
    nbytes = int(token_bytes[1:n + 1].sum())  # each target's bytes, positions 1 to n (target_bytes is checked against decoding above)
    assert math.isclose(bpb, total / n / math.log(2) * n / nbytes, rel_tol=1e-6)


def test_eval_does_not_change_training_behaviour_of_rotary_cache():
    """The FACTS pitfall: RoPE tables made inside no-grad/inference evaluation must not break a
    later backward pass without compile."""
    model = tiny_model(4)
    x = torch.randint(0, 1024, (2, 32))
    with torch.inference_mode():
        model(x, x)
    model.train()
    model(x, x).mean().backward()
    assert model.tok_emb.weight.grad is not None


def test_a_stride_past_the_context_is_refused_not_scored_in_part():
    """A stride of 1000 on a 128 context would score 2,304 of 16,384 targets: refused instead."""
    from train_gpt import ConfigError

    with pytest.raises(ConfigError, match="^EVAL_STRIDE=1000: accepted 1 to the context length 128$"):
        window_plan(16384, 128, 1000)
    starts, score_from = window_plan(16384, 128, 128)
    assert sum(128 - f for f in score_from) == 16384


PEER_FIXTURE = ROOT / "tests" / "fixtures" / "peer_artifact"  # made by the challenge's own script: make.py there says how


def test_the_challenge_scripts_own_artifact_scores_what_its_log_says():
    """The house's artifact format, read weights-only here (zlib over torch.save: int8 rows with fp16 scales, and tensors kept as
    they are), holds the tensors of our model under the house's names; train_gpt.py's evaluation of those weights on the shard and
    tokenizer the house's script scored them on gives the house's logged val_loss and val_bpb (it sums in fp32 batch means, we in
    float64: the last digits may differ). And our export keeps the same small tensors the house keeps, in the same dtypes."""
    reference = json.loads((PEER_FIXTURE / "reference.json").read_text())
    blob = torch.load(io.BytesIO(zlib.decompress((PEER_FIXTURE / "peer_final_model.int8.ptz").read_bytes())), weights_only=True)
    state = {n: q.float() * blob["scales"][n].float().view(-1, *[1] * (q.ndim - 1)) for n, q in blob["quantized"].items()}
    state.update({n: t.float() for n, t in blob["passthrough"].items()})
    cfg = Hyperparameters(reference["env"])
    model = GPT(cfg)
    model.load_state_dict({house_name(n): t for n, t in state.items()}, strict=True)  # every tensor of ours, no other, same shapes
    sp = spm.SentencePieceProcessor(model_file=str(PEER_FIXTURE / "tokenizer.model"))
    tokens = load_validation_tokens(str(PEER_FIXTURE), cfg.train_seq_len, cfg.vocab_size)
    loss, bpb, scored = evaluate(model.eval(), tokens, cfg.train_seq_len, cfg.train_seq_len, 64, target_bytes(sp, tokens, cfg.vocab_size))
    theirs = reference["final_int8_zlib_roundtrip_exact"]
    assert scored == (tokens.numel() - 1) // cfg.train_seq_len * cfg.train_seq_len
    assert abs(loss - theirs["val_loss"]) < 1e-6 and abs(bpb - theirs["val_bpb"]) < 1e-6, (loss, bpb, theirs)
    ours, _ = quantize_state_dict({house_name(n): t for n, t in state.items()})
    assert {n: t.dtype for n, t in ours["keep"].items()} == {house_name(n): t.dtype for n, t in blob["passthrough"].items()}
    assert sorted(ours["q"]) == sorted(map(house_name, blob["quantized"]))


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_a_ranks_evaluation_batch_is_the_houses_share_of_val_batch_size(world):
    """The house splits VAL_BATCH_SIZE as a training step, over world size x its 8 / world size micro-steps: each rank's forward
    holds 1/8 of it at any world size. This script divided by the world size alone: on one GPU (and on a CPU) its batches were 8
    times the house's, 512 sequences of 1,024 tokens at the default, and the demo's 128 of 256 (the same scores, to the last digit,
    in 12.9-13.0 s where they took 16.8-17.5, measured 2026-12-05 on the demo's artifact; and 8 times the memory)."""
    split = 62_914_560  # FineWeb's validation split, about
    cfg = Hyperparameters({})
    assert eval_batch_seqs(cfg, world, None, split) == 524_288 // 8 // 1024 == 64
    demo = Hyperparameters({"TRAIN_SEQ_LEN": "256", "VAL_BATCH_SIZE": "32768", "GRAD_ACCUM_STEPS": "4"})
    assert eval_batch_seqs(demo, world, None, split) == 16  # GRAD_ACCUM_STEPS is training's: the house's is always 8 / world size
    assert eval_batch_seqs(demo, world, 128, split) == 16 and eval_batch_seqs(demo, world, None, 257 * 3) == -(-3 // world)  # a rank's windows
