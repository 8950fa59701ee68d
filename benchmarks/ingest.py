"""Ingestion and query benchmark of the cost lake, side by side with plain DuckDB in the same run.

    .venv/bin/python benchmarks/ingest.py [--rows 1000000] [--workdir DIR] [--keep] [--repeat 3]

1. Generates N rows of a FOCUS 1.1 export (one CSV; one month, hourly, ~2,000 resources, ~40
   services, 3 sub accounts, 6 teams in Tags, 10-decimal costs, credits) with DuckDB itself.
2. Times ``finops ingest focus FILE --source bench`` run as a subprocess of the real CLI (on a fresh
   database and lake each time; --repeat runs, interleaved with the reference, median reported).
3. Times the reference: a Python child doing DuckDB's plain auto-detected load of the same file into a
   table (``CREATE TABLE bill AS SELECT * FROM read_csv(FILE)``), with the product's memory / threads.
4. Times three typical queries in-process (median of 5 after 1 warm-up): through the product
   (``open_costs`` + ``query_costs``) and as the equivalent SQL over the reference table.
5. Prints figures side by side, the targets with PASS/FAIL and a check that the product's total equals
   the CSV's total. Exit status 1 when a target or check fails.

Peak RSS of a child: a sampler thread reads, every 20 ms, the RSS of the child's whole process tree
(psutil; the peak of the sums is reported) and the kernel's own high-water mark of each process
(VmHWM in /proc/<pid>/status, shown as a cross-check). ``getrusage`` / ``wait4`` is not used: on Linux a
child spawned by fork/vfork inherits the parent's RSS high-water mark at exec, so it reports the
benchmark's own peak for a child that used a few MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psutil

from tools.costs import CostQuery, open_costs, query_costs
from tools.periods import Period
from tools.store.lake import MEMORY_LIMIT, THREADS, Lake, sql_string

SOURCE = "bench"
PERIOD = Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09")
HOURS = 30 * 24  # September 2024, hourly
RESOURCES = 2000
TEAMS = ("search", "support", "platform", "ml-research", "growth", "data")
FILTER_TEAM = "search"
POLL_SECONDS = 0.02
QUERY_RUNS = 5
TARGET_RSS_MIB = 1024.0
TARGET_QUERY_MS = 50.0
TOTAL_TOLERANCE = Decimal("1e-6")

# (ServiceName, ServiceCategory, ServiceSubcategory, x_ServiceCode, ResourceType, unit)
SERVICES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "AmazonEC2", "Instance", "Hours"),
    ("AWS Lambda", "Compute", "Serverless Compute", "AWSLambda", "Function", "Requests"),
    ("Amazon Elastic Container Service", "Compute", "Containers", "AmazonECS", "Cluster", "Hours"),
    ("Amazon Elastic Kubernetes Service", "Compute", "Containers", "AmazonEKS", "Cluster", "Hours"),
    ("AWS Fargate", "Compute", "Containers", "AWSFargate", "Task", "Hours"),
    ("AWS Batch", "Compute", "Other (Compute)", "AWSBatch", "Job", "Hours"),
    ("Amazon Lightsail", "Compute", "Virtual Machines", "AmazonLightsail", "Instance", "Hours"),
    ("Amazon Simple Storage Service", "Storage", "Object Storage", "AmazonS3", "Bucket", "GB-Mo"),
    ("Amazon Elastic Block Store", "Storage", "Block Storage", "AmazonEBS", "Volume", "GB-Mo"),
    ("Amazon Elastic File System", "Storage", "File Storage", "AmazonEFS", "FileSystem", "GB-Mo"),
    ("Amazon S3 Glacier", "Storage", "Archive Storage", "AmazonGlacier", "Vault", "GB-Mo"),
    ("AWS Backup", "Storage", "Backup Storage", "AWSBackup", "Vault", "GB-Mo"),
    (
        "Amazon Relational Database Service",
        "Databases",
        "Relational Databases",
        "AmazonRDS",
        "DBInstance",
        "Hours",
    ),
    ("Amazon Aurora", "Databases", "Relational Databases", "AmazonAurora", "DBCluster", "Hours"),
    ("Amazon DynamoDB", "Databases", "NoSQL Databases", "AmazonDynamoDB", "Table", "Requests"),
    ("Amazon ElastiCache", "Databases", "Caching", "AmazonElastiCache", "CacheCluster", "Hours"),
    ("Amazon Redshift", "Analytics", "Data Warehouses", "AmazonRedshift", "Cluster", "Hours"),
    ("Amazon Athena", "Analytics", "Analytics Platforms", "AmazonAthena", "WorkGroup", "TB"),
    ("Amazon EMR", "Analytics", "Data Processing", "ElasticMapReduce", "Cluster", "Hours"),
    ("AWS Glue", "Analytics", "Data Processing", "AWSGlue", "Job", "DPU-Hours"),
    ("Amazon Kinesis", "Analytics", "Streaming Analytics", "AmazonKinesis", "Stream", "Shard-Hours"),
    ("Amazon OpenSearch Service", "Analytics", "Search", "AmazonES", "Domain", "Hours"),
    ("Amazon QuickSight", "Analytics", "Business Intelligence", "AmazonQuickSight", "Account", "Users"),
    ("Amazon Virtual Private Cloud", "Networking", "Network Infrastructure", "AmazonVPC", "NatGateway", "GB"),
    ("Amazon CloudFront", "Networking", "Content Delivery", "AmazonCloudFront", "Distribution", "GB"),
    ("Elastic Load Balancing", "Networking", "Load Balancing", "AWSELB", "LoadBalancer", "Hours"),
    ("Amazon Route 53", "Networking", "Domain Name Management", "AmazonRoute53", "HostedZone", "Queries"),
    ("AWS Data Transfer", "Networking", "Network Connectivity", "AWSDataTransfer", "Transfer", "GB"),
    ("AWS Direct Connect", "Networking", "Network Connectivity", "AWSDirectConnect", "Connection", "Hours"),
    (
        "Amazon SageMaker",
        "AI and Machine Learning",
        "Machine Learning",
        "AmazonSageMaker",
        "Endpoint",
        "Hours",
    ),
    ("Amazon Bedrock", "AI and Machine Learning", "Generative AI", "AmazonBedrock", "Model", "Tokens"),
    (
        "Amazon Rekognition",
        "AI and Machine Learning",
        "AI Platforms",
        "AmazonRekognition",
        "Project",
        "Images",
    ),
    ("Amazon CloudWatch", "Management and Governance", "Observability", "AmazonCloudWatch", "LogGroup", "GB"),
    ("AWS CloudTrail", "Management and Governance", "Logging", "AWSCloudTrail", "Trail", "Events"),
    ("AWS Config", "Management and Governance", "Compliance", "AWSConfig", "Recorder", "Items"),
    ("AWS Key Management Service", "Security", "Secret Management", "awskms", "Key", "Requests"),
    ("AWS Secrets Manager", "Security", "Secret Management", "AWSSecretsManager", "Secret", "Secrets"),
    ("AWS WAF", "Security", "Network Security", "awswaf", "WebACL", "Requests"),
    ("Amazon GuardDuty", "Security", "Threat Detection", "AmazonGuardDuty", "Detector", "Events"),
    ("Amazon Simple Queue Service", "Integration", "Messaging", "AWSQueueService", "Queue", "Requests"),
)
SUB_ACCOUNTS = (("111122223333", "prod"), ("444455556666", "staging"), ("777788889999", "dev"))
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")
ENVS = ("prod", "staging", "dev")


# ----- data -----------------------------------------------------------------------------------------
def _values(rows: Sequence[Sequence[Any]]) -> str:
    def lit(v: Any) -> str:
        return str(v) if isinstance(v, int) else sql_string(str(v))

    return ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)


def generation_sql(path: Path, rows: int) -> list[str]:
    """Statements that write ``rows`` deterministic pseudo-random FOCUS 1.1 rows to ``path`` as CSV.

    Row i is resource ``i % 2000`` at hour ``i * 720 // rows``: the file runs through the month in time
    order, every hour has ~rows/720 rows, each over a sliding window of the resources.
    Costs are integers in units of 1e-10 formatted as decimal text, so every total is exact.
    """
    services = _values([(i, *s) for i, s in enumerate(SERVICES)])
    subs = _values([(i, *s) for i, s in enumerate(SUB_ACCOUNTS)])
    teams = _values(list(enumerate(TEAMS)))
    regions = _values(list(enumerate(REGIONS)))
    envs = _values(list(enumerate(ENVS)))
    n_svc, n_teams = len(SERVICES), len(TEAMS)
    return [
        "SET TimeZone='UTC'",
        "SET enable_progress_bar=false",
        # 1e-10 units -> '-12.3456789012' (exact decimal text, 10 decimals)
        "CREATE OR REPLACE TEMP MACRO dec10(u) AS "
        "(CASE WHEN u < 0 THEN '-' ELSE '' END) || CAST(abs(u) // 10000000000 AS VARCHAR) || '.' "
        "|| lpad(CAST(abs(u) % 10000000000 AS VARCHAR), 10, '0')",
        f"CREATE OR REPLACE TEMP TABLE svc (sid INTEGER, name VARCHAR, category VARCHAR, "
        f"subcategory VARCHAR, code VARCHAR, rtype VARCHAR, unit VARCHAR); INSERT INTO svc VALUES {services}",
        f"CREATE OR REPLACE TEMP TABLE sub (aid INTEGER, id VARCHAR, name VARCHAR); INSERT INTO sub VALUES {subs}",
        f"CREATE OR REPLACE TEMP TABLE team (tid INTEGER, name VARCHAR); INSERT INTO team VALUES {teams}",
        f"CREATE OR REPLACE TEMP TABLE region (rid INTEGER, name VARCHAR); INSERT INTO region VALUES {regions}",
        f"CREATE OR REPLACE TEMP TABLE env (eid INTEGER, name VARCHAR); INSERT INTO env VALUES {envs}",
        # one row per resource: service, account, region, team (7 of 8 hashes -> a team; rest untagged)
        f"""CREATE OR REPLACE TEMP TABLE res AS
            SELECT r, CAST(r % {n_svc} AS INTEGER) AS sid,
                   CAST(hash(r, 'acct') % 3 AS INTEGER) AS aid,
                   CAST(hash(r, 'region') % {len(REGIONS)} AS INTEGER) AS rid,
                   CAST(hash(r, 'team') % {n_teams + 1} AS INTEGER) AS tid,
                   CAST(hash(r, 'env') % {len(ENVS)} AS INTEGER) AS eid,
                   CAST(hash(r, 'scale') % 40 + 1 AS BIGINT) AS scale,
                   CAST(80 + hash(r, 'discount') % 21 AS BIGINT) AS eff_pct
            FROM range({RESOURCES}) t(r)""",
        f"""COPY (
            WITH base AS (
                SELECT i, i % {RESOURCES} AS r,
                       TIMESTAMPTZ '2024-09-01 00:00:00+00'
                           + to_hours(CAST(i * {HOURS} // {rows} AS BIGINT)) AS ts,
                       hash(i, 'credit') % 100 = 0 AS credit,
                       CAST(hash(i, 'cost') % 5000000000 AS BIGINT) AS u,
                       CAST(hash(i, 'sku') % 4 AS INTEGER) AS sku_n,
                       CAST(hash(i, 'qty') % 100000 AS BIGINT) AS qty
                FROM range({rows}) t(i)
            ), priced AS (
                SELECT b.*, res.*, s.name AS service, s.category, s.subcategory, s.code, s.rtype, s.unit,
                       sub.id AS sub_id, sub.name AS sub_name, region.name AS region,
                       team.name AS team, env.name AS env,
                       CASE WHEN credit THEN -(b.u * res.scale // 10) ELSE b.u * res.scale END AS billed
                FROM base b
                JOIN res USING (r)
                JOIN svc s ON s.sid = res.sid
                JOIN sub ON sub.aid = res.aid
                JOIN region ON region.rid = res.rid
                JOIN env ON env.eid = res.eid
                LEFT JOIN team ON team.tid = res.tid
            )
            SELECT
                dec10(billed) AS BilledCost,
                dec10(CASE WHEN credit THEN billed ELSE billed * eff_pct // 100 END) AS EffectiveCost,
                dec10(CASE WHEN credit THEN 0 ELSE billed * 12 // 10 END) AS ListCost,
                '999988887777' AS BillingAccountId,
                'Payer' AS BillingAccountName,
                'USD' AS BillingCurrency,
                '2024-09-01T00:00:00Z' AS BillingPeriodStart,
                '2024-10-01T00:00:00Z' AS BillingPeriodEnd,
                CASE WHEN credit THEN 'Credit' ELSE 'Usage' END AS ChargeCategory,
                CAST(NULL AS VARCHAR) AS ChargeClass,
                CASE WHEN credit THEN 'One-Time' ELSE 'Usage-Based' END AS ChargeFrequency,
                strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ChargePeriodStart,
                strftime(ts + INTERVAL 1 HOUR, '%Y-%m-%dT%H:%M:%SZ') AS ChargePeriodEnd,
                CASE WHEN credit THEN NULL ELSE printf('%.3f', qty / 1000.0) END AS ConsumedQuantity,
                CASE WHEN credit THEN NULL ELSE unit END AS ConsumedUnit,
                unit AS PricingUnit,
                'AWS' AS ProviderName,
                'Amazon Web Services' AS PublisherName,
                'AWS' AS InvoiceIssuerName,
                region AS RegionId,
                'arn:aws:' || lower(code) || ':' || region || ':' || sub_id || ':' || lower(rtype) || '/'
                    || lower(code) || '-' || lpad(CAST(r AS VARCHAR), 5, '0') AS ResourceId,
                lower(code) || '-' || coalesce(team, 'shared') || '-' || lpad(CAST(r AS VARCHAR), 5, '0')
                    AS ResourceName,
                rtype AS ResourceType,
                category AS ServiceCategory,
                subcategory AS ServiceSubcategory,
                service AS ServiceName,
                code || '-' || upper(substr(md5(CAST(sid * 10 + sku_n AS VARCHAR)), 1, 12)) AS SkuId,
                sub_id AS SubAccountId,
                sub_name AS SubAccountName,
                CASE WHEN credit THEN 'Credit applied to ' || service
                     ELSE service || ' ' || unit || ' in ' || region END AS ChargeDescription,
                CASE
                    WHEN team IS NOT NULL
                        THEN '{{"team":"' || team || '","env":"' || env || '","project":"p-'
                             || CAST(r % 25 AS VARCHAR) || '"}}'
                    WHEN r % 2 = 0 THEN '{{"env":"' || env || '"}}'
                    ELSE NULL
                END AS Tags,
                code AS x_ServiceCode,
                region || '-' || rtype || 'Usage:' || CAST(sku_n AS VARCHAR) AS x_UsageType,
                CASE WHEN credit THEN 'Credit' ELSE 'Run' || rtype END AS x_Operation
            FROM priced
            ORDER BY i
        ) TO {sql_string(str(path))} (FORMAT csv, HEADER true)""",
    ]


def generate_csv(path: Path, rows: int) -> None:
    con = duckdb.connect(":memory:")
    try:
        for statement in generation_sql(path, rows):
            con.execute(statement)
    finally:
        con.close()


def csv_total(path: Path) -> Decimal:
    """Sum of EffectiveCost as written in the CSV (decimal, no float)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar=false")
        row = con.execute(
            "SELECT sum(CAST(EffectiveCost AS DECIMAL(38,10))) "
            f"FROM read_csv({sql_string(str(path))}, header=true, all_varchar=true)"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return Decimal(row[0])


# ----- measuring a child ------------------------------------------------------------------------------
@dataclass
class ChildRun:
    wall_s: float
    peak_rss: int  # bytes: max over samples of the process tree's summed RSS
    peak_hwm: int  # bytes: max kernel VmHWM of any process of the tree (cross-check)
    returncode: int
    stdout: str
    stderr: str


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> ChildRun:
    peak = {"rss": 0, "hwm": 0}
    stop = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in tree:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
                peak["hwm"] = max(peak["hwm"], _vm_hwm(p.pid))
            peak["rss"] = max(peak["rss"], total)
            stop.wait(POLL_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    return ChildRun(wall, peak["rss"], peak["hwm"], proc.returncode, out, err)


REFERENCE_CHILD = textwrap.dedent(
    """
    import sys, duckdb
    db, csv, memory_limit, threads = sys.argv[1:5]
    con = duckdb.connect(db)
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute(f"SET threads={int(threads)}")
    con.execute("CREATE TABLE bill AS SELECT * FROM read_csv('" + csv.replace("'", "''") + "')")
    print(con.execute("SELECT count(*) FROM bill").fetchone()[0])
    con.close()
    """
)


# ----- queries ----------------------------------------------------------------------------------------
def median_ms(fn: Callable[[], Any], runs: int = QUERY_RUNS) -> tuple[float, Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def product_queries() -> dict[str, CostQuery]:
    return {
        "month x team": CostQuery(PERIOD, group_by=("team",), granularity="month"),
        "top 10 services": CostQuery(PERIOD, group_by=("service",), top=10),
        f"daily, team={FILTER_TEAM}": CostQuery(PERIOD, filters={"team": [FILTER_TEAM]}, granularity="day"),
    }


def reference_queries() -> dict[str, str]:
    where = (
        f"ChargePeriodStart >= TIMESTAMPTZ '{PERIOD.start.isoformat()} 00:00:00+00' "
        f"AND ChargePeriodStart < TIMESTAMPTZ '{PERIOD.end.isoformat()} 00:00:00+00'"
    )
    team = "json_extract_string(Tags, '$.team')"
    return {
        "month x team": f"SELECT CAST(date_trunc('month', ChargePeriodStart) AS DATE) AS m, {team} AS team, "
        f"sum(EffectiveCost) AS cost FROM bill WHERE {where} GROUP BY ALL ORDER BY ALL",
        "top 10 services": f"SELECT ServiceName, sum(EffectiveCost) AS cost FROM bill WHERE {where} "
        "GROUP BY 1 ORDER BY cost DESC LIMIT 10",
        f"daily, team={FILTER_TEAM}": f"SELECT CAST(ChargePeriodStart AS DATE) AS d, sum(EffectiveCost) AS cost "
        f"FROM bill WHERE {where} AND lower({team}) = {sql_string(FILTER_TEAM)} GROUP BY 1 ORDER BY 1",
    }


def connect_reference(db: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"SET memory_limit={sql_string(MEMORY_LIMIT)}")
    con.execute(f"SET threads={THREADS}")
    con.execute("SET TimeZone='UTC'")
    return con


# ----- report -----------------------------------------------------------------------------------------
def mib(n: float) -> float:
    return n / (1024 * 1024)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("metric", "finops", "reference (DuckDB)", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    print(line)
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated FOCUS CSV")
    parser.add_argument("--workdir", type=Path, help="working folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="ingest runs of each side, interleaved; the median wall time and the highest peak RSS are reported",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    created = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="finops-bench-")) if created else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return run(workdir, args.rows, args.repeat)
    finally:
        if args.keep:
            print(f"\nworkdir kept: {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for name in ("focus.csv", "finops.db", "lake", "ref.duckdb", "ref.duckdb.wal", "ref.duckdb.tmp"):
                target = workdir / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                elif target.exists():
                    target.unlink()


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run(workdir: Path, rows: int, repeat: int) -> int:
    csv_path = workdir / "focus.csv"
    lake_dir = workdir / "lake"
    ref_db = workdir / "ref.duckdb"
    app_db = workdir / "finops.db"
    _remove(lake_dir, ref_db, app_db)

    print(f"workdir {workdir}")
    print(
        f"duckdb {duckdb.__version__}; memory_limit={MEMORY_LIMIT} threads={THREADS} "
        f"(FINOPS_DUCKDB_MEMORY_LIMIT / FINOPS_DUCKDB_THREADS); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews the timings)"
    )

    # 1. data
    t0 = time.perf_counter()
    generate_csv(csv_path, rows)
    gen_s = time.perf_counter() - t0
    with open(csv_path) as handle:
        columns = handle.readline().strip().split(",")
    print(
        f"generated {rows:,} FOCUS rows x {len(columns)} columns in {gen_s:.1f} s: "
        f"{csv_path.name} {mib(csv_path.stat().st_size):,.1f} MiB"
    )

    env = {
        **os.environ,
        "FINOPS_HOME": str(workdir),
        "FINOPS_LAKE_DIR": str(lake_dir),
        "FINOPS_DUCKDB_MEMORY_LIMIT": MEMORY_LIMIT,
        "FINOPS_DUCKDB_THREADS": str(THREADS),
    }
    env.pop("FINOPS_DATABASE_URL", None)
    env.pop("FINOPS_CONFIG", None)
    finops = [str(Path(sys.executable).with_name("finops")), "--db", f"sqlite:///{app_db}"]

    # 2. + 3. product ingest and reference load, interleaved so that other load on the machine hits both
    prod_runs: list[ChildRun] = []
    ref_runs: list[ChildRun] = []
    ref_cmd = [sys.executable, "-c", REFERENCE_CHILD, str(ref_db), str(csv_path), MEMORY_LIMIT, str(THREADS)]
    for _ in range(repeat):
        _remove(lake_dir, app_db, ref_db, ref_db.with_name(ref_db.name + ".wal"))
        init = run_child([*finops, "init"], env, workdir)  # not timed
        if init.returncode != 0:
            print(f"finops init failed ({init.returncode}):\n{init.stderr}", file=sys.stderr)
            return 2
        prod = run_child([*finops, "ingest", "focus", str(csv_path), "--source", SOURCE], env, workdir)
        if prod.returncode != 0:
            print(f"finops ingest failed ({prod.returncode}):\n{prod.stdout}{prod.stderr}", file=sys.stderr)
            return 2
        ref = run_child(ref_cmd, env, workdir)
        if ref.returncode != 0:
            print(f"reference load failed ({ref.returncode}):\n{ref.stderr}", file=sys.stderr)
            return 2
        prod_runs.append(prod)
        ref_runs.append(ref)
    print("finops:", " | ".join(line for line in prod_runs[-1].stdout.strip().splitlines()))
    ref_rows = int(ref_runs[-1].stdout.strip().splitlines()[-1])
    print(f"reference: {ref_rows:,} rows loaded into table bill of {ref_db.name}")
    print(
        f"ingest runs (s, interleaved): finops {' '.join(f'{r.wall_s:.2f}' for r in prod_runs)}; "
        f"reference {' '.join(f'{r.wall_s:.2f}' for r in ref_runs)}"
    )
    prod = ChildRun(
        statistics.median(r.wall_s for r in prod_runs),
        max(r.peak_rss for r in prod_runs),
        max(r.peak_hwm for r in prod_runs),
        0,
        prod_runs[-1].stdout,
        "",
    )
    ref = ChildRun(
        statistics.median(r.wall_s for r in ref_runs),
        max(r.peak_rss for r in ref_runs),
        max(r.peak_hwm for r in ref_runs),
        0,
        ref_runs[-1].stdout,
        "",
    )

    # 4. queries, in-process
    lake = Lake(lake_dir)
    open_ms, _ = median_ms(lambda: open_costs(lake).close())
    ref_open_ms, _ = median_ms(lambda: connect_reference(ref_db).close())
    con = open_costs(lake)
    rcon = connect_reference(ref_db)
    timings: list[tuple[str, float, float]] = []
    results: dict[str, tuple[Any, Any]] = {}
    try:
        for (name, q), sql in zip(product_queries().items(), reference_queries().values(), strict=True):
            p_ms, p_res = median_ms(lambda q=q: query_costs(con, q))
            r_ms, r_res = median_ms(lambda sql=sql: rcon.execute(sql).fetchall())
            timings.append((name, p_ms, r_ms))
            results[name] = (p_res, r_res)
        product_total = query_costs(con, CostQuery(PERIOD)).total
    finally:
        con.close()
        rcon.close()
    expected_total = csv_total(csv_path)

    # 5. report
    print()
    table = [
        (
            f"ingest wall s (median of {repeat})",
            f"{prod.wall_s:.2f}",
            f"{ref.wall_s:.2f}",
            ratio(prod.wall_s, ref.wall_s),
        ),
        (
            "ingest rows/s",
            f"{rows / prod.wall_s:,.0f}",
            f"{rows / ref.wall_s:,.0f}",
            ratio(rows / prod.wall_s, rows / ref.wall_s),
        ),
        (
            f"ingest peak RSS MiB (max of {repeat})",
            f"{mib(prod.peak_rss):.0f}",
            f"{mib(ref.peak_rss):.0f}",
            ratio(prod.peak_rss, ref.peak_rss),
        ),
        ("open connection ms", f"{open_ms:.1f}", f"{ref_open_ms:.1f}", ratio(open_ms, ref_open_ms)),
        *((f"query {n} ms", f"{p:.1f}", f"{r:.1f}", ratio(p, r)) for n, p, r in timings),
    ]
    print_table(table)
    print(
        f"(peak RSS: max of 20 ms psutil samples of the child's process-tree RSS; kernel VmHWM "
        f"cross-check: finops {mib(prod.peak_hwm):.0f} MiB, reference {mib(ref.peak_hwm):.0f} MiB. "
        f"Queries: median of {QUERY_RUNS} after 1 warm-up; finops = query_costs() on one open_costs() "
        "connection, reference = SQL over table bill.)"
    )

    # sanity: the equivalent queries agree on what they return
    teams_p = {r["team"] for r in results["month x team"][0].rows}
    teams_r = {t if t is not None else "(none)" for _, t, _ in results["month x team"][1]}
    top_p = [r["service"] for r in results["top 10 services"][0].rows if r["service"] != "(other)"]
    top_r = [s for s, _ in results["top 10 services"][1]]
    days_p = len(results[f"daily, team={FILTER_TEAM}"][0].rows)
    days_r = len(results[f"daily, team={FILTER_TEAM}"][1])
    print(
        f"same answers: teams {'yes' if teams_p == teams_r else f'NO {teams_p} vs {teams_r}'}; "
        f"top 10 services {'yes' if top_p == top_r else f'NO {top_p} vs {top_r}'}; "
        f"days of {FILTER_TEAM} {days_p} vs {days_r}"
    )

    checks = [
        (
            "ingest wall finops/reference <= 1.0",
            prod.wall_s / ref.wall_s <= 1.0,
            ratio(prod.wall_s, ref.wall_s),
        ),
        (
            f"ingest peak RSS < {TARGET_RSS_MIB:.0f} MiB",
            mib(prod.peak_rss) < TARGET_RSS_MIB,
            f"{mib(prod.peak_rss):.0f} MiB",
        ),
        *(
            (f"query {n} < {TARGET_QUERY_MS:.0f} ms", p < TARGET_QUERY_MS, f"{p:.1f} ms")
            for n, p, _ in timings
        ),
        (
            f"rows: finops ingested {rows:,} of {rows:,}, reference loaded {rows:,}",
            f"{rows:,} of {rows:,}" in prod.stdout and ref_rows == rows,
            f"reference {ref_rows:,}",
        ),
        (
            "total effective cost == CSV total (1e-6)",
            abs(product_total - expected_total) <= TOTAL_TOLERANCE,
            f"finops {product_total} vs CSV {expected_total}",
        ),
    ]
    print("\ntargets")
    for label, ok, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
