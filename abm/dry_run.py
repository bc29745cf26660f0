"""Dry runs: the exact writes a run would make, without making them.

A dry run is composition, not a mode of the jobs: the composition root (`abm.bootstrap.build_dry_run`) gives a run a
client whose transport records writes instead of sending them (`dataverse.recording.RecordingTransport`: reads are
real, counted and retried like any other) and a state store that keeps its writes in memory
(`statestore.overlay.OverlayStore`), so the run sees its own writes and nothing real is touched. The jobs run on them
as on the real ones; a job that reports a dry run's writes (`abm.jobs.events.replay`) takes the `DryRun`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dataverse.client import DataverseClient
from statestore.port import StateStore

__all__ = ["DryRun"]


@dataclass(frozen=True)
class DryRun:
    """What a dry run runs on: its `client` (writes recorded), its `store` (writes kept in memory), and `writes`, the
    record of every write request in the order the run made them (`{"operation", "target", ...}`)."""

    client: DataverseClient
    store: StateStore
    writes: Sequence[dict[str, Any]]
