"""MODEL: the baseline architecture, its parameter count, dtypes and compile."""

import pytest
import torch

from train_gpt import GPT, MLP, Hyperparameters, ReluSquaredCPU, Rotary, rms_norm


def small(**env):
    base = {"VOCAB_SIZE": "1024", "NUM_LAYERS": "3", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "TRAIN_SEQ_LEN": "32"}
    base.update(env)
    return Hyperparameters(base)


def test_baseline_parameter_count_is_the_published_one():
    """model_params:17059912 in the naive baseline's log, from FACTS.md's description alone."""
    model = GPT(Hyperparameters({}))
    assert sum(p.numel() for p in model.parameters()) == 17_059_912
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes["tok_emb.weight"] == (1024, 512) and shapes["skip_weights"] == (4, 512)
    assert shapes["blocks.0.attn.k.weight"] == (256, 512) and shapes["blocks.0.mlp.fc.weight"] == (1024, 512)
    assert shapes["blocks.8.resid_mix"] == (2, 512) and shapes["blocks.8.attn.q_gain"] == (8,)
    assert not any("bias" in n for n in shapes)


def test_initialisation_follows_the_baseline():
    torch.manual_seed(0)
    model = GPT(Hyperparameters({}))
    for block in model.blocks:
        assert torch.count_nonzero(block.attn.o.weight) == 0 and torch.count_nonzero(block.mlp.proj.weight) == 0
        assert torch.equal(block.resid_mix[0], torch.ones(512)) and torch.equal(block.resid_mix[1], torch.zeros(512))
        assert torch.equal(block.attn.q_gain, torch.full((8,), 1.5))
        assert torch.equal(block.attn_scale, torch.ones(512)) and torch.equal(block.mlp_scale, torch.ones(512))
    assert abs(model.tok_emb.weight.std().item() - 0.005) < 2e-4
    assert torch.equal(model.skip_weights, torch.ones(4, 512))
    assert model.lm_head is None


def test_untrained_loss_is_uniform_and_logits_are_capped():
    model = GPT(small())
    x, y = torch.randint(0, 1024, (2, 32)), torch.randint(0, 1024, (2, 32))
    loss = model(x, y)
    assert loss.shape == (2, 32) and loss.dtype == torch.float32
    assert abs(loss.mean().item() - torch.log(torch.tensor(1024.0)).item()) < 0.05  # tiny embedding: near-uniform
    with torch.no_grad():
        model.tok_emb.weight.mul_(1e4)
    assert model(x, y).max() < 2 * 30 + 10  # softcap bounds the logits, so the loss stays finite


def test_causality():
    torch.manual_seed(1)
    model = GPT(small())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randint(0, 1024, (1, 32))
    y = torch.randint(0, 1024, (1, 32))
    a = model(x, y)
    x2 = x.clone()
    x2[0, 20:] = (x2[0, 20:] + 1) % 1024
    b = model(x2, y)
    assert torch.allclose(a[0, :20], b[0, :20], atol=1e-6) and not torch.allclose(a[0, 20:], b[0, 20:])


def test_untied_head_and_odd_layer_counts():
    for layers in ("1", "2", "5"):
        model = GPT(small(NUM_LAYERS=layers, TIE_EMBEDDINGS="0"))
        assert model.lm_head is not None and torch.count_nonzero(model.lm_head.weight) == 0
        x = torch.randint(0, 1024, (2, 16))
        model(x, x).mean().backward()
        assert model.skip_weights.shape[0] == int(layers) // 2


