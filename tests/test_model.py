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
    # The FC dropout is element-wise, never Dropout2d on a 2-D tensor (the tutorial's fault).
    for model in (tutorial, paper):
        assert type(model.fc_dropout) is torch.nn.Dropout
    with pytest.raises(ValueError):
        AdamPaperCNN(dropout="everywhere")


def test_fc_dropout_drops_units_not_whole_samples():
    model = AdamPaperCNN(dropout="paper").train()
    h = torch.ones(64, 1000)
    out = model.fc_dropout(h)
    zeros_per_sample = (out == 0).sum(1)
    # Element-wise: every sample loses about half its units; none loses all or none.
    assert zeros_per_sample.min() > 350 and zeros_per_sample.max() < 650


def test_eval_mode_is_deterministic_and_train_mode_is_not():
    torch.manual_seed(0)
    model = AdamPaperCNN()
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
