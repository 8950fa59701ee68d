"""Builds FOCUS export files for tests, with the quirks of real exports when asked."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

BASE_COLUMNS = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeFrequency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingUnit",
    "ProviderName",
    "RegionId",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceSubcategory",
    "ServiceName",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
]


def row(
    cost: str | Decimal = "1.00",
    *,
    start: str = "2024-09-01T00:00:00Z",
    end: str | None = None,
    account: str = "999988887777",
    sub_account: str = "111122223333",
    service: str = "Amazon Elastic Compute Cloud",
    category: str = "Compute",
    resource: str | None = "i-0001",
    tags: dict[str, Any] | str | None = None,
    provider: str = "AWS",
    charge_category: str = "Usage",
    frequency: str = "Usage-Based",
    effective: str | Decimal | None = None,
    list_cost: str | Decimal | None = None,
    period: str = "2024-09",
    subcategory: str | None = None,
    sku: str | None = "sku-1",
    **extra: Any,
) -> dict[str, Any]:
    year, month = (int(p) for p in period.split("-"))
    nxt = f"{year + (month == 12)}-{1 if month == 12 else month + 1:02d}"
    if end is None:
        end = start.replace("T00:00:00Z", "T01:00:00Z") if start.endswith("T00:00:00Z") else start
    out: dict[str, Any] = {
        "BilledCost": str(cost),
        "EffectiveCost": str(effective if effective is not None else cost),
        "ListCost": str(list_cost if list_cost is not None else cost),
        "BillingAccountId": account,
        "BillingAccountName": "Payer",
        "BillingCurrency": "USD",
        "BillingPeriodStart": f"{period}-01T00:00:00Z",
        "BillingPeriodEnd": f"{nxt}-01T00:00:00Z",
        "ChargeCategory": charge_category,
        "ChargeClass": None,
        "ChargeFrequency": frequency,
        "ChargePeriodStart": start,
        "ChargePeriodEnd": end,
        "ConsumedQuantity": "1",
        "ConsumedUnit": "Hours",
        "PricingUnit": "Hours",
        "ProviderName": provider,
        "RegionId": "us-east-1",
        "ResourceId": resource,
        "ResourceName": resource,
        "ResourceType": "Instance",
        "ServiceCategory": category,
        "ServiceSubcategory": subcategory,
        "ServiceName": service,
        "SkuId": sku,
        "SubAccountId": sub_account,
        "SubAccountName": "prod",
        "Tags": tags if isinstance(tags, str) or tags is None else json.dumps(tags),
    }
    out.update(extra)
    return out


def write_focus(
    path: Path, rows: Sequence[dict[str, Any]], *, null: str = "", columns: Sequence[str] | None = None
) -> Path:
    """Write rows as CSV (gzip when the name ends in .gz) or Parquet (.parquet)."""
    cols = (
        list(columns)
        if columns is not None
        else list(dict.fromkeys([*BASE_COLUMNS, *(k for r in rows for k in r)]))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".parquet"):
        tmp = path.with_suffix(".tmp.csv")
        write_focus(tmp, rows, columns=cols)
        duckdb.sql(
            f"COPY (SELECT * FROM read_csv('{tmp}', all_varchar=true, header=true)) TO '{path}' (FORMAT parquet)"
        )
        tmp.unlink()
        return path
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow([null if r.get(c) is None else r.get(c) for c in cols])
    data = buf.getvalue().encode()
    if path.name.endswith(".gz"):
        with gzip.GzipFile(path, "wb", mtime=0) as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def total(rows: Sequence[dict[str, Any]], column: str = "EffectiveCost") -> Decimal:
    return sum((Decimal(str(r[column])) for r in rows if r.get(column) not in (None, "", "NULL")), Decimal(0))
