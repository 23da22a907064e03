"""The IMDB Large Movie Review data set as binary bag-of-words rows, for the Adam paper's
§6.1 logistic regression (Maas et al., 2011: 25,000 train and 25,000 test reviews).

Each review becomes a 0/1 vector over the VOCAB_SIZE most frequent training tokens. Dense,
one split would be 25,000 x 10,000 float32 = 1 GB, so rows are kept in CSR form (SparseRows)
and fed to the model through embedding_bag(mode="sum"), which is the product with a 0/1 row.

Sources, in this order:
- root/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt: the extracted official archive;
- root/aclImdb_v1.tar.gz: the official archive itself, read as a stream (nothing extracted).
The features are built once and cached as tensors in cache_dir.
"""
import collections
import gzip
import hashlib
import os
import re
import tarfile
import zlib

import numpy as np
import torch

from optstudy.core.cli import UserError
from optstudy.records import store

VOCAB_SIZE = 10_000
IMDB_ARCHIVE = "aclImdb_v1.tar.gz"
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/"
TOKEN = re.compile(r"[a-z0-9']+")       # applied to lowercased text
LINE_BREAK = "<br />"                    # the reviews' HTML line breaks; without this every review has "br"
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
REVIEW = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)")  # unsup/ and *.feat do not match
CACHE_FORMAT = 1                         # bump when the tokenisation or the cache layout changes
SYNTHETIC_SEED = 0
MISSING_HELP = (f"IMDB reviews not found: put {IMDB_ARCHIVE} ({IMDB_URL}) into {{root}}/, "
                f"or extract it there as {{root}}/aclImdb/")


class SparseRows:
    """Rows of a binary bag-of-words matrix in CSR form."""

    def __init__(self, cols, offsets, width):
        self.cols = torch.as_tensor(cols, dtype=torch.int64)        # column of every nonzero, row after row
        self.offsets = torch.as_tensor(offsets, dtype=torch.int64)  # (n + 1,): row i is cols[offsets[i]:offsets[i+1]]
        self.width = int(width)
        if self.cols.dim() != 1 or self.offsets.dim() != 1 or len(self.offsets) == 0:
            raise ValueError("SparseRows needs 1-D cols and 1-D offsets of length n + 1")

    def __len__(self):
        return len(self.offsets) - 1

    @property
    def shape(self):
        return (len(self), self.width)

    def __getitem__(self, idx):
        """Rows idx (an int64 tensor, any order, repeats allowed, or a slice) as SparseRows.

        Vectorised, since it runs for every minibatch: the k-th nonzero of output row r is
        cols[starts[r] + k], so nonzero j reads cols[j + (starts - new_offsets)[row of j]]."""
        if isinstance(idx, slice):
            idx = torch.arange(*idx.indices(len(self)), device=self.offsets.device)
        idx = torch.as_tensor(idx, dtype=torch.int64, device=self.offsets.device)
        if idx.dim() != 1:
            raise IndexError(f"SparseRows takes a 1-D tensor of row numbers or a slice, not shape {tuple(idx.shape)}")
        idx = torch.where(idx < 0, idx + len(self), idx)
        starts = self.offsets.index_select(0, idx)        # index_select: bounds-checked, faster than []
        lengths = self.offsets.index_select(0, idx + 1) - starts
        offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
        shift = torch.repeat_interleave(starts - offsets[:-1], lengths)
        return SparseRows(self.cols.index_select(0, torch.arange(len(shift), device=shift.device) + shift),
                          offsets, self.width)

    def to(self, device, non_blocking=False):
        return SparseRows(self.cols.to(device, non_blocking=non_blocking),
                          self.offsets.to(device, non_blocking=non_blocking), self.width)

    def row_ids(self):
        """The row of every nonzero: (nnz,) int64."""
        return torch.repeat_interleave(torch.arange(len(self), device=self.cols.device), self.offsets.diff())

    def bag(self):
        """(input, offsets) for torch.nn.functional.embedding_bag(mode="sum"): an empty row gives 0."""
        return self.cols, self.offsets[:-1]

    def dense(self, dtype=torch.float32):
        """The (n, width) 0/1 matrix: for tests and small checks only (a whole split is 1 GB)."""
        rows = torch.repeat_interleave(torch.arange(len(self), device=self.cols.device), self.offsets.diff())
        out = torch.zeros(self.shape, dtype=dtype, device=self.cols.device)
        out[rows, self.cols] = 1
        return out

    def __repr__(self):
        return f"SparseRows(shape={self.shape}, nnz={len(self.cols)})"


# ---------------------------------------------------------------- IMDB

class StackedRows:
    """The minibatches of the K members of a stack (training/stacking.py), each in its own order:
    member after member, B rows each."""

    def __init__(self, rows, members):
        self.rows = rows                 # SparseRows of K * B rows
        self.members = members


