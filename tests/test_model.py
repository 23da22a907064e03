import pytest
import torch

from model import AdamPaperCNN, count_parameters


def test_parameter_count_matches_the_architecture():
    conv = lambda cin, cout: cin * cout * 5 * 5 + cout
    fc = lambda cin, cout: cin * cout + cout
    expected = conv(3, 64) + conv(64, 64) + conv(64, 128) + fc(128, 1000) + fc(1000, 10)
    assert expected == 451_266
    for placement in ("tutorial", "paper", "none"):
        assert count_parameters(AdamPaperCNN(dropout=placement)) == expected


def test_output_shape_and_feature_map_sizes():
    model = AdamPaperCNN()
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    x = torch.randn(2, 3, 32, 32)
    for conv, size in ((model.conv1, 14), (model.conv2, 5), (model.conv3, 1)):
        x = model.pool(torch.relu(conv(x)))
        assert x.shape[-2:] == (size, size)


def test_dropout_placements():
    tutorial, paper = AdamPaperCNN(dropout="tutorial"), AdamPaperCNN(dropout="paper")
    assert isinstance(tutorial.conv1_dropout, torch.nn.Dropout2d)
    assert isinstance(tutorial.input_dropout, torch.nn.Identity)
    assert isinstance(paper.input_dropout, torch.nn.Dropout)
    assert isinstance(paper.conv1_dropout, torch.nn.Identity)
    # The FC dropout is an explicit nn.Dropout. (The tutorial's Dropout2d on this 2-D tensor does the
    # same with the pinned torch: it warns that the use is deprecated and drops elements.)
    for model in (tutorial, paper):
        assert type(model.fc_dropout) is torch.nn.Dropout
    with pytest.raises(ValueError):
        AdamPaperCNN(dropout="everywhere")


def dropped_between(model, before, after, x):
    """In one real forward of the model: (ReLU of what layer `before` outputs, what layer `after`
    receives). With element-wise dropout p between them, each unit of the second is 0 or 1/(1-p)
    times the first."""
    seen = {}
    hooks = [before.register_forward_hook(lambda m, i, out: seen.update(before=torch.relu(out))),
             after.register_forward_pre_hook(lambda m, i: seen.update(after=i[0]))]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen["before"], seen["after"]


def assert_element_wise_dropout(relu_out, received, p=0.5):
    """Every unit dropped or scaled by 1/(1-p); about p of each sample's live units dropped, never all or none."""
    live = relu_out > 0
    kept = received != 0
    assert torch.allclose(received[kept], relu_out[kept] / (1 - p), rtol=1e-5, atol=1e-6)
    assert not (kept & ~live).any()
    dropped_share = ((live & ~kept).sum(1).float() / live.sum(1).float())
    assert dropped_share.min() > p - 0.2 and dropped_share.max() < p + 0.2, dropped_share


@pytest.mark.parametrize("placement", ["tutorial", "paper"])
def test_the_cnns_fc_dropout_drops_units_not_whole_samples_in_its_forward(placement):
    """Between fc1 and fc2 of the CNN's own forward: element-wise dropout at p = 0.5 in training
    (the tutorial's Dropout2d there would have done the same, with a warning: see model.py), none in eval."""
    torch.manual_seed(0)
    model = AdamPaperCNN(dropout=placement)
    x = torch.randn(64, 3, 32, 32)
    assert_element_wise_dropout(*dropped_between(model.train(), model.fc1, model.fc2, x))
    relu_out, received = dropped_between(model.eval(), model.fc1, model.fc2, x)
    assert torch.equal(relu_out, received)
    none = AdamPaperCNN(dropout="none").train()
    relu_out, received = dropped_between(none, none.fc1, none.fc2, x)
    assert torch.equal(relu_out, received)                    # dropout none: nothing dropped in training


def test_eval_mode_is_deterministic_and_train_mode_is_not():
    torch.manual_seed(0)
    model = AdamPaperCNN()
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


# ---------------------------------------------------------------- the other models of the registry

