import os
import tarfile

import pytest
import torch
import torch.nn.functional as F

from optstudy.data import bow
from optstudy.records import store as records
from optstudy.core.cli import UserError


def from_dense(x):
    """SparseRows of a 0/1 matrix, the obvious (slow) way, to check the fast one against."""
    rows, cols = x.nonzero(as_tuple=True)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.bincount(rows, minlength=len(x)).cumsum(0)])
    return bow.SparseRows(cols, offsets, x.shape[1])


def random_rows(n=12, width=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, width, generator=g) < 0.3).float()
    x[[2, 7]] = 0                                             # empty rows: no word in the vocabulary
    return x, from_dense(x)


def test_rows_index_like_the_dense_matrix():
    x, rows = random_rows()
    assert rows.shape == (12, 9) and len(rows) == 12
    assert torch.equal(rows.dense(), x)
    for idx in (torch.randperm(12, generator=torch.Generator().manual_seed(1)),
                torch.tensor([7, 3, 3, 0, 7, 11, 2]), torch.tensor([-1, 2]), torch.tensor([], dtype=torch.int64)):
        assert torch.equal(rows[idx].dense(), x[idx]), idx
    for s in (slice(None), slice(3, 8), slice(1, None, 3), slice(5, 5)):
        assert torch.equal(rows[s].dense(), x[s]), s
    assert torch.equal(rows[2:3].cols, torch.tensor([], dtype=torch.int64))


def test_bag_is_the_product_with_the_dense_rows():
    x, rows = random_rows()
    weight = torch.randn(9, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for batch in (rows, rows[torch.tensor([7, 1, 1, 2, 10])]):
        cols, offsets = batch.bag()
        out = F.embedding_bag(cols, weight, offsets, mode="sum")
        assert torch.allclose(out, batch.dense(torch.float64) @ weight)
        assert (out[(batch.dense().sum(1) == 0)] == 0).all()


def test_to_cpu_round_trip():
    x, rows = random_rows()
    moved = rows.to("cpu")
    assert torch.equal(moved.cols, rows.cols) and torch.equal(moved.offsets, rows.offsets)
    assert moved.shape == rows.shape and torch.equal(moved.dense(torch.uint8), x.to(torch.uint8))


# ---------------------------------------------------------------- a tiny IMDB

REVIEWS = {
    "train/pos/0_9.txt": "Great great GREAT film!<br />I loved it.",
    "train/pos/1_10.txt": "A film I'd watch again: great.",
    "train/neg/0_2.txt": "Bad film.<br /><br />Bad, bad acting; I won't watch it.",
    "train/neg/1_1.txt": "Boring. It's a bad film.",
    "train/unsup/0_0.txt": "unlabelled unlabelled unlabelled unlabelled unlabelled",   # ignored
    "test/pos/0_8.txt": "Zyzzyva zyzzyva ZYZZYVA zyzzyva zyzzyva! great",             # a test-only word
    "test/neg/0_3.txt": "bad bad zyzzyva",
    "test/neg/1_4.txt": "Zyzzyva?",                                                   # no vocabulary word
}
# Training counts: bad, film, great 4; a, i, it, watch 2; the rest 1. Ties go by the token.
VOCAB = ["bad", "film", "great", "a", "i", "it", "watch", "acting", "again", "boring", "i'd", "it's", "loved",
         "won't"]


def write_imdb(root):
    for name, text in REVIEWS.items():
        path = root / "aclImdb" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "aclImdb" / "train" / "labeledBow.feat").write_text("0:9 1:1\n")      # ignored
    return root