def load_imdb(root, cache_dir, vocab_size=VOCAB_SIZE):
    """-> (train_x: SparseRows, train_y: int64 tensor, test_x: SparseRows, test_y, vocab: list[str], source: str)"""
    source, key = _find_source(root, vocab_size)
    cache = cache_dir / f"imdb-bow-{key}.pt"
    blob = _read_cache(cache, vocab_size)
    if blob is None:
        print(f"building IMDB bag-of-words features from {source} (once; then cached)")
        blob = build_imdb(source, vocab_size)
        _write_cache(blob, cache)
    return (SparseRows(blob["train_cols"], blob["train_offsets"], vocab_size), blob["train_y"],
            SparseRows(blob["test_cols"], blob["test_offsets"], vocab_size), blob["test_y"],
            blob["vocab"], blob["source"])


def _find_source(root, vocab_size):
    """(folder or archive, cache key). The key changes when any review file is added, removed,
    resized or touched, or the archive is; stats only, since hashing 130 MB would cost seconds."""
    folder, archive = root / "aclImdb", root / IMDB_ARCHIVE
    h = hashlib.sha1(f"{CACHE_FORMAT}|{vocab_size}".encode())
    if folder.is_dir():
        h.update(str(folder.resolve()).encode())
        for name, path in _list_folder(folder):
            st = path.stat()
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return folder, h.hexdigest()[:12]
    if archive.is_file():
        st = archive.stat()
        h.update(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        return archive, h.hexdigest()[:12]
    raise UserError(MISSING_HELP.format(root=root))


def _list_folder(folder):
    """[(name relative to the archive root, path)] of every review, checking the layout."""
    files = []
    for split in SPLITS:
        for label in LABELS:
            sub = folder / split / label
            if not sub.is_dir():
                raise UserError(f"{sub} is missing: expected {folder}/{{train,test}}/{{pos,neg}}/*.txt "
                                f"(the extracted {IMDB_ARCHIVE})")
            names = sorted(e.name for e in os.scandir(sub) if e.name.endswith(".txt"))
            if not names:
                raise UserError(f"{sub} has no reviews (*.txt)")
            files += [(f"aclImdb/{split}/{label}/{name}", sub / name) for name in names]
    return files


def build_imdb(source, vocab_size=VOCAB_SIZE):
    """The cache blob (tensors, ints, strings, lists) built from a folder or an archive."""
    docs = Tokenised()
    if source.is_dir():
        for name, path in _list_folder(source):
            docs.add(name, _read_review(path))
    else:
        for name, raw in _archive_reviews(source):
            docs.add(name, raw)
    vocab, columns = docs.vocabulary(vocab_size)
    blob = {"format": CACHE_FORMAT, "vocab": vocab, "width": vocab_size, "source": f"imdb:{source.resolve()}"}
    for split in SPLITS:
        cols, offsets, labels = docs.rows(split, columns)
        blob.update({f"{split}_cols": cols, f"{split}_offsets": offsets, f"{split}_y": labels})
    return blob


def _read_review(path):
    try:
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read review {path}: {err.strerror or err}") from None


def _archive_reviews(archive):
    """Yield (name, bytes) of every labelled review in the official .tar.gz, as a stream.

    gzip is opened by hand and drained to its end so that a truncated or corrupt archive is
    refused (gzip checks length and CRC only there), even when the damage lies after the
    last review; tarfile alone stops at its end-of-archive marker."""
    found = collections.Counter()
    try:
        with gzip.open(archive) as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                match = REVIEW.fullmatch(member.name)
                if match and member.isfile():
                    found[match.group(1), match.group(2)] += 1
                    yield f"aclImdb/{'/'.join(match.groups())}", tar.extractfile(member).read()
            while gz.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:  # BadGzipFile is an OSError
        reason = str(err).splitlines()[0][:100] if str(err) else err.__class__.__name__
        raise UserError(f"{archive} is damaged or truncated ({reason}): delete it and download it again "
                        f"from {IMDB_URL}") from None
    for split in SPLITS:
        for label in LABELS:
            if not found[split, label]:
                raise UserError(f"{archive} has no reviews in aclImdb/{split}/{label}/: "
                                f"is it the official {IMDB_ARCHIVE}?")


def tokens(raw):
    """The review's tokens: lowercased, HTML line breaks as spaces, runs of [a-z0-9']."""
    return TOKEN.findall(raw.decode("utf-8", errors="replace").lower().replace(LINE_BREAK, " "))


class Tokenised:
    """Reviews reduced, as they arrive, to the distinct provisional ids of their tokens, plus
    the training split's token counts. No text is kept: 50,000 small int arrays instead."""

    def __init__(self):
        self.ids = collections.defaultdict()
        self.ids.default_factory = self.ids.__len__    # an unseen token gets the next id
        self.counts = collections.Counter()            # training split only: the test split never shapes the vocabulary
        self.docs = {split: [] for split in SPLITS}

    def add(self, name, raw):
        _, split, label, _ = name.split("/")
        words = tokens(raw)
        if split == "train":
            self.counts.update(words)
        distinct = set(words)
        ids = np.fromiter(map(self.ids.__getitem__, distinct), dtype=np.int64, count=len(distinct))
        self.docs[split].append((name, LABELS[label], ids))

    def vocabulary(self, vocab_size):
        """(the vocab_size most frequent training tokens, most frequent first and ties by the
        token, so it is deterministic; the column of every provisional id, -1 outside)."""
        vocab = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size]
        vocab = [word for word, _ in vocab]
        columns = np.full(len(self.ids), -1, dtype=np.int64)
        columns[[self.ids[w] for w in vocab]] = np.arange(len(vocab))
        return vocab, columns

    def rows(self, split, columns):
        """CSR (cols, offsets) and labels of a split, its reviews sorted by name."""
        docs = sorted(self.docs[split], key=lambda doc: doc[0])
        lengths = np.array([len(ids) for _, _, ids in docs], dtype=np.int64)
        cols = columns[np.concatenate([ids for _, _, ids in docs])]
        rows = np.repeat(np.arange(len(docs)), lengths)
        base = len(columns) + 1                                    # above every column
        keys = np.sort(rows[cols >= 0] * base + cols[cols >= 0])   # row by row, columns ascending
        offsets = np.concatenate([[0], np.cumsum(np.bincount(keys // base, minlength=len(docs)))])
        labels = torch.tensor([label for _, label, _ in docs], dtype=torch.int64)
        return torch.from_numpy(keys % base), torch.from_numpy(offsets), labels


def _read_cache(path, vocab_size):
    """The cached blob, or None if absent; a damaged cache is reported and rebuilt (as data.read_cache)."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        assert blob["format"] == CACHE_FORMAT and blob["width"] == vocab_size
        assert len(blob["vocab"]) <= vocab_size and isinstance(blob["source"], str)
        for split in SPLITS:
            cols, offsets, y = blob[f"{split}_cols"], blob[f"{split}_offsets"], blob[f"{split}_y"]
            assert cols.dtype == offsets.dtype == y.dtype == torch.int64
            assert len(offsets) == len(y) + 1 and offsets[0] == 0 and offsets[-1] == len(cols)
            assert len(cols) == 0 or (cols.min() >= 0 and cols.max() < vocab_size)
        return blob
    except Exception as err:  # any damage at all means: rebuild from the reviews
        print(f"warning: data cache {path} is corrupt ({err.__class__.__name__}); rebuilding it from the source")
        return None


def _write_cache(blob, path):

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.atomic_write(path, lambda tmp: torch.save(blob, tmp))
    except OSError as err:  # a read-only data root should not stop training
        print(f"warning: could not write data cache {path} ({err}); the features will be built again next time")


# ---------------------------------------------------------------- synthetic

def make_synthetic_bow(n_train=2000, n_test=500, width=VOCAB_SIZE, num_classes=2, seed=SYNTHETIC_SEED):
    """Same tuple as load_imdb, from a fixed seed: each document holds 50-150 distinct words
    drawn from a Zipf-like base distribution (column 0 the most frequent, as in a vocabulary
    sorted by count), in which each class makes its own few hundred indicative words 3x as
    likely. Logistic regression learns it, but no single word decides a document."""
    g = torch.Generator().manual_seed(seed)
    logits = -torch.log(torch.arange(width, dtype=torch.float64) + 10)       # Zipf, exponent 1
    indicative = max(1, min(300, width // (10 * num_classes)))
    # indicative words are distinct per class, and never among the commonest 1% (like "the")
    words = torch.randperm(width - width // 100, generator=g)[:indicative * num_classes] + width // 100
    class_logits = logits.repeat(num_classes, 1)
    class_logits[torch.arange(num_classes).repeat_interleave(indicative), words] += np.log(3.0)
    train_x, train_y = _synthetic_split(n_train, class_logits, g)
    test_x, test_y = _synthetic_split(n_test, class_logits, g)
    return train_x, train_y, test_x, test_y, [f"w{j}" for j in range(width)], f"synthetic-bow:seed{seed}"


def _synthetic_split(n, class_logits, g, chunk=256):
    """n balanced documents; distinct words without replacement by the Gumbel top-k trick."""
    num_classes, width = class_logits.shape
    y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    lengths = torch.randint(50, 151, (n,), generator=g).clamp(max=width)
    kmax = int(lengths.max()) if n else 0
    picks = []
    for start in range(0, n, chunk):                                       # chunks keep memory at 256 x width
        gumbel = -torch.log(-torch.log(torch.rand(min(chunk, n - start), width, generator=g, dtype=torch.float64)))
        picks.append((class_logits[y[start:start + chunk]] + gumbel).topk(kmax, dim=1).indices)
    picks = torch.cat(picks) if picks else torch.zeros(0, 0, dtype=torch.int64)
    keep = torch.arange(kmax) < lengths[:, None]                            # the first k of a top-k: a sample of k
    cols = torch.where(keep, picks, width).sort(dim=1).values[keep]             # dropped words sort last
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    return SparseRows(cols, offsets, width), y