def test_rotary_is_a_rotation_of_each_pair():
    rot = Rotary(8, 16, 10000.0)
    x = torch.randn(1, 1, 16, 8)
    y = rot(x)
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-5)
    assert torch.equal(y[..., 0, :], x[..., 0, :])  # position 0: angle 0
    assert "cos" not in rot.state_dict()  # rebuilt, never saved


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.parametrize("shape,transposed", [((2, 3, 64), False), ((2, 4, 5, 16), True), ((3, 7, 33), False)])
def test_rms_norm_and_its_gradient_are_autograds_bit_for_bit(shape, transposed):
    """The CPU training path's own backward (fewer passes) must give exactly what autograd gives through F.rms_norm, as the peer runs it,
    also where the input is used again beside the norm (a residual: its gradient is then a sum of three terms, kept in autograd's order)."""
    torch.manual_seed(0)
    x, grad, w = torch.randn(shape) * 3, torch.randn(shape), torch.randn(shape[-1])
    def run(norm):
        leaf = x.clone().requires_grad_()
        inp = leaf.transpose(0, 1) if transposed else leaf  # q and k are normalised as transposed views
        y = norm(inp)
        (y * w + inp).backward(grad.transpose(0, 1) if transposed else grad)
        return y, leaf.grad
    (y_ours, g_ours), (y_theirs, g_theirs) = run(rms_norm), run(lambda t: torch.nn.functional.rms_norm(t, (shape[-1],)))
    assert same_bits(y_ours.contiguous(), y_theirs.contiguous()) and same_bits(g_ours, g_theirs)
    with torch.no_grad():  # evaluation: the fused kernel, as in the peer
        assert same_bits(rms_norm(x), torch.nn.functional.rms_norm(x, (shape[-1],)))


def test_relu_squared_and_its_gradient_are_autograds_bit_for_bit():
    """The MLP's activation on the CPU training path (a backward of one pass) against autograd through relu(h).square(), as the peer runs
    it: zeros and negative zeros of h under negative gradients included (there autograd's mask gives +0, a bare 2 g relu(h) gives -0)."""
    torch.manual_seed(0)
    h, grad = torch.randn(4, 64) * 3, torch.randn(4, 64)
    h[0, :8], h[0, 8:16], grad[0, :16] = 0.0, -0.0, -1.0
    def run(fn):
        leaf = h.clone().requires_grad_()
        y = fn(leaf)
        y.backward(grad)
        return y, leaf.grad
    ours, theirs = run(ReluSquaredCPU.apply), run(lambda t: torch.relu(t).square())
    assert same_bits(ours[0], theirs[0]) and same_bits(ours[1], theirs[1])
    assert not same_bits(2 * grad * torch.relu(h), theirs[1])  # the case that needs the function's + 0 is in the data
    cfg = Hyperparameters({"MODEL_DIM": "16", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "MLP_MULT": "3"})
    mlp, x, out_grad = MLP(cfg, 0), torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    torch.nn.init.normal_(mlp.proj.weight)  # not zero, so that the activation gets a gradient
    grads = []
    for forward in (mlp, lambda t: mlp.proj(torch.relu(mlp.fc(t)).square())):  # the model's MLP, then the formula on autograd
        mlp.zero_grad()
        forward(x).backward(out_grad)
        grads.append([p.grad.clone() for p in mlp.parameters()])
    assert all(same_bits(a, b) for a, b in zip(*grads))


def test_rotary_and_its_gradient_are_the_halves_formula_bit_for_bit():
    torch.manual_seed(0)
    rot, half = Rotary(16, 32, 10000.0), 8
    x, grad = torch.randn(2, 3, 32, 16), torch.randn(2, 3, 32, 16)
    cos, sin = rot.cos[..., :half], rot.sin[..., :half]
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    x1, x2 = theirs[..., :half], theirs[..., half:]
    y_ours, y_theirs = rot(ours), torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)
    y_ours.backward(grad), y_theirs.backward(grad)
    assert same_bits(y_ours, y_theirs) and same_bits(ours.grad, theirs.grad)


