"""OPTIMIZER: Muon's Newton-Schulz orthogonalisation and update, the parameter split."""

import torch

from train_gpt import GPT, Hyperparameters, Muon, build_optimizers, newton_schulz_orthogonalize


def test_newton_schulz_approximates_the_polar_factor():
    torch.manual_seed(0)
    for shape in [(64, 64), (32, 96), (96, 32)]:
        g = torch.randn(*shape)
        u, s, vh = torch.linalg.svd(g, full_matrices=False)
        x = newton_schulz_orthogonalize(g, steps=5)
        assert x.shape == g.shape and x.dtype == torch.float32
        # Same singular vectors as the gradient: U^T X V is diagonal ...
        core = u.T @ x @ vh.T
        off = core - torch.diag(torch.diagonal(core))
        assert off.abs().max() < 1e-3, shape
        # ... and every singular value that is not tiny lands in a band around 1 (the
        # quintic iteration trades exact convergence for speed: about 0.7 to 1.2).
        mapped = torch.diagonal(core)[s > 0.05 * s.max()]
        assert mapped.min() > 0.6 and mapped.max() < 1.25, (shape, mapped.min(), mapped.max())
        polar = u @ vh
        assert (x * polar).sum() / (x.norm() * polar.norm()) > 0.95


def test_newton_schulz_is_scale_invariant():
    g = torch.randn(16, 24)
    assert torch.allclose(newton_schulz_orthogonalize(g, 5), newton_schulz_orthogonalize(1000 * g, 5), atol=1e-5)


def test_muon_step_moves_by_lr_times_orthogonal_update():
    torch.manual_seed(1)
    p = torch.nn.Parameter(torch.randn(8, 32))
    before = p.detach().clone()
    opt = Muon([p], lr=0.1, momentum=0.0, backend_steps=5, nesterov=False)
    p.grad = torch.randn(8, 32)
    expected = before - 0.1 * newton_schulz_orthogonalize(p.grad, 5)
    opt.step()
    assert torch.allclose(p.detach(), expected, atol=1e-6)


def test_muon_nesterov_momentum_and_tall_scaling():
    torch.manual_seed(2)
    p = torch.nn.Parameter(torch.zeros(32, 8))  # tall: update scaled by sqrt(32/8) = 2
    opt = Muon([p], lr=1.0, momentum=0.5, backend_steps=5)
    g1, g2 = torch.randn(32, 8), torch.randn(32, 8)
    p.grad = g1
    opt.step()
    p.grad = g2
    buf = 0.5 * g1 + g2
    expected = -2 * newton_schulz_orthogonalize(g1 + 0.5 * g1, 5) - 2 * newton_schulz_orthogonalize(g2 + 0.5 * buf, 5)
    opt.step()
    assert torch.allclose(p.detach(), expected, atol=1e-5)


def test_parameter_split_matches_the_baseline():
    a = Hyperparameters({"NUM_LAYERS": "3", "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1"})
    model = GPT(a)
    adam, muon = build_optimizers(model, a)
    muon_ids = {id(p) for g in muon.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        expected_muon = name.startswith("blocks.") and p.ndim == 2 and "resid_mix" not in name
        assert (id(p) in muon_ids) == expected_muon, name
    lrs = [g["lr"] for g in adam.param_groups]
    assert lrs == [0.05, 0.04] and muon.param_groups[0]["lr"] == 0.04
    assert all(abs(g["betas"][0] - 0.9) < 1e-12 and abs(g["betas"][1] - 0.95) < 1e-12 for g in adam.param_groups)
    n_all = sum(p.numel() for p in model.parameters())
    n_opt = sum(p.numel() for opt in (adam, muon) for g in opt.param_groups for p in g["params"])
    assert n_all == n_opt  # every parameter is optimised exactly once


def test_decoupled_weight_decay():
    torch.manual_seed(3)
    p = torch.nn.Parameter(torch.randn(8, 16))
    before = p.detach().clone()
    opt = Muon([p], lr=0.1, momentum=0.0, backend_steps=5, nesterov=False, weight_decay=0.5)
    p.grad = torch.randn(8, 16)
    update = newton_schulz_orthogonalize(p.grad, 5)
    opt.step()
    assert torch.allclose(p.detach(), before * (1 - 0.1 * 0.5) - 0.1 * update, atol=1e-6)
    a = Hyperparameters({"NUM_LAYERS": "2", "MODEL_DIM": "32", "NUM_HEADS": "2", "NUM_KV_HEADS": "1", "ADAM_WD": "0.1",
                         "MUON_WD": "0.2", "TIE_EMBEDDINGS": "0", "BIGRAM_BUCKETS": "64"})
    model = GPT(a)
    adam, muon = build_optimizers(model, a)
    wd = {id(p): g["weight_decay"] for g in adam.param_groups for p in g["params"]}
    assert wd[id(model.tok_emb.weight)] == wd[id(model.lm_head.weight)] == wd[id(model.bigram.weight)] == 0.1
    assert wd[id(model.blocks[0].attn_scale)] == wd[id(model.skip_weights)] == 0.0  # never decay gains and scales
    assert muon.param_groups[0]["weight_decay"] == 0.2 and id(model.bigram_proj.weight) in {id(q) for q in muon.param_groups[0]["params"]}
