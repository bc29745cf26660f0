"""Segments in the main job: each evaluated by Dataverse as a server-side query, members reported per segment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dataverse.client import DataverseClient
from dataverse.mapping import read_annotations, segment_member
from dataverse.segment_query import segment_query
from journeys.segments import Member, Segment

__all__ = ["evaluate_segment", "evaluate_segments", "segment_report"]


def evaluate_segment(client: DataverseClient, segment: Segment) -> list[Member]:
    """The segment's members, as Dataverse answers its query (paged); sorted like `journeys.segments.members`."""
    rows = client.iter_rows(segment_query(segment), annotations=read_annotations("contact"))
    return sorted(segment_member(row) for row in rows)


def evaluate_segments(client: DataverseClient, segments: Sequence[Segment]) -> dict[str, list[Member]]:
    return {segment.name: evaluate_segment(client, segment) for segment in segments}


def segment_report(members: dict[str, list[Member]]) -> dict[str, dict[str, Any]]:
    """`{name: {"members": n, "accounts": n}}` for the run's JSON."""
    return {
        name: {"members": len(found), "accounts": len({m.account_id for m in found if m.account_id})}
        for name, found in members.items()
    }
