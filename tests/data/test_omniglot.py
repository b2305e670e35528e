"""Omniglot on disk (metaloop/data/omniglot.py): checksums, decoding, the cache, the split, download.

Most tests build a tiny Omniglot in the original zip layout (PIL-written 1-bit PNGs). Each 105×105
image is a 7×7 grid of 15-pixel blocks coding (character, drawing); nearest-neighbour resizing to
28×28 maps every block onto exactly 4×4 pixels, so the expected decode is known without PIL.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metaloop.data import omniglot as og
from metaloop.errors import UserError

# (zip stem, alphabet, number of characters); IDs run on across alphabets as in the real data.
LAYOUT = [("images_background", "Alpha", 3), ("images_background", "Beta", 2), ("images_evaluation", "Gamma", 3)]
DRAWINGS = 4
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"


def code(cid: int, drawing: int, salt: int = 0) -> np.ndarray:
    """7×7 ink pattern (1 = ink) of a character's drawing: 49 bits of a number unique to the pair."""
    value = (cid * 64 + drawing) * 7919 + salt + 1
    return np.array([(value >> k) & 1 for k in range(49)], dtype=np.uint8).reshape(7, 7)


def make_omniglot(folder: Path, salt: int = 0) -> dict:
    """Write the two zips into ``folder``; return their trusted digests for :func:`og.load`."""
    folder.mkdir(parents=True, exist_ok=True)
    cid = 0
    for stem in ("images_background", "images_evaluation"):
        with zipfile.ZipFile(folder / f"{stem}.zip", "w") as z:
            z.writestr(f"{stem}/", "")
            for zstem, alphabet, characters in LAYOUT:
                if zstem != stem:
                    continue
                for c in range(1, characters + 1):
                    cid += 1
                    for d in range(1, DRAWINGS + 1):
                        paper = np.kron(1 - code(cid, d, salt), np.ones((15, 15), dtype=np.uint8)).astype(bool)
                        path = folder / "png.png"
                        Image.fromarray(paper).convert("1").save(path)
                        z.write(path, f"{stem}/{alphabet}/character{c:02d}/{cid:04d}_{d:02d}.png")
                        path.unlink()
    return trust(folder)


def trust(folder: Path) -> dict:
    return {name: frozenset({"sha256:" + hashlib.sha256((folder / name).read_bytes()).hexdigest()})
            for name in og.ZIPS}


@pytest.fixture
def tiny(tmp_path):
    folder = tmp_path / "omniglot"
    return folder, make_omniglot(folder)


def test_decode_is_nearest_resize_with_ink_one(tiny):
    folder, trusted = tiny
    data = og.load(folder, trusted)
    assert data.images.shape == (8, DRAWINGS, 28, 28) and data.images.dtype == torch.uint8
    assert data.character_ids.tolist() == list(range(1, 9))
    assert data.character_names[:4] == ("Alpha/character01", "Alpha/character02", "Alpha/character03",
                                         "Beta/character01")
    assert data.character_names[-1] == "Gamma/character03"
    for row in range(8):
        for d in range(DRAWINGS):
            expected = np.kron(code(row + 1, d + 1), np.ones((4, 4), dtype=np.uint8))
            np.testing.assert_array_equal(data.images[row, d].numpy(), expected)


def test_cache_is_reused_and_rebuilt_when_the_zips_change(tiny, tmp_path, monkeypatch):
    folder, trusted = tiny
    first = og.load(folder, trusted)
    caches = list(folder.glob("omniglot28_*.npy"))
    assert len(caches) == 1

    monkeypatch.setattr(og, "decode", lambda folder: pytest.fail("decoded again despite a valid cache"))
    assert np.array_equal(og.load(folder, trusted).images.numpy(), first.images.numpy())
    monkeypatch.undo()

    trusted = make_omniglot(folder, salt=1)  # same layout, other pixels: other sums
    second = og.load(folder, trusted)
    assert not np.array_equal(second.images.numpy(), first.images.numpy())
    assert list(folder.glob("omniglot28_*.npy")) != caches and len(list(folder.glob("omniglot28_*.npy"))) == 1

    caches = list(folder.glob("omniglot28_*.npy"))
    caches[0].write_bytes(b"truncated")  # a broken cache is decoded again, not trusted
    np.testing.assert_array_equal(og.load(folder, trusted).images.numpy(), second.images.numpy())


def test_read_only_folder_caches_elsewhere(tiny, tmp_path):
    folder, trusted = tiny
    og.load(folder, trusted, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("omniglot28_*.npy"))) == 1
    assert not list(folder.glob("*.npy"))


