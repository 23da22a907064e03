import numpy as np
import pytest
import torch
from PIL import Image

from optstudy.data import datasets as data
from optstudy.core.cli import UserError


def images(n=3, h=6, w=6):
    return (torch.arange(n * 3 * h * w) % 250 + 1).to(torch.uint8).view(n, 3, h, w)


def test_crop_matches_slices_of_a_zero_padded_image():
    x = images()
    offsets = torch.tensor([[0, 0], [4, 4], [8, 3]])
    out = data.crop_flip(x, offsets, torch.zeros(3, dtype=torch.bool))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 6])
    assert torch.equal(out[1], x[1])                     # offset (4, 4) is the uncropped image
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, :4] == 0).all()  # zeros, before normalising
    assert (out[0, :, 4:, 4:] > 0).all()


def test_flip_is_per_sample():
    x = images()
    centre = torch.full((3, 2), 4)
    out = data.crop_flip(x, centre, torch.tensor([True, False, True]))
    assert torch.equal(out[0], x[0].flip(-1))
    assert torch.equal(out[1], x[1])
    assert torch.equal(out[2], x[2].flip(-1))


def test_epoch_plan_is_seeded_and_varies_per_sample():
    plan = lambda seed: data.epoch_plan(1000, torch.Generator().manual_seed(seed))
    a, b, c = plan(0), plan(0), plan(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    order, offsets, flips = a
    assert sorted(order.tolist()) == list(range(1000))
    assert offsets.min() == 0 and offsets.max() == 8 and len(offsets.unique(dim=0)) == 81
    assert 400 < flips.sum() < 600


def test_train_batches_cover_the_epoch_and_normalise():
    d = data.limit(data.make_synthetic(n_train=300, n_test=10), None, None)
    inputs = data.make_inputs(d, "standardize", augment=True, channels_last=True)
    batches = list(data.train_batches(d, inputs, 128, torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in batches] == [128, 128, 44]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(d.train_y.tolist())
    x = batches[0][0]
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    zero = (0 - torch.tensor(d.mean)) / torch.tensor(d.std)  # a padded pixel after normalising
    assert x.amin(dim=(0, 2, 3)).allclose(zero, atol=1e-5)


def test_eval_batches_are_not_augmented():
    d = data.make_synthetic(n_train=10, n_test=50)
    inputs = data.make_inputs(d, "standardize", augment=True)
    x = torch.cat([xb for xb, _ in data.eval_batches(d.test_x, d.test_y, 20, inputs)])
    assert torch.allclose(x, data.normalize(d.test_x, mean=d.mean, std=d.std))


def test_synthetic_is_fixed_and_balanced():
    a, b = data.make_synthetic(), data.make_synthetic()
    assert torch.equal(a.train_x, b.train_x) and a.train_x.shape == (10000, 3, 32, 32)
    assert a.train_x.dtype == torch.uint8
    counts = torch.bincount(a.train_y, minlength=10)
    assert counts.min() > 800


def write_tree(root, classes=("cat", "dog"), per_class=3, size=8, test_classes=None):
    rng = np.random.default_rng(0)
    for split, names in (("train", classes), ("test", test_classes or classes)):
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_image_folder_reads_a_generated_tree(tmp_path):
    root = write_tree(tmp_path / "tree", classes=("zebra", "ant"))
    d = data.load_image_folder(root, tmp_path / "cache")
    assert d.classes == ["ant", "zebra"]                      # sorted train folder names
    assert d.train_x.shape == (6, 3, 8, 8) and d.train_x.dtype == torch.uint8
    assert d.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.array(Image.open(root / "train" / "ant" / "0.png"))
    assert torch.equal(d.train_x[0], torch.from_numpy(first).permute(2, 0, 1))


def test_cache_is_used_then_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "tree")
    first = data.load_image_folder(root, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1

    def no_decoding(*a):
        raise AssertionError("decoded again despite a valid cache")
    monkeypatch.setattr(data, "decode_image_folder", no_decoding)
    again = data.load_image_folder(root, tmp_path / "cache")
    assert torch.equal(first.train_x, again.train_x)

    monkeypatch.undo()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "cat" / "new.png")
    changed = data.load_image_folder(root, tmp_path / "cache")
    assert len(changed.train_y) == 7


def test_corrupt_cache_is_rebuilt(tmp_path, capsys):
    root = write_tree(tmp_path / "tree")
    first = data.load_image_folder(root, tmp_path / "cache")
    (cache,) = (tmp_path / "cache").glob("*.pt")
    cache.write_bytes(cache.read_bytes()[:100])
    rebuilt = data.load_image_folder(root, tmp_path / "cache")
    assert "corrupt" in capsys.readouterr().out
    assert torch.equal(first.train_x, rebuilt.train_x)
    assert data.read_cache(cache) is not None                 # and written back whole


def empty_folder(folder):
    for p in folder.iterdir():
        p.unlink()


@pytest.mark.parametrize("damage, message", [
    (lambda r: None, "does not exist"),
    (lambda r: (r / "train").mkdir(parents=True), "no test/ folder"),
    (lambda r: empty_folder(write_tree(r) / "train" / "cat"), "has no .png or .jpg"),
    (lambda r: write_tree(r, classes=("cat", "dog"), test_classes=("cat", "cow")), "classes differ"),
])
def test_bad_image_folders_are_refused(tmp_path, damage, message):
    root = tmp_path / "tree"
    damage(root)
    with pytest.raises(UserError, match=message):
        data.load_image_folder(root, tmp_path / "cache")


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_unreadable_image_is_named(tmp_path, content):
    root = write_tree(tmp_path / "tree")
    bad = root / "test" / "dog" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60] if content == "truncated" else content)
    with pytest.raises(UserError, match=r"cannot read image .*dog/1\.png"):
        data.load_image_folder(root, tmp_path / "cache")


def test_limit_takes_fixed_subsets_with_every_class():
    d = data.make_synthetic(n_train=1000, n_test=200)
    a, b = data.limit(d, 100, 50), data.limit(d, 100, 50)
    assert torch.equal(a.train_x, b.train_x) and len(a.train_y) == 100 and len(a.test_y) == 50
    assert len(a.train_y.unique()) == 10