def test_parameter_counts_of_the_flat_models():
    import model

    fc = lambda cin, cout: cin * cout + cout
    assert count_parameters(model.build("logreg", (1, 28, 28), 10)) == 784 * 10 + 10
    mlp = 784 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 10 + 10
    assert count_parameters(model.build("mlp", (1, 28, 28), 10)) == mlp
    assert count_parameters(model.build("mlp", (1, 28, 28), 10, dropout="none")) == mlp
    vae = fc(784, 500) + 2 * fc(500, 50) + fc(50, 500) + fc(500, 784)
    assert count_parameters(model.build("vae", (1, 28, 28), 10)) == vae == 860_884
    assert count_parameters(model.build("bow-logreg", (10000,), 2)) == 10000 * 2 + 2


def sparse_rows(n=40, width=30, seed=0):
    from optstudy.data.bow import SparseRows

    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, width, generator=g) < 0.3).double()
    x[3] = 0                                                         # a review without a vocabulary word
    rows, cols = x.nonzero(as_tuple=True)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.bincount(rows, minlength=n).cumsum(0)])
    return SparseRows(cols, offsets, width)


def test_bow_logreg_equals_the_dense_product_in_eval_mode():
    from model import BowLogisticRegression

    torch.manual_seed(0)
    rows = sparse_rows()
    model = BowLogisticRegression(30, 3, p=0.5).double().eval()     # eval: no dropout
    out = model(rows)
    dense = rows.dense(torch.float64) @ model.weight + model.bias
    assert torch.allclose(out, dense, rtol=0, atol=1e-12)
    upstream = torch.randn(out.shape, dtype=torch.float64)
    sparse_grads = torch.autograd.grad((out * upstream).sum(), [model.weight, model.bias])
    dense_grads = torch.autograd.grad((dense * upstream).sum(), [model.weight, model.bias])
    for a, b in zip(sparse_grads, dense_grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("classes, dtype, p, block_bytes", [
    (2, torch.float32, 0.5, None), (2, torch.float64, 0.3, None), (3, torch.float32, 0.5, None),
    (2, torch.float32, 0.0, None), (2, torch.float32, 0.5, 64), (3, torch.float64, 0.3, 64)])
def test_bow_logreg_is_bit_for_bit_the_plain_gather_and_index_add(monkeypatch, classes, dtype, p, block_bytes):
    """The fast kernels (rows of two floats as complex numbers, the dropout scale laid out by numpy,
    sums in blocks: here one, or many small ones) change no bit of the logits or the gradients
    against the obvious autograd formulation."""
    import model as models
    from model import BowLogisticRegression

    if block_bytes:
        monkeypatch.setattr(models, "BLOCK_BYTES", block_bytes)
    rows = sparse_rows(n=64, width=300, seed=3)
    torch.manual_seed(1)
    model = BowLogisticRegression(300, classes, p=p).to(dtype).train()
    upstream = torch.randn(64, classes, dtype=dtype)
    outputs = []
    for plain in (False, True):
        torch.manual_seed(7)                                          # the same dropout draws
        if plain:
            words = model.weight.index_select(0, rows.cols)
            if p > 0:
                keep = torch.rand(rows.cols.shape) >= p
                words = words * (keep / (1 - p)).unsqueeze(1)
            logits = torch.zeros(64, classes, dtype=dtype).index_add(0, rows.row_ids(), words) + model.bias
        else:
            logits = model(rows)
        outputs.append((logits, *torch.autograd.grad((logits * upstream).sum(), [model.weight, model.bias])))
    for fast, plain in zip(*outputs):
        assert fast.dtype == plain.dtype and torch.equal(fast, plain)


@pytest.mark.parametrize("width", [2, 6])
def test_sum_rows_block_by_block_is_bit_for_bit_one_index_add(monkeypatch, width):
    """Many small blocks (rows of two floats as complex numbers, and wider rows) sum the same
    numbers in the same order as one gather, one scaling and one index_add."""
    import model

    g = torch.Generator().manual_seed(0)
    table = torch.randn(50, width, generator=g)
    index = torch.randint(0, 50, (1000,), generator=g)
    out_index = torch.randint(0, 7, (1000,), generator=g)
    scale = (torch.rand(1000, width, generator=g) >= 0.5) * 2.0
    plain = torch.zeros(7, width).index_add_(0, out_index, table[index] * scale)
    monkeypatch.setattr(model, "BLOCK_BYTES", 64)            # blocks of 256 rows: four of them
    blocked = model.sum_rows(torch.zeros(7, width), out_index, table, index, scale)
    assert torch.equal(blocked, plain)


def test_bow_feature_dropout_drops_half_the_words_and_keeps_the_expectation():
    from model import BowLogisticRegression

    torch.manual_seed(0)
    rows = sparse_rows(n=50, width=20)
    model = BowLogisticRegression(20, 20, p=0.5).double()
    with torch.no_grad():                                            # logits = the scaled input row itself
        model.weight.copy_(torch.eye(20, dtype=torch.float64))
        model.bias.zero_()
    dense = rows.dense(torch.float64)
    assert torch.equal(model.eval()(rows), dense)
    model.train()
    draws = torch.stack([model(rows) for _ in range(2000)])
    present = dense.bool()
    assert set(draws[:, present].unique().tolist()) == {0.0, 2.0}    # dropped, or kept and scaled by 1/(1-p)
    assert (draws[:, ~present] == 0).all()
    assert 0.48 < (draws[:, present] == 0).double().mean() < 0.52
    assert (draws.mean(0) - dense).abs().max() < 0.15               # E = the eval output (2000 draws: sd 0.022)


def test_vae_returns_a_positive_per_sample_negative_elbo():
    from model import VAE

    torch.manual_seed(0)
    vae = VAE(784)
    x = torch.rand(5, 1, 28, 28)
    loss = vae(x)
    assert loss.shape == (5,) and torch.isfinite(loss).all() and (loss > 0).all()
    assert 300 < loss.mean() < 1000                                  # ~784 * log 2 nats before training
    vae.eval()
    assert vae(x).shape == (5,)


@pytest.mark.parametrize("mu", [0.0, 0.7])
def test_vae_kl_term_is_that_of_the_gaussian_posterior(mu):
    """With the encoder's mu and logvar layers fixed to (mu, 0), z = mu + eps and the KL term is
    50 * mu^2 / 2 (0 for the prior itself); the rest is the Bernoulli reconstruction loss."""
    import torch.nn.functional as F

    from model import VAE

    torch.manual_seed(0)
    vae = VAE(784)
    with torch.no_grad():
        for layer, value in ((vae.mu, mu), (vae.logvar, 0.0)):
            layer.weight.zero_()
            layer.bias.fill_(value)
    x = torch.rand(4, 784)
    torch.manual_seed(1)
    loss = vae(x)
    torch.manual_seed(1)
    z = mu + torch.randn(4, 50)                                      # the same draw as forward's
    reconstruction = F.binary_cross_entropy_with_logits(vae.decoder(z), x, reduction="none").sum(1)
    assert torch.allclose(loss - reconstruction, torch.full((4,), 25 * mu ** 2), atol=1e-3)


def test_tutorial_cnn_and_resnet18_shapes():
    from model import CifarResNet18, TutorialCNN

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    assert TutorialCNN()(x).shape == (2, 10)
    assert CifarResNet18().eval()(x).shape == (2, 10)
    assert TutorialCNN(num_classes=4, in_channels=1, size=28)(torch.randn(2, 1, 28, 28)).shape == (2, 4)


def test_mlp_dropout_is_element_wise_on_the_hidden_layers():
    from model import MLP

    torch.manual_seed(0)
    mlp = MLP(784, 10, p=0.5)
    kinds = [type(m) for m in mlp.hidden]
    assert kinds == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Dropout] * 2
    assert all(type(m) is not torch.nn.Dropout for m in MLP(784, 10).hidden)    # p = 0: none at all
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    x = torch.randn(64, 1, 28, 28)
    for before, after in zip(linears, linears[1:]):             # after each hidden layer, in the MLP's forward
        assert_element_wise_dropout(*dropped_between(mlp.train(), before, after, x))
    x = torch.randn(3, 1, 28, 28)
    mlp.eval()
    assert torch.equal(mlp(x), mlp(x)) and mlp(x).shape == (3, 10)


def test_transpose_of_a_tall_array_in_blocks_is_the_transpose():
    import numpy as np
    from model import transpose

    for shape in [(5000, 16), (4099, 3), (16, 5000), (7, 7)]:        # blocked, blocked, whole, whole
        x = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
        out = transpose(x)
        assert out.flags.c_contiguous and np.array_equal(out, x.T)
