"""Findings: what detection hands to an owner — evidence, a dollar figure per month and a proposed fix.

Pure data. Storage (with status, owner and feedback) lives in tools/store; rules, anomaly detection and
budget checks produce ``Finding`` objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

FindingKind = Literal["waste", "anomaly", "budget", "token-budget", "governance"]
Severity = Literal["low", "medium", "high"]


def fingerprint(*parts: object) -> str:
    """A stable id for "the same finding": the same rule on the same resource/scope (and period, for alerts).

    Re-scans compute the same fingerprint, so they update a finding instead of duplicating it.
    """
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    rule_id: str
    fingerprint: str
    title: str
    monthly_impact: Decimal  # estimated $ per month at stake (savings for waste, excess for anomalies)
    detected_at: datetime
    resource: str | None = None  # cloud resource id / ARN, or None for a scope-level finding
    resource_kind: str | None = None  # e.g. ec2-instance, sagemaker-endpoint, ebs-volume, llm-feature
    scope: Mapping[str, str] = field(default_factory=dict)  # dimensions, e.g. {"team": "search"}
    currency: str = "USD"
    severity: Severity = "medium"
    evidence: Mapping[str, Any] = field(default_factory=dict)  # JSON-serialisable facts the rule used
    proposed_action: str | None = None  # remediation action type name; None = recommendation only
    action_params: Mapping[str, Any] = field(default_factory=dict)
    recommendation: str | None = None  # what to do, in words
    tags: Mapping[str, str] = field(default_factory=dict)  # the resource's tags, for owner resolution
    account: str | None = None  # account / subscription / project holding the resource
