"""The model names the pipeline knows: one per network module in ``model/nets/``.

Listed from the folder, without importing torch, so that every stage, the data stages
included, refuses a model with no network behind it before any work.
"""

from __future__ import annotations

from pathlib import Path

NETS_DIR = Path(__file__).resolve().parents[1] / "model" / "nets"


def model_names() -> list[str]:
    """The names of the networks: ``model/nets/<name>.py``, sorted."""
    return sorted(path.stem for path in NETS_DIR.glob("*.py") if not path.stem.startswith("_"))