def pack_imdb(tree, root):
    """The tree as the official archive, its members deliberately out of order."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / bow.IMDB_ARCHIVE, "w:gz") as tar:
        for path in sorted((tree / "aclImdb").rglob("*"), reverse=True):
            tar.add(path, arcname=str(path.relative_to(tree)), recursive=False)
    return root


def load(root, cache, vocab_size=5):
    return bow.load_imdb(root, cache, vocab_size=vocab_size)


def test_tiny_imdb_features_labels_and_vocabulary(tmp_path):
    train_x, train_y, test_x, test_y, vocab, source = load(write_imdb(tmp_path / "tree"), tmp_path / "cache")
    assert vocab == VOCAB[:5] and source == f"imdb:{(tmp_path / 'tree' / 'aclImdb').resolve()}"
    # rows in path order: neg/0_2, neg/1_1, pos/0_9, pos/1_10; columns bad, film, great, a, i
    assert train_y.tolist() == [0, 0, 1, 1] and train_y.dtype == torch.int64
    assert train_x.shape == (4, 5)
    assert train_x.dense().tolist() == [[1, 1, 0, 0, 1], [1, 1, 0, 1, 0], [0, 1, 1, 0, 1], [0, 1, 1, 1, 0]]
    assert test_y.tolist() == [0, 0, 1]
    assert test_x.dense().tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    for x in (train_x, test_x):                               # binary, each column once, ascending
        assert torch.equal(x.cols, x.dense().nonzero()[:, 1])


def test_vocabulary_comes_from_training_counts_only(tmp_path):
    *_, vocab, _ = load(write_imdb(tmp_path / "tree"), tmp_path / "cache", vocab_size=100)
    assert vocab == VOCAB                                      # no "zyzzyva", no "br", no "unlabelled"


def test_archive_gives_the_same_features(tmp_path):
    tree = write_imdb(tmp_path / "tree")
    from_folder = load(tree, tmp_path / "cache")
    from_archive = load(pack_imdb(tree, tmp_path / "archive"), tmp_path / "cache")
    assert from_archive[-1] == f"imdb:{(tmp_path / 'archive' / bow.IMDB_ARCHIVE).resolve()}"
    for a, b in zip(from_folder[:-1], from_archive[:-1]):
        if isinstance(a, bow.SparseRows):
            assert torch.equal(a.cols, b.cols) and torch.equal(a.offsets, b.offsets) and a.shape == b.shape
        elif isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        else:
            assert a == b
    assert len(list((tmp_path / "cache").glob("imdb-bow-*.pt"))) == 2


def test_cache_is_used_then_invalidated_by_a_changed_review(tmp_path, monkeypatch, capsys):
    tree = write_imdb(tmp_path / "tree")
    first = load(tree, tmp_path / "cache")
    assert "building IMDB bag-of-words features" in capsys.readouterr().out
    (cache,) = (tmp_path / "cache").glob("imdb-bow-*.pt")
    assert torch.load(cache, weights_only=True)["vocab"] == VOCAB[:5]

    def no_building(*a):
        raise AssertionError("built again despite a valid cache")
    monkeypatch.setattr(bow, "build_imdb", no_building)
    again = load(tree, tmp_path / "cache")
    assert torch.equal(again[0].cols, first[0].cols) and again[4] == first[4]
    assert capsys.readouterr().out == ""

    monkeypatch.undo()
    (tree / "aclImdb" / "train" / "pos" / "1_10.txt").write_text("Zebra zebra zebra zebra zebra zebra.")
    assert load(tree, tmp_path / "cache")[4][0] == "zebra"
    assert load(tree, tmp_path / "cache", vocab_size=3)[4] == ["zebra", "bad", "film"]


def test_touching_the_archive_rebuilds(tmp_path):
    root = pack_imdb(write_imdb(tmp_path / "tree"), tmp_path / "archive")
    load(root, tmp_path / "cache")
    os.utime(root / bow.IMDB_ARCHIVE, ns=(1, 1))
    load(root, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("imdb-bow-*.pt"))) == 2


def test_corrupt_cache_is_rebuilt(tmp_path, capsys):
    tree = write_imdb(tmp_path / "tree")
    first = load(tree, tmp_path / "cache")
    (cache,) = (tmp_path / "cache").glob("imdb-bow-*.pt")
    cache.write_bytes(cache.read_bytes()[:100])
    rebuilt = load(tree, tmp_path / "cache")
    assert "warning: data cache" in capsys.readouterr().out
    assert torch.equal(first[0].cols, rebuilt[0].cols) and first[4] == rebuilt[4]
    assert bow._read_cache(cache, 5) is not None              # and written back whole


def test_unwritable_cache_is_a_warning(tmp_path, monkeypatch, capsys):
    def refuse(path, write):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(records, "atomic_write", refuse)
    train_x, *_ = load(write_imdb(tmp_path / "tree"), tmp_path / "cache")
    assert train_x.shape == (4, 5)
    assert "warning: could not write data cache" in capsys.readouterr().out


def remove(path):
    for p in path.iterdir():
        p.unlink()
    path.rmdir()


@pytest.mark.parametrize("damage, message", [
    (lambda root: root.mkdir(), r"put aclImdb_v1\.tar\.gz \(https://ai\.stanford\.edu/~amaas/data/sentiment/\) into .*/tree/"),
    (lambda root: remove(write_imdb(root) / "aclImdb" / "test" / "neg"), r"aclImdb/test/neg is missing"),
    (lambda root: remove(write_imdb(root) / "aclImdb" / "test" / "pos") or (root / "aclImdb/test/pos").mkdir(),
     r"aclImdb/test/pos has no reviews"),
])
def test_bad_folders_are_refused(tmp_path, damage, message):
    damage(tmp_path / "tree")
    with pytest.raises(UserError, match=message) as err:
        load(tmp_path / "tree", tmp_path / "cache")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "damaged or truncated"),
    (lambda data: data[:-6], "damaged or truncated"),          # only gzip's trailer lost: its length and CRC
    (lambda data: b"this is not a gzip file", "damaged or truncated"),
])
def test_bad_archives_are_refused(tmp_path, damage, message):
    root = pack_imdb(write_imdb(tmp_path / "tree"), tmp_path / "archive")
    archive = root / bow.IMDB_ARCHIVE
    archive.write_bytes(damage(archive.read_bytes()))
    with pytest.raises(UserError, match=f"{archive}.*{message}.*{bow.IMDB_URL}") as err:
        load(root, tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_archive_without_a_split_is_refused(tmp_path):
    tree = write_imdb(tmp_path / "tree")
    remove(tree / "aclImdb" / "test" / "neg")
    root = pack_imdb(tree, tmp_path / "archive")
    with pytest.raises(UserError, match=r"aclImdb_v1\.tar\.gz has no reviews in aclImdb/test/neg/"):
        load(root, tmp_path / "cache")


# ---------------------------------------------------------------- synthetic

def test_synthetic_is_fixed_and_balanced():
    small = lambda seed=0: bow.make_synthetic_bow(n_train=100, n_test=20, width=1000, seed=seed)
    a, b, c = small(), small(), small(seed=1)
    assert torch.equal(a[0].cols, b[0].cols) and torch.equal(a[0].offsets, b[0].offsets)
    assert torch.equal(a[1], b[1]) and torch.equal(a[3], b[3]) and not torch.equal(a[0].cols, c[0].cols)
    train_x, train_y, test_x, test_y, vocab, source = bow.make_synthetic_bow()
    assert train_x.shape == (2000, 10000) and test_x.shape == (500, 10000)
    assert vocab[:2] == ["w0", "w1"] and len(vocab) == 10000 and source == "synthetic-bow:seed0"
    assert torch.bincount(train_y).tolist() == [1000, 1000] and torch.bincount(test_y).tolist() == [250, 250]
    lengths = train_x.offsets.diff()
    assert lengths.min() >= 50 and lengths.max() <= 150
    dense = train_x[:100].dense()
    assert torch.equal(dense.sum(1), lengths[:100].float())       # distinct words
    assert torch.equal(train_x[:100].cols, dense.nonzero()[:, 1])  # ascending in every row


def test_synthetic_is_learnable_by_logistic_regression():
    train_x, train_y, test_x, test_y, *_ = bow.make_synthetic_bow(n_train=600, n_test=400, width=1000)
    x, xt = train_x.dense(), test_x.dense()
    torch.manual_seed(0)
    model = torch.nn.Linear(1000, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), train_y).backward()
        opt.step()
    accuracy = (model(xt).argmax(1) == test_y).float().mean().item()
    assert 0.75 < accuracy < 0.99, accuracy                      # learnable, not trivial


# ---------------------------------------------------------------- the real reviews

@pytest.mark.slow
def test_real_imdb(imdb_root, tmp_path):
    train_x, train_y, test_x, test_y, vocab, _ = bow.load_imdb(imdb_root, tmp_path / "cache")
    assert train_x.shape == (25000, 10000) and test_x.shape == (25000, 10000) and len(vocab) == 10000
    assert torch.bincount(train_y).tolist() == [12500, 12500] and torch.bincount(test_y).tolist() == [12500, 12500]
    assert vocab[:3] == ["the", "and", "a"] and "br" not in vocab
    for x in (train_x, test_x):
        assert 80 < len(x.cols) / len(x) < 250
