"""A training run's per-epoch figures, and the two files they are written to.

``plots/<model>/history.csv`` holds every epoch so far, ``metrics/<model>_live.json`` the
latest one. Both are rewritten after every epoch, at fixed precision and with no clock
time, so a rerun gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EpochRecord:
    """One row of ``history.csv``."""

    epoch: int
    train_loss: float  # plain cross-entropy on the (augmented) training batches
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lr: float  # learning rate of the epoch's last step
    validation_loss: float | None = None  # with a validation split held out, else None
    validation_accuracy: float | None = None


def history_csv(history: list[EpochRecord]) -> str:
    """The history as CSV text, floats at fixed precision so reruns give the same bytes.

    The validation columns appear only when a validation split was held out.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = [{k: v for k, v in asdict(record).items() if v is not None} for record in history]
    names = list(rows[0])  # a run trains at least one epoch
    writer.writerow(names)
    for row in rows:
        writer.writerow([f"{row[n]:.6g}" if isinstance(row[n], float) else row[n] for n in names])
    return buffer.getvalue()


def live_metrics_json(history: list[EpochRecord], epochs: int) -> str:
    """The latest epoch's figures as JSON, at the history's precision."""
    latest = {k: v for k, v in asdict(history[-1]).items() if v is not None}
    values = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in latest.items()}
    return json.dumps({**values, "epochs": epochs}, indent=2) + "\n"