def test_files_failing_their_checksum_are_never_read(tiny, monkeypatch):
    folder, trusted = tiny
    monkeypatch.setattr(og, "decode", lambda folder: pytest.fail("read an untrusted zip"))
    with pytest.raises(og.OmniglotUnavailable, match="fails its checksum") as info:
        og.load(folder)  # the synthetic zips are not the official ones
    assert isinstance(info.value, UserError)
    assert str(folder) in str(info.value) and "task.root" in str(info.value)
    with (folder / "images_evaluation.zip").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(og.OmniglotUnavailable, match="images_evaluation.zip fails its checksum"):
        og.load(folder, trusted)


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(og.OmniglotUnavailable, match="not found") as info:
        og.load(tmp_path)
    message = str(info.value)
    assert "images_background.zip" in message and "METALOOP_DATA" in message and str(tmp_path) in message


def test_data_root_from_argument_environment_or_omniglot_subfolder(tiny, tmp_path, monkeypatch):
    folder, _ = tiny
    monkeypatch.setenv("METALOOP_DATA", str(tmp_path))
    assert og.data_root() == folder  # $METALOOP_DATA/omniglot
    assert og.data_root(folder) == folder
    assert og.data_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    monkeypatch.delenv("METALOOP_DATA")
    assert og.data_root() == Path.home() / ".cache" / "metaloop" / "data"


def test_download_verifies_every_file(tiny, tmp_path):
    source, trusted = tiny
    url = source.as_uri() + "/{name}"
    target = tmp_path / "fetched"
    assert og.download(target, url, trusted) == target
    assert trust(target) == trusted
    assert og.load(target, trusted).images.shape == (8, DRAWINGS, 28, 28)

    bad = {name: frozenset({"sha256:" + "0" * 64}) for name in og.ZIPS}
    with pytest.raises(og.OmniglotUnavailable, match="fails its checksum; it was deleted"):
        og.download(tmp_path / "bad", url, bad)
    assert not list((tmp_path / "bad").iterdir())


def test_download_offline_is_a_clear_error(tmp_path):
    with pytest.raises(og.OmniglotUnavailable, match="could not download images_background.zip") as info:
        og.download(tmp_path, "http://127.0.0.1:9/{name}")
    assert "task.root" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_split_is_deterministic_disjoint_and_standard_sized():
    train, val, test = (og.split_indices(1623, name) for name in ("train", "val", "test"))
    assert len(train) == 1100 and len(val) == 100 and len(test) == 423  # MAML's code: 1200 = 1100 + 100 val
    assert sorted(train.tolist() + val.tolist() + test.tolist()) == list(range(1623))
    # Pinned: RandomState(1).permutation is frozen by NumPy, so this never changes.
    assert test[:10].tolist() == [15, 20, 21, 24, 25, 36, 43, 44, 55, 63]
    with pytest.raises(ValueError):
        og.split_indices(1623, "validation")


def test_split_selects_rows(tiny):
    folder, trusted = tiny
    data = og.load(folder, trusted)
    train = data.split("train", train_characters=5, val_characters=1)
    rows = og.split_indices(8, "train", 5, val_characters=1)
    assert len(rows) == 4
    np.testing.assert_array_equal(train.numpy(), data.images[rows].numpy())


@pytest.mark.skipif(not (SHARED / "images_background.zip").exists(), reason=f"no Omniglot copy at {SHARED}")
def test_real_omniglot_is_trusted_indexed_and_decoded_like_the_packed_arrays():
    for name in og.ZIPS:
        og._verified_digests(SHARED, name, og.TRUSTED)
    names, ids = og._index(SHARED)
    assert ids == list(range(1, 1624))
    assert names[1527 - 1] == "Sylheti/character25" and names[335 - 1] == "Futurama/character11"
    # A few PNGs through our decoding, against the README's packed array resized by plain indexing.
    packed = np.load(SHARED / "omniglot_105x105_packed.npz")["images_packed"]
    nearest = (2 * np.arange(28) + 1) * 105 // 56  # PIL NEAREST: source pixel of output centre
    with zipfile.ZipFile(SHARED / "images_evaluation.zip") as z:
        for cid, drawing in [(1527, 15), (1276, 3), (1569, 12), (1623, 20)]:
            path = f"images_evaluation/{names[cid - 1]}/{cid:04d}_{drawing:02d}.png"
            paper = np.unpackbits(packed[cid - 1, drawing - 1], axis=-1, count=105)
            np.testing.assert_array_equal(og.decode_png(z.read(path)), 1 - paper[np.ix_(nearest, nearest)])
