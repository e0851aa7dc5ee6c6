"""The run's report: client latencies (exact), the server's histogram, the checks.

Client side, per request type: throughput over the measured window, and
p50/p95/p99/max of two latencies, both kept exactly per request (no buckets,
so nothing is rounded above 100 ms as locust's own table is):

- ``service``: sent → answered (what locust measures);
- ``corrected``: scheduled → answered. The load is open-loop (each user has a
  fixed send schedule, see locustfile.py); when the service stalls, requests
  go out late and this latency includes the lateness — the queueing a closed
  loop would hide (coordinated omission).

Server side: ``settlement_http_request_duration_seconds`` from ``/metrics``,
scraped before and after the run (all workers, PROMETHEUS_MULTIPROC_DIR), the
difference per route; percentiles are bucket upper bounds (≤).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

ROUTES = {
    "/v1/settlements": "settle + retry",
    "/v1/settlements/preview": "preview",
    "/v1/settlements/{settlement_id}/reversal": "reversal",
}


def merge_clients(out: Path) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    records: dict[str, list[list[float]]] = {}
    counts: dict[str, int] = {}
    problems: list[str] = []
    for path in sorted(out.glob("client-*.json")):
        data = json.loads(path.read_text())
        for kind, rows in data["records"].items():
            records.setdefault(kind, []).extend(rows)
        for name, value in data["counts"].items():
            counts[name] = counts.get(name, 0) + value
        problems += data["problems"]
    arrays = {k: np.array(v, dtype=np.float64).reshape(-1, 4) for k, v in records.items()}
    return arrays, counts, problems


def client_table(arrays: dict[str, np.ndarray], start: float, end: float) -> dict[str, Any]:
    table: dict[str, Any] = {}
    window = max(end - start, 1e-9)
    every = [a[(a[:, 0] >= start) & (a[:, 0] <= end)] for a in arrays.values()]
    for kind, rows in [*zip(arrays, every, strict=True), ("all", np.concatenate(every) if every else np.empty((0, 4)))]:
        if kind == "all" and len(arrays) < 2:
            continue
        ok = rows[:, 3] > 0
        entry: dict[str, Any] = {
            "requests": int(rows.shape[0]),
            "ok": int(ok.sum()),
            "errors": int((~ok).sum()),
            "ok_per_s": round(float(ok.sum()) / window, 1),
        }
        for name, col in (("service", 1), ("corrected", 2)):
            values = rows[:, col]
            if values.size:
                p50, p95, p99 = np.percentile(values, [50, 95, 99])
                entry[name] = {
                    "p50_ms": round(float(p50), 2),
                    "p95_ms": round(float(p95), 2),
                    "p99_ms": round(float(p99), 2),
                    "max_ms": round(float(values.max()), 2),
                }
        table[kind] = entry
    return table


def _histograms(text: str) -> dict[str, dict[float, float]]:
    """route → {upper bound (s): cumulative count}, summed over methods and statuses."""
    out: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "settlement_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            route = sample.labels.get("route", "?")
            bound = float(sample.labels["le"])
            buckets = out.setdefault(route, {})
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return out


def server_table(before: str, after: str) -> dict[str, Any]:
    b, a = _histograms(before), _histograms(after)
    table: dict[str, Any] = {}
    for route, buckets in a.items():
        if route not in ROUTES:
            continue
        delta = sorted((le, n - b.get(route, {}).get(le, 0.0)) for le, n in buckets.items())
        total = delta[-1][1] if delta else 0.0
        if total <= 0:
            continue
        entry: dict[str, Any] = {"label": ROUTES[route], "requests": int(total)}
        for q in (0.5, 0.95, 0.99):
            bound = next(le for le, n in delta if n >= q * total)
            entry[f"p{round(q * 100)}_le_ms"] = "inf" if math.isinf(bound) else round(bound * 1000, 1)
        entry["buckets_ms"] = {("inf" if math.isinf(le) else f"{le * 1000:g}"): int(n) for le, n in delta}
        table[route] = entry
    return table


COUNTERS = (
    "settlement_pool_paths_total",
    "settlement_transaction_retries_total",
    "settlement_settlements_total",
    "settlement_reversals_total",
    "settlement_previews_total",
)


def _counters(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COUNTERS:
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                key = f"{sample.name}{{{label}}}" if label else sample.name
                out[key] = out.get(key, 0.0) + sample.value
    return out


def counter_deltas(before: str, after: str) -> dict[str, int]:
    b, a = _counters(before), _counters(after)
    return {k: int(v - b.get(k, 0.0)) for k, v in sorted(a.items()) if v - b.get(k, 0.0)}


def verdict(client: dict[str, Any], counts: dict[str, int], checks: dict[str, Any]) -> list[str]:
    failures = []
    errors = sum(v["errors"] for k, v in client.items() if k != "all")
    if errors:
        failures.append(f"{errors} failed requests")
    double = counts.get("double_settlement", 0) + checks.get("double_settlements", 0)
    if double:
        failures.append(f"{double} double settlements")
    failures += checks.get("problems", [])
    return failures


def _fmt(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "– | – | – | –"
    return f"{entry['p50_ms']:.1f} | {entry['p95_ms']:.1f} | {entry['p99_ms']:.1f} | {entry['max_ms']:.1f}"


def markdown(report: dict[str, Any]) -> str:
    run = report["run"]
    lines = [
        f"# Load test {run['run_id']}",
        "",
        f"mix `{run['mix']}`, offered {run['rate']:g} req/s by {run['users']} users in"
        f" {run['locust_processes']} locust process(es), {run['duration_s']} s"
        f" (first {run['warmup_s']} s not measured), service with {run['workers']} worker(s) on"
        f" PostgreSQL, {run['persons']:,} persons, {run['hospitals']} hospitals",
        "",
        "## Client (exact per request; corrected = from the scheduled send time)",
        "",
        "| type | requests | ok/s | errors | service p50 | p95 | p99 | max | corrected p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, e in report["client"].items():
        lines.append(
            f"| {kind} | {e['requests']} | {e['ok_per_s']} | {e['errors']} | {_fmt(e.get('service'))}"
            f" | {_fmt(e.get('corrected'))} |"
        )
    lines += [
        "",
        "## Server (`/metrics` histogram delta; percentiles are bucket upper bounds, ms)",
        "",
        "| route | requests | p50 ≤ | p95 ≤ | p99 ≤ |",
        "|---|---:|---:|---:|---:|",
    ]
    for route, e in report["server"].items():
        lines.append(
            f"| `{route}` ({e['label']}) | {e['requests']} | {e['p50_le_ms']} | {e['p95_le_ms']} | {e['p99_le_ms']} |"
        )
    if report.get("server_counters"):
        lines += ["", "Server counters during the run: " + ", ".join(
            f"`{k}` {v}" for k, v in report["server_counters"].items())]
    cpu = run.get("cpu")
    if cpu:
        lines += [
            "",
            "## CPU (this machine has {cores} cores; {wall_s} s of load)".format(**cpu),
            "",
            f"- per request: service {cpu['service_ms_per_request']} ms, PostgreSQL"
            f" {cpu['postgres_ms_per_request']} ms, locust {cpu['locust_ms_per_request']} ms",
            f"- CPU seconds: service {cpu['service_cpu_s']}, PostgreSQL {cpu['postgres_cpu_s']},"
            f" locust {cpu['locust_cpu_s']}, anything else on the machine {cpu['other_cpu_s']}"
            f" (of {cpu['machine_busy_cpu_s']} busy; {cpu['cores'] * cpu['wall_s']:.0f} available)",
        ]
        if "reference_loop_ms" in cpu:
            before, after = cpu["reference_loop_ms"]
            lines.append(
                f"- machine speed: a fixed pure-Python loop (`loadtests.run.reference_ms`) took {before} ms"
                f" before the load, {after} ms after; compare CPU per request only between runs whose"
                " loop took alike (this VM's speed drifts up to 2×)"
            )
    checks = report["checks"]
    lines += [
        "",
        "## Checks",
        "",
        f"- settle requests sent {checks.get('settle_sent')}, created {report['counts'].get('created', 0)},"
        f" stored {checks.get('stored_settlements')} (reversed {checks.get('reversed_settlements')});"
        f" retries replayed {report['counts'].get('replayed', 0)}",
        f"- double settlements: {report['counts'].get('double_settlement', 0) + checks.get('double_settlements', 0)}",
    ]
    for pool in checks.get("pools", []):
        limit = "∞" if pool["pool_fen"] is None else f"{pool['pool_fen'] / 100:,.2f}"
        lines.append(
            f"- pool {pool['fund']}/{pool['policy_year']}: used {pool['used_fen'] / 100:,.2f} of {limit} yuan,"
            f" ledger {pool['ledger_fen'] / 100:,.2f}"
        )
    lines += ["", "## Verdict", ""]
    lines += [f"- FAIL: {f}" for f in report["failures"]] or ["- PASS: no failed request, no double settlement"]
    if report["client_problems"]:
        lines += ["", "First problems seen by the clients:", ""]
        lines += [f"- {p}" for p in report["client_problems"][:20]]
    return "\n".join(lines) + "\n"


def write_report(out: Path, run: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    arrays, counts, problems = merge_clients(out)
    answered = [float(a[:, 0].min()) for a in arrays.values() if a.size]
    if answered:  # locust builds its claims before the first request: the run starts then
        run["started_at"] = min(answered)
    start = run["started_at"] + run["warmup_s"]
    end = run["ended_at"]
    client = client_table(arrays, start, end)
    # errors anywhere in the run count, the warm-up included
    all_errors = client_table(arrays, run["started_at"] - 60, end + 60)
    for kind, e in all_errors.items():
        if kind in client:
            client[kind]["errors"] = e["errors"]
        else:
            client[kind] = e
    before = (out / "metrics-before.txt").read_text() if (out / "metrics-before.txt").exists() else ""
    after = (out / "metrics-after.txt").read_text() if (out / "metrics-after.txt").exists() else ""
    report = {
        "run": run,
        "client": client,
        "server": server_table(before, after) if after else {},
        "server_counters": counter_deltas(before, after) if after else {},
        "counts": counts,
        "checks": checks,
        "client_problems": problems,
    }
    report["failures"] = verdict(client, counts, checks)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    return report
