"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015) from its two original zips, decoded once to 28×28.

Files: ``images_background.zip`` and ``images_evaluation.zip``, laid out as
``images_{background,evaluation}/<Alphabet>/characterNN/XXXX_YY.png`` where ``XXXX`` is the global
character ID (0001-1623) and ``YY`` the drawing (01-20). Each PNG is a 105×105 1-bit image, white
paper and black ink.

Preprocessing follows MAML's ``resize_images.py``: PIL ``resize((28, 28), LANCZOS)`` of the mode-"1"
image, which Pillow carries out as NEAREST (it ignores the filter for mode "1"), so we call NEAREST
and say so; then ink = 1, paper = 0. The whole set is decoded once into one uint8 array
``(characters, drawings, 28, 28)``, rows in character-ID order, and cached as ``.npy`` next to the
zips (or in the user cache when that folder is read-only). The cache name carries the zips' sha256
sums, so changed zips are decoded again.

Split (Vinyals et al. 2016; MAML's code): 1200 characters for meta-training, the other 423 for
meta-testing, drawn from all 1623 regardless of background/evaluation; as in MAML's code, the last
100 of the 1200 are held out for validation, so 'train' has 1100, 'val' 100 and 'test' 423
characters. MAML shuffles folder names
with Python's ``random.seed(1)`` after ``os.listdir``, whose order depends on the file system, so its
exact split cannot be recovered. Ours is deterministic everywhere: sort the characters by ID, permute
them with ``numpy.random.RandomState(1).permutation`` (a stream NumPy keeps frozen across versions),
and take the first 1100 for training, the next 100 for validation and the rest for testing.
Rotations by 90° make new classes of the training characters, and of the test characters too where
``eval.rotations`` says so (MAML's and iMAML's code: :mod:`metaloop.tasks.omniglot`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from metaloop.errors import UserError

ZIPS = ("images_background.zip", "images_evaluation.zip")

# The official zips of github.com/brendenlake/omniglot (python/); torchvision publishes their md5.
URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}"
OFFICIAL_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
# The pixel-identical rebuild with re-encoded PNGs (shared/data/omniglot/README.md, SHA256SUMS).
REBUILT_SHA256 = {
    "images_background.zip": "7f51d14539d82866867bd9461dfe7ef957f398c3afef3b92c59d7f1c718ecb25",
    "images_evaluation.zip": "a78dd4f40430e8d2d0d15959b415b66efaec8331c020af418351a8606a10e7c9",
}
# Accepted digests per file: {"md5:<hex>", "sha256:<hex>"}; a zip matching none is never read.
TRUSTED: dict[str, frozenset[str]] = {
    name: frozenset({f"md5:{OFFICIAL_MD5[name]}", f"sha256:{REBUILT_SHA256[name]}"}) for name in ZIPS
}

IMAGE_SIZE = 28
TRAIN_CHARACTERS = 1200  # meta-training characters, validation included
VAL_CHARACTERS = 100  # MAML's code: num_val = 100 of the 1200
SPLIT_SEED = 1
_CACHE_VERSION = 1  # bump when the decoding changes, so old caches are not reused
_PNG = re.compile(r"^images_(background|evaluation)/([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")


class OmniglotUnavailable(UserError):
    """The Omniglot zips are missing, fail their checksum, or cannot be downloaded."""


@dataclass(frozen=True)
class OmniglotData:
    """Decoded Omniglot: ``images`` (characters, drawings, 28, 28) uint8, ink = 1, rows in ID order."""

    images: torch.Tensor
    character_ids: torch.Tensor  # (characters,) the XXXX of the file names
    character_names: tuple[str, ...]  # "<Alphabet>/characterNN"

    def split(self, name: str, train_characters: int = TRAIN_CHARACTERS, seed: int = SPLIT_SEED,
              val_characters: int = VAL_CHARACTERS) -> torch.Tensor:
        """Images of the 'train', 'val' or 'test' characters (module docstring: how the split is made)."""
        return self.images[split_indices(len(self.character_ids), name, train_characters, seed, val_characters)]


def split_indices(characters: int, name: str, train_characters: int = TRAIN_CHARACTERS,
                  seed: int = SPLIT_SEED, val_characters: int = VAL_CHARACTERS) -> torch.Tensor:
    """Row indices (sorted) of the 'train', 'val' or 'test' split of ``characters`` rows in ID order;
    'val' is the last ``val_characters`` of the ``train_characters`` meta-training characters."""
    if name not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
    if not 0 < train_characters < characters or not 0 <= val_characters < train_characters:
        raise ValueError(f"need 0 < train_characters < {characters} and 0 <= val_characters < train_characters, "
                         f"got {train_characters} and {val_characters}")
    order = np.random.RandomState(seed).permutation(characters)
    fit = train_characters - val_characters
    rows = {"train": order[:fit], "val": order[fit:train_characters], "test": order[train_characters:]}[name]
    return torch.from_numpy(np.sort(rows))


def data_root(root: Optional[str | os.PathLike] = None) -> Path:
    """The folder holding the zips: ``root`` (config ``task.root``), else ``$METALOOP_DATA``, else
    ``~/.cache/metaloop/data``. A root that does not hold the zips itself is searched for ``omniglot/``.
    """
    if root in (None, ""):
        root = os.environ.get("METALOOP_DATA") or Path.home() / ".cache" / "metaloop" / "data"
    root = Path(root).expanduser()
    if not all((root / z).exists() for z in ZIPS) and (root / "omniglot").is_dir():
        return root / "omniglot"
    return root


def load(root: Optional[str | os.PathLike] = None, trusted: Mapping[str, frozenset[str]] = TRUSTED,
         cache_dir: Optional[str | os.PathLike] = None) -> OmniglotData:
    """Verify the zips under :func:`data_root` (``root``), then read the cached decode or build it."""
    folder = data_root(root)
    digests = {name: _verified_digests(folder, name, trusted) for name in ZIPS}
    key = hashlib.sha256(f"v{_CACHE_VERSION}:{IMAGE_SIZE}:".encode()
                         + b"".join(d["sha256"].encode() for d in digests.values())).hexdigest()[:16]
    names, ids = _index(folder)
    cache = _cache_file(folder, key, cache_dir)
    images = _read_cache(cache, len(ids))
    if images is None:
        images = decode(folder)
        _save_atomic(cache, images, prune=cache.parent == folder)
    return OmniglotData(torch.from_numpy(images), torch.tensor(ids), tuple(names))


def decode_png(png: bytes) -> np.ndarray:
    """One PNG as 28×28 uint8, ink = 1: MAML's LANCZOS resize, which Pillow does as NEAREST for mode "1"."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        small = img.convert("1").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.NEAREST)
    return 1 - np.asarray(small, dtype=np.uint8)


def decode(folder: Path) -> np.ndarray:
    """Every PNG of both zips as ``(characters, drawings, 28, 28)`` uint8, ink = 1 (~9 s on one core)."""
    entries = _entries(folder)
    ids = sorted({e[1] for e in entries})
    row = {cid: i for i, cid in enumerate(ids)}
    drawings = _drawings_per_character(entries)
    images = np.zeros((len(ids), drawings, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for zip_name in ZIPS:
        with zipfile.ZipFile(folder / zip_name) as z:
            for path, cid, drawing, _ in (e for e in entries if e[3] == zip_name):
                images[row[cid], drawing - 1] = decode_png(z.read(path))
    return images


def download(root: Optional[str | os.PathLike] = None, url: str = URL,
             trusted: Mapping[str, frozenset[str]] = TRUSTED) -> Path:
    """Fetch the official zips into :func:`data_root` (``root``); keep only files that pass a checksum.

    A zip already present and trusted is not fetched again. Returns the folder.
    """
    folder = data_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ZIPS:
        target = folder / name
        if target.exists() and _matches(_digests(target), trusted[name]):
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url.format(name=name), timeout=60) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            if not _matches(_digests(Path(tmp)), trusted[name]):
                raise OmniglotUnavailable(f"the downloaded {name} from {url.format(name=name)} fails its checksum; "
                                          f"it was deleted. {_where(folder)}")
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError) as exc:
            raise OmniglotUnavailable(f"could not download {name} ({exc}). {_where(folder)}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return folder


def _where(folder: Path) -> str:
    return (f"Put images_background.zip and images_evaluation.zip from github.com/brendenlake/omniglot "
            f"(python/) in {folder}, or point to a folder holding them with --set task.root=DIR or "
            f"METALOOP_DATA=DIR, or fetch them with metaloop.data.omniglot.download().")


def _digests(path: Path) -> dict[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _matches(digests: Mapping[str, str], accepted: frozenset[str]) -> bool:
    return any(f"{kind}:{value}" in accepted for kind, value in digests.items())


def _verified_digests(folder: Path, name: str, trusted: Mapping[str, frozenset[str]]) -> dict[str, str]:
    path = folder / name
    if not path.exists():
        raise OmniglotUnavailable(f"{path} not found. {_where(folder)}")
    digests = _digests(path)
    if not _matches(digests, trusted[name]):
        raise OmniglotUnavailable(f"{path} fails its checksum (sha256 {digests['sha256']}): corrupt or not "
                                  f"the official file, so it is not read. {_where(folder)}")
    return digests


def _entries(folder: Path) -> list[tuple[str, int, int, str]]:
    """(path in zip, character ID, drawing, zip name) of every PNG, checked against the layout."""
    entries = []
    for zip_name in ZIPS:
        try:
            with zipfile.ZipFile(folder / zip_name) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            raise OmniglotUnavailable(f"{folder / zip_name} is not a zip file. {_where(folder)}") from None
        for path in names:
            m = _PNG.match(path)
            if m:
                entries.append((path, int(m.group(4)), int(m.group(5)), zip_name))
            elif path.lower().endswith(".png"):
                raise OmniglotUnavailable(f"{folder / zip_name}: {path} does not follow "
                                          "images_*/<Alphabet>/characterNN/XXXX_YY.png")
    if not entries:
        raise OmniglotUnavailable(f"no Omniglot PNGs in {folder}. {_where(folder)}")
    return entries


def _drawings_per_character(entries: Sequence[tuple[str, int, int, str]]) -> int:
    drawings: dict[int, set[int]] = {}
    for _, cid, drawing, _ in entries:
        drawings.setdefault(cid, set()).add(drawing)
    counts = {len(d) for d in drawings.values()}
    n = max(counts)
    if counts != {n} or any(d != set(range(1, n + 1)) for d in drawings.values()):
        raise OmniglotUnavailable(f"every character must have drawings 01..{n:02d}; some do not")
    return n


def _index(folder: Path) -> tuple[list[str], list[int]]:
    """Character names ("<Alphabet>/characterNN") and IDs, in ID order (the rows of the image array)."""
    name_of = {}
    for path, cid, _, _ in _entries(folder):
        alphabet, character = path.split("/")[1:3]
        if name_of.setdefault(cid, f"{alphabet}/{character}") != f"{alphabet}/{character}":
            raise OmniglotUnavailable(f"character ID {cid:04d} appears in two folders")
    ids = sorted(name_of)
    return [name_of[i] for i in ids], ids


def _cache_file(folder: Path, key: str, cache_dir: Optional[str | os.PathLike]) -> Path:
    """``omniglot28_<key>.npy`` in ``cache_dir``, else next to the zips, else (read-only) the user cache."""
    name = f"omniglot{IMAGE_SIZE}_{key}.npy"
    if cache_dir is not None:
        return Path(cache_dir) / name
    # Write bits too, not just os.access: root may write anywhere, but a read-only data folder (a
    # shared copy) says it should stay as it is.
    if os.access(folder, os.W_OK) and folder.stat().st_mode & 0o222:
        return folder / name
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metaloop" / "omniglot" / name


def _read_cache(path: Path, characters: int) -> Optional[np.ndarray]:
    """The cached decode, or None when it is absent, unreadable or of the wrong shape (then rebuilt)."""
    try:
        images = np.load(path)
    except (OSError, ValueError):
        return None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != characters \
            or images.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE):
        return None
    return images


def _save_atomic(path: Path, images: np.ndarray, prune: bool) -> None:
    """Write through a temp file + rename, so a crash never leaves half a cache.

    ``prune``: delete decodes of earlier zips in the same folder (only next to the zips, where
    every cache belongs to those zips; a shared user cache may hold decodes of other copies).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, images)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a cache others may read is fine
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for old in path.parent.glob(f"omniglot{IMAGE_SIZE}_*.npy") if prune else ():
        if old != path:
            old.unlink(missing_ok=True)