def test_bf16_autocast_forward_and_backward():
    """The CUDA path's dtypes (bf16 autocast over fp32 master weights), run on CPU."""
    model = GPT(small())
    x = torch.randint(0, 1024, (2, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(x, x)
    assert loss.dtype == torch.float32
    loss.mean().backward()
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_compiles_with_fullgraph():
    torch._dynamo.reset()
    model = GPT(small())
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=False)
    x = torch.randint(0, 1024, (2, 32))
    assert torch.allclose(compiled(x, x), model(x, x), atol=1e-6)
    compiled(x, x).mean().backward()


# ---- hashed bigram embedding, ensembles, distillation ----

def test_bigram_buckets_are_deterministic_in_range_and_mixed():
    from train_gpt import bigram_buckets, mix32
    ids = torch.randint(0, 1024, (4, 50), generator=torch.Generator().manual_seed(0))
    b = bigram_buckets(ids, 8192)
    assert b.dtype == torch.int64 and b.min() >= 0 and b.max() < 8192 and torch.equal(b, bigram_buckets(ids.clone(), 8192))
    for r, t in [(0, 0), (1, 7), (3, 49)]:
        prev = int(ids[r, t - 1]) if t else 0  # the first position of a window pairs with id 0
        assert int(b[r, t]) == mix32(prev * 65536 + int(ids[r, t])) % 8192
    pairs = torch.stack(torch.meshgrid(torch.arange(1024), torch.arange(1024), indexing="ij"), -1).reshape(-1, 2)
    counts = torch.bincount(bigram_buckets(pairs, 8192)[:, 1], minlength=8192)
    assert counts.min() > 64 and counts.max() < 200  # all 1M pairs spread evenly (mean 128)


@pytest.mark.filterwarnings("ignore:.*script_method.*:DeprecationWarning")  # torch's own, as inductor's passes import
@pytest.mark.parametrize("simdlen", [None, 256])
def test_bigram_buckets_compiled_by_inductor_are_eagers(cxx, simdlen):
    """Inductor's C++ kernels at this CPU's widest vectors and at AVX2's 256 bits (an AMD EPYC's): there the int64 % of torch 2.5 to 2.12 gave
    r + buckets for every r > 0, so a compiled run read other buckets than eager did (or failed the embedding's index check)."""
    from train_gpt import bigram_buckets
    ids = torch.randint(0, 1024, (4, 64), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    with torch._inductor.config.patch({"cpp.simdlen": simdlen}):
        compiled = torch.compile(bigram_buckets, fullgraph=True, dynamic=False)
        assert all(torch.equal(compiled(ids, n), bigram_buckets(ids, n)) for n in (64, 100))
    torch._dynamo.reset()


def test_bigram_starts_as_a_no_op_and_learns():
    torch.manual_seed(0)
    model = GPT(small(BIGRAM_BUCKETS="512", BIGRAM_DIM="16"))
    x = torch.randint(0, 1024, (2, 32))
    with_bigram = model(x, x)
    bigram, model.bigram = model.bigram, None
    assert torch.equal(with_bigram, model(x, x))  # the projection starts at zero
    model.bigram = bigram
    model(x, x).mean().backward()
    assert model.bigram_proj.weight.grad.abs().sum() > 0
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in GPT(small()).parameters()) + 512 * 16 + 16 * 64


def test_ensemble_scores_the_mean_probability():
    from train_gpt import Ensemble, build_model
    torch.manual_seed(0)
    ens = build_model(small(NUM_MODELS="2", FREEZE_MODE="adapter"))
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    assert ens.members[1].cfg.base_seed == ens.members[0].cfg.base_seed + 1  # members regenerate different bases
    assert not torch.equal(ens.members[0].blocks[0].attn.q.base, ens.members[1].blocks[0].attn.q.base)
    with torch.no_grad():
        for p in ens.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, y = torch.randint(0, 1024, (2, 16)), torch.randint(0, 1024, (2, 16))
    probs = torch.stack([torch.softmax(m.logits(x), -1) for m in ens.members]).mean(0)
    expected = -torch.log(probs.gather(-1, y[..., None])[..., 0])
    ens.eval()
    assert torch.allclose(ens(x, y), expected, atol=1e-5)
    assert torch.allclose(torch.softmax(ens.logits(x), -1), probs, atol=1e-6)
    ens.train()
    assert torch.allclose(ens(x, y), torch.stack([m(x, y) for m in ens.members]).mean(0))


def test_distillation_loss():
    torch.manual_seed(0)
    model = GPT(small())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, y = torch.randint(0, 1024, (2, 16)), torch.randint(0, 1024, (2, 16))
    teacher = torch.randn(2, 16, 1024)
    assert torch.equal(model(x, y, teacher, alpha=0.0, temp=2.0), model(x, y))  # alpha 0: plain cross-entropy
    same = model(x, y, model.logits(x).detach(), alpha=1.0, temp=3.0)
    assert same.abs().max() < 1e-5  # KL to itself
    t, s = torch.log_softmax(teacher / 2, -1), torch.log_softmax(model.logits(x) / 2, -1)
    kl = (t.exp() * (t - s)).sum(-1)
    assert torch.allclose(model(x, y, teacher, alpha=0.25, temp=2.0), 0.75 * model(x, y) + 0.25 * 4 * kl, atol=1e-5)
