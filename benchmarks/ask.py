"""Ask benchmark: the offline planner's latency over the question set, beside plain SQL in the same run.

    .venv/bin/python benchmarks/ask.py [--repeat 3] [--workdir DIR] [--keep]

Target (issue 5): the offline path answers the question set (tests/question_set/questions.yaml) at a
median under 200 ms per question on the demo data.

1. The demo organisation (not timed): ``tests.demo_org.build_demo_org`` writes, ingests and scans the demo
   data exactly as ``finops demo`` does, and proposes one remediation request.
2. The planner, timed: every question of the set through ``agent.planner.answer_offline`` with one
   ``AskContext`` (one DuckDB connection over the lake, as ``finops ask`` opens), ``--repeat`` rounds.
   The first round includes reading the vocabulary (the values of every dimension, once per context) and
   DuckDB's first reads of the Parquet files; the figure the target is about is the median over all
   rounds, and the cold first question is printed apart.
3. Reference, same process: each question's own expectation SQL from the set (the plain query a person
   would write) on the same connection: the floor the planner's work is compared with.
4. ``finops ask`` as a user runs it (a new process: interpreter start, imports, config, one question),
   once, for information.

Exit status 1 when the median is over the target or a question raises.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MS = 200.0


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"{name:<34} median {statistics.median(values):8.1f} ms   p90 {p90:8.1f} ms   "
        f"max {max(values):8.1f} ms   total {sum(values) / 1000:6.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the question set (default 3)")
    parser.add_argument(
        "--workdir", type=Path, help="where to build the demo organisation (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    from agent.answer import AI_SPEND_SQL, AskContext
    from agent.planner import answer_offline
    from tests.demo_org import build_demo_org
    from tests.integration.test_question_set import load_questions

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="finops-ask-bench-"))
    try:
        t0 = time.perf_counter()
        org = build_demo_org(workdir / "org")
        print(f"demo organisation built in {time.perf_counter() - t0:.1f} s (not timed below)")
        questions = load_questions()
        con = org.costs()
        ctx = AskContext(config=org.config, costs=con, db=org.db, today=org.today)

        planner: list[float] = []
        first: float | None = None
        slowest: list[tuple[float, str]] = []
        errors: list[str] = []
        for round_no in range(args.repeat):
            for q in questions:
                asked = q.asked(org)
                start = time.perf_counter()
                try:
                    answer_offline(asked, ctx)
                except Exception as exc:  # reported, and the run fails
                    errors.append(f"{asked!r}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = _ms(time.perf_counter() - start)
                if first is None:
                    first = elapsed
                planner.append(elapsed)
                slowest.append((elapsed, asked))
            if round_no == 0:
                print(_summary("planner, round 1 (cold)", planner))

        reference: list[float] = []
        from sqlalchemy import text as sa_text

        for _ in range(args.repeat):
            for q in questions:
                for check in q.checks:
                    if not check.sql:
                        continue
                    sql = check.sql.replace("{ai_spend}", AI_SPEND_SQL).replace(
                        "{request_id}", org.request_id or ""
                    )
                    start = time.perf_counter()
                    if q.source == "app":
                        with org.db.engine.connect() as conn:
                            conn.execute(sa_text(sql)).fetchall()
                    else:
                        con.execute(sql).fetchall()
                    reference.append(_ms(time.perf_counter() - start))
        con.close()

        env = {**os.environ, "FINOPS_LAKE_DIR": str(org.lake.root)}
        env.pop("OPENAI_API_KEY", None)
        env.pop("FINOPS_OPENAI_API_KEY", None)
        finops = Path(sys.executable).parent / "finops"
        cli = [str(finops), "--db", str(org.db.engine.url), "--as-of", org.today.isoformat()]
        cli += ["ask", "top 5 teams by AI spend last month"]
        start = time.perf_counter()
        proc = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        cli_s = time.perf_counter() - start

        print()
        print(f"{len(questions)} questions x {args.repeat} rounds on the demo data (2 cores)")
        print(_summary("offline planner (answer_offline)", planner))
        print(_summary("reference: the set's plain SQL", reference))
        print(f"{'first question (vocabulary read)':<34} {first or 0:8.1f} ms")
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        print(f"{'`finops ask` as a new process':<34} {cli_s * 1000:8.1f} ms ({status})")
        for elapsed, asked in sorted(slowest, reverse=True)[:3]:
            print(f"{'slowest':<34} {elapsed:8.1f} ms  {asked}")
        median = statistics.median(planner)
        print()
        print(
            f"target: median < {TARGET_MS:.0f} ms per question -> {median:.1f} ms: "
            + ("MET" if median < TARGET_MS else "MISSED")
        )
        for e in errors:
            print(f"ERROR {e}")
        return 0 if median < TARGET_MS and not errors else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
