"""The results document and its rows, typed: one class shared by the writer (``bench``,
the fleet's merge, ``--remote``) and every reader (report, summary, HTML page, gate, CLI).

Both stay JSON objects (``dict`` subclasses: ``json.dumps`` writes them unchanged, and a
results file written before these classes reads the same); the properties are the one
place that knows a key's spelling, its type and what its absence means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtmw.schemas import Status, VerificationMode


class BenchEntry(dict[str, Any]):
    """One artifact's row: identity, status, speed figures, accuracy and fidelity."""

    # -- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self["name"])

    @property
    def target(self) -> str:
        return str(self.get("target") or "?")

    @property
    def route(self) -> str:
        """What tables call the row: its export target, or its folder name for a row that
        failed before its manifest was read."""
        return str(self.get("target") or self.name)

    @property
    def task(self) -> str:
        """'pose' (RTMW/RTMW3D rows) or 'detect' (person detector rows)."""
        return str(self.get("task") or "pose")

    @property
    def precision(self) -> str:
        return str(self.get("precision") or "?")

    @property
    def model(self) -> str:
        return str(self.get("model") or "?")

    # -- status ---------------------------------------------------------------------------
    @property
    def status(self) -> Status:
        return Status(self["status"])

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def reason(self) -> str:
        return str(self.get("reason") or "")

    @property
    def verification(self) -> VerificationMode:
        """How the artifact was verified at export (rows from before the mode: accuracy)."""
        return VerificationMode(self.get("verification") or VerificationMode.ACCURACY)

    @property
    def latency_only(self) -> bool:
        return self.verification == VerificationMode.LATENCY_ONLY

    @property
    def status_label(self) -> str:
        """The status as tables show it: ``ok (latency-only)`` for unjudged weights."""
        if self.ok and self.verification != VerificationMode.ACCURACY:
            return f"{Status.OK} ({self.verification})"
        return str(self.status)

    # -- speed ----------------------------------------------------------------------------
    def latency(self, batch: int | str) -> dict[str, Any] | None:
        """Model-only latency statistics at one batch size (None: not measured)."""
        figures: dict[str, Any] | None = (self.get("latency") or {}).get(str(batch))
        return figures

    def frame(self, batch: int | str) -> dict[str, Any] | None:
        """The frame end to end at one batch size (None: not measured)."""
        figures: dict[str, Any] | None = (self.get("e2e") or {}).get(str(batch))
        return figures

    @property
    def frame_batches(self) -> list[str]:
        return list(self.get("e2e") or {})

    def persons_per_s(self, batch: int | str) -> float | None:
        frame = self.frame(batch)
        return None if frame is None else float(frame["persons_per_s"])

    def best_persons_per_s(self) -> float | None:
        rates = [self.persons_per_s(batch) for batch in self.frame_batches]
        known = [rate for rate in rates if rate is not None]
        return max(known) if known else None

    def speedup(self, batch: int | str) -> float | None:
        value = (self.get("speedup_vs_baseline") or {}).get(str(batch))
        return None if value is None else float(value)

    @property
    def stream(self) -> dict[str, Any] | None:
        figures: dict[str, Any] | None = self.get("stream")
        return figures

    @property
    def size_mb(self) -> float | None:
        value = self.get("size_mb")
        return None if value is None else float(value)

    # -- accuracy -------------------------------------------------------------------------
    @property
    def accuracy(self) -> dict[str, Any] | None:
        figures: dict[str, Any] | None = self.get("accuracy")
        return figures

    @property
    def is_3d(self) -> bool:
        return bool(self.accuracy and self.accuracy.get("3d"))

    def part(self, part: str) -> dict[str, Any] | None:
        """One part's accuracy figures (AP, AR, keypoint error), None when not measured."""
        parts = (self.accuracy or {}).get("parts") or {}
        figures: dict[str, Any] | None = parts.get(part)
        return figures

    def ap(self, part: str = "wholebody") -> float | None:
        figures = self.part(part)
        value = None if figures is None else figures.get("ap")
        return None if value is None else float(value)

    @property
    def detection(self) -> dict[str, Any] | None:
        """A detector row's person box AP (ap, ap50, ap75, ar100) and its detections file."""
        figures: dict[str, Any] | None = self.get("detection")
        return figures

    @property
    def frames_per_s(self) -> float | None:
        """A detector row's frames per second, one frame end to end."""
        frame = self.get("detect_frame") or {}
        value = frame.get("frames_per_s")
        return None if value is None else float(value)

    @property
    def fidelity(self) -> dict[str, Any] | None:
        figures: dict[str, Any] | None = self.get("fidelity")
        return figures


class ResultsDocument(dict[str, Any]):
    """A whole ``results.json``: environment, settings, baseline and the rows."""

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__(data)
        if "entries" in self:
            self["entries"] = [as_entry(e) for e in self["entries"]]

    @property
    def entries(self) -> list[BenchEntry]:
        rows: list[BenchEntry] = self["entries"]
        return rows

    def entry(self, name: str) -> BenchEntry | None:
        return next((e for e in self.entries if e.name == name), None)

    @property
    def name(self) -> str:
        return str(self.get("name") or "?")

    @property
    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = self.get("environment") or {}
        return env

    @property
    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = self.get("settings") or {}
        return settings

    @property
    def baseline(self) -> dict[str, Any] | None:
        baseline: dict[str, Any] | None = self.get("baseline")
        return baseline

    @property
    def reference(self) -> str | None:
        """The entry fidelity was measured against (``--reference``), if any."""
        value = self.settings.get("reference")
        return None if value is None else str(value)

    @property
    def path(self) -> str | None:
        """Where the document was read from (set by the loader)."""
        value = self.get("_path")
        return None if value is None else str(value)


def as_entry(row: Mapping[str, Any]) -> BenchEntry:
    return row if isinstance(row, BenchEntry) else BenchEntry(row)


def as_document(data: Mapping[str, Any]) -> ResultsDocument:
    return data if isinstance(data, ResultsDocument) else ResultsDocument(data)
