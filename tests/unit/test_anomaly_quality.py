"""Measured quality of anomaly detection on the labelled generator, next to the naive LLM-gateway rule.

Run with ``pytest -s`` to see the figures side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from config.model import AnomalyThreshold
from tests.anomaly_series import Labelled, generate
from tools.anomaly import detect, naive_gateway_rule

SUSTAINED = {"level_shift", "drift"}


@dataclass(frozen=True)
class Score:
    detections: int
    true_detections: int
    labels: int
    found_labels: int

    @property
    def precision(self) -> float:
        return self.true_detections / self.detections if self.detections else 1.0

    @property
    def recall(self) -> float:
        return self.found_labels / self.labels if self.labels else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _fits(label_kind: str, kind: str | None, strict: bool = False) -> bool:
    """The kind family fits: a spike is a spike; level shifts and drifts are both sustained changes."""
    if kind is None:  # the naive rule names no kind
        return True
    return kind == label_kind or (not strict and kind in SUSTAINED and label_kind in SUSTAINED)


def _matches(label: tuple[int, str], detection: tuple[int, str | None], strict: bool = False) -> bool:
    tolerance = 7 if "drift" in (label[1], detection[1]) else 1
    return abs(label[0] - detection[0]) <= tolerance and _fits(label[1], detection[1], strict)


def _score(cases: Iterable[tuple[Labelled, list[tuple[int, str | None]]]], strict: bool = False) -> Score:
    detections = true_detections = labels = found = 0
    for case, found_here in cases:
        # detections are counted in the evaluation window; a label there may be found by one starting
        # up to the drift tolerance before it
        counted = [d for d in found_here if d[0] >= case.eval_start]
        near = [d for d in found_here if d[0] >= case.eval_start - 7]
        detections += len(counted)
        true_detections += sum(any(_matches(lb, d, strict) for lb in case.labels) for d in counted)
        labels += len(case.labels)
        found += sum(any(_matches(lb, d, strict) for d in near) for lb in case.labels)
    return Score(detections, true_detections, labels, found)


def _index(case: Labelled, day: date) -> int:
    return (day - case.series.start).days


def _naive_runs(case: Labelled) -> list[tuple[int, str | None]]:
    """Consecutive flagged days count as one detection (fairer to the rule than one per day)."""
    days = sorted(_index(case, d) for d in naive_gateway_rule(case.series))
    return [(d, None) for i, d in enumerate(days) if i == 0 or days[i - 1] != d - 1]


def quality_report(n: int = 300) -> dict[str, dict[str, float]]:
    """Precision / recall / F1 of ``detect`` and of the naive rule on ``n`` generated series."""
    cases = generate(n)
    threshold = AnomalyThreshold()
    began = time.perf_counter()
    detected = [(c, [(_index(c, a.start), a.kind) for a in detect(c.series, threshold)]) for c in cases]
    seconds = time.perf_counter() - began
    naive = [(c, _naive_runs(c)) for c in cases]
    out: dict[str, dict[str, float]] = {}
    scores = {
        "detector": _score(detected),
        "detector_exact_kind": _score(detected, strict=True),
        "naive_rule": _score(naive),
    }
    for name, score in scores.items():
        out[name] = {
            "precision": round(score.precision, 3),
            "recall": round(score.recall, 3),
            "f1": round(score.f1, 3),
            "detections": score.detections,
            "labels": score.labels,
        }
    out["detector"]["seconds"] = round(seconds, 2)
    out["detector"]["series"] = len(cases)
    return out


def test_anomaly_quality_beats_the_naive_rule() -> None:
    report = quality_report()
    det, naive = report["detector"], report["naive_rule"]
    print()
    print(f"{'':20}{'precision':>10}{'recall':>8}{'F1':>7}{'detections':>12}{'labels':>8}")
    for name, figures in report.items():
        print(
            f"{name:20}{figures['precision']:>10.3f}{figures['recall']:>8.3f}{figures['f1']:>7.3f}"
            f"{int(figures['detections']):>12}{int(figures['labels']):>8}"
        )
    print(f"detector: {int(det['series'])} series in {det['seconds']} s")
    assert det["precision"] >= 0.9
    assert det["recall"] >= 0.9
    assert det["f1"] > naive["f1"]
