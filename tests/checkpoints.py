"""Streaming checkpoints as a crash leaves them."""

from __future__ import annotations

from pathlib import Path


def forget_last_batch(checkpoint: str | Path) -> int:
    """Make the query of ``checkpoint`` run its last micro-batch again when it restarts; returns that batch's id.

    Spark records a micro-batch as done in ``commits/<id>`` after the batch's writes: a crash between the two leaves
    the batch's offsets without its commit, and the restarted query runs it again on the same input. Removing the
    commit (and its checksum file) is that crash, after the writes went through.
    """
    commits = Path(checkpoint) / "commits"
    last = max(int(path.name) for path in commits.iterdir() if path.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)
    return last
