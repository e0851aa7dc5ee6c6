"""One command for a load test: database, service, seed, locust, report.

    loadtests/run.sh --duration 60 --rate 715            # the counter mix (≈ 500 settlements/s)
    loadtests/run.sh --mix preview --duration 60 --rate 1600
    loadtests/run.sh --duration 10 --rate 10 --persons 2000   # a smoke run

Steps: (1) a fresh PostgreSQL database (``--database-url``; dropped and
created, so runs do not share accumulators or pools), its schema, a key per
hospital and an admin key, the persons (COPY, or ``--seed-via api``: the CSV
import endpoint); (2) ``settlement serve --workers N`` on a free loopback port
with PROMETHEUS_MULTIPROC_DIR, so ``/metrics`` adds up all workers; (3) locust
headless, open loop (see locustfile.py) for ``--duration`` s at ``--rate``
req/s; (4) ``/metrics`` before and after, the consistency checks
(loadtests/checks.py), ``report.md`` and ``report.json`` in ``--out``.

Exit status: 0 when every request succeeded, no claim was settled twice and
every pool and accumulator equals its ledger; 1 otherwise; 2 when the
harness itself could not run (no database, service did not start).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/settlement_loadtest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, key: str | None = None, timeout: float = 10) -> bytes:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        return bytes(r.read())


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with status {proc.returncode}")
        try:
            get(f"{base}/readyz", timeout=2)
            return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"the service was not ready within {timeout:.0f} s")


def wait_quiet(server_pid: int, timeout: float = 180.0) -> float:
    """After /readyz, until the service's processes use under 0.1 CPU s in a second (a worker may
    compile or load its kernels in the background once ready: settlement.jit); the seconds waited."""
    started = time.monotonic()
    before = cpu_snapshot(server_pid)["service"]
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = cpu_snapshot(server_pid)["service"]
        if now - before < 0.1:
            break
        before = now
    return round(time.monotonic() - started, 1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this driver started (the service and its workers), then wait."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, int, str] | None:
    """(parent pid, CPU ticks user+system, command name) of a process, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), name


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the service's process tree, PostgreSQL's processes, the whole machine."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(entry)
            if st is not None:
                procs[int(entry)] = st
    tree = {server_pid}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _t, _n) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return {
        "service": sum(procs[p][1] for p in tree if p in procs) / TICKS,
        "postgres_by_pid": {str(p): t / TICKS for p, (_pp, t, n) in procs.items() if n.startswith("postgres")},
        "machine_busy": (sum(cpu) - idle) / TICKS,
        "wall": time.time(),
    }  # type: ignore[dict-item]


def reference_ms(rounds: int = 3) -> float:
    """The machine's speed now: the best of a few runs of a fixed pure-Python loop, in ms.

    This VM's speed drifts (the same loop took 267 to 590 ms within one minute),
    so CPU per request is only comparable between runs whose loops took alike.
    """
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for i in range(3_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return round(best * 1000.0, 1)


def cpu_usage(before: dict, after: dict, locust_s: float, requests: int) -> dict[str, float]:
    pg_before = before["postgres_by_pid"]
    postgres = sum(t - pg_before.get(p, 0.0) for p, t in after["postgres_by_pid"].items())
    wall = after["wall"] - before["wall"]
    service = after["service"] - before["service"]
    busy = after["machine_busy"] - before["machine_busy"]
    n = max(requests, 1)
    return {
        "wall_s": round(wall, 1),
        "service_cpu_s": round(service, 1),
        "postgres_cpu_s": round(postgres, 1),
        "locust_cpu_s": round(locust_s, 1),
        "machine_busy_cpu_s": round(busy, 1),
        "other_cpu_s": round(busy - service - postgres - locust_s, 1),
        "cores": os.cpu_count() or 1,
        "service_ms_per_request": round(service / n * 1000, 2),
        "postgres_ms_per_request": round(postgres / n * 1000, 2),
        "locust_ms_per_request": round(locust_s / n * 1000, 2),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=60, help="seconds of load")
    p.add_argument("--rate", type=float, default=715.0, help="offered requests/s, all types together")
    p.add_argument("--mix", choices=["counter", "preview", "settle"], default="counter")
    p.add_argument("--users", type=int, default=0, help="locust users (default: rate / 10, at least 4)")
    p.add_argument("--workers", type=int, default=2, help="service worker processes")
    p.add_argument("--locust-processes", type=int, default=1, help="locust processes (>1: --processes)")
    p.add_argument("--persons", type=int, default=100_000)
    p.add_argument("--hospitals", type=int, default=20)
    p.add_argument("--hot-persons", type=int, default=20)
    p.add_argument("--hot-share", type=float, default=0.03)
    p.add_argument("--year", type=int, default=2019)
    p.add_argument("--warmup", type=int, default=None, help="seconds not measured (default: 10 %% of duration)")
    p.add_argument("--seed-via", choices=["copy", "api"], default="copy")
    p.add_argument("--database-url", default=os.environ.get("LOADTEST_DATABASE_URL", DEFAULT_DB))
    p.add_argument("--keep-db", action="store_true", help="do not drop the database afterwards")
    p.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default loadtests/reports/<run id>)")
    p.add_argument("--serve-env", action="append", default=[], help="extra NAME=VALUE for the service")
    p.add_argument("--ready-timeout", type=float, default=90.0,
                   help="seconds the service may take to answer /readyz (a first start compiles)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from loadtests.checks import run_checks
    from loadtests.report import write_report
    from loadtests.seed import drop_database, seed, seed_persons_api

    run_id = time.strftime("%Y%m%d-%H%M%S")
    out = (args.out or ROOT / "loadtests" / "reports" / run_id).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    users = args.users or max(4, math.ceil(args.rate / 10))
    warmup = args.warmup if args.warmup is not None else args.duration // 10
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent

    t0 = time.perf_counter()
    try:
        config = seed(
            args.database_url,
            persons=args.persons,
            hospitals=args.hospitals,
            population_seed=1,
            hot_persons=args.hot_persons,
            out=out / "seed.json",
            via="copy" if args.seed_via == "copy" else "none",
        )
    except Exception as exc:
        print(f"loadtest: cannot prepare the database {args.database_url}: {exc}", file=sys.stderr)
        return 2
    what = f"{args.persons:,} persons, " if args.seed_via == "copy" else ""
    print(f"seeded {what}{args.hospitals} hospital keys in {time.perf_counter() - t0:.1f} s")

    metrics_dir = tempfile.mkdtemp(prefix="settlement-metrics-")
    env = dict(os.environ, SETTLEMENT_DATABASE_URL=args.database_url, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    for item in args.serve_env:
        name, _, value = item.partition("=")
        env[name] = value
    serve_log = open(out / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [str(bin_dir / "settlement"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers), "--log-level", "warning"],
        env=env, stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    status = 2
    try:
        wait_ready(base, server, timeout=args.ready_timeout)
        print(f"the service was quiet {wait_quiet(server.pid)} s after it was ready")
        if args.seed_via == "api":
            t1 = time.perf_counter()
            from loadtests.common import build_persons

            seed_persons_api(base, config["admin_key"], build_persons(args.persons, 1))
            print(f"imported {args.persons:,} persons through the API in {time.perf_counter() - t1:.1f} s")
        admin = config["admin_key"]
        (out / "metrics-before.txt").write_bytes(get(f"{base}/metrics", admin))
        locust_env = dict(
            os.environ,
            # the load generator is this checkout's, its claims too (loadtests.ab: the service may be another's)
            PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
            LOADTEST_SEED=str(out / "seed.json"),
            LOADTEST_RATE=str(args.rate),
            LOADTEST_USERS=str(users),
            LOADTEST_MIX=args.mix,
            LOADTEST_OUT=str(out),
            LOADTEST_RUN=run_id.replace("-", ""),
            LOADTEST_YEAR=str(args.year),
            LOADTEST_HOT_SHARE=str(args.hot_share),
        )
        cmd = [
            str(bin_dir / "locust"), "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless",
            "-u", str(users), "-r", str(max(users, 1)), "--run-time", f"{args.duration}s",
            "--host", base, "--csv", str(out / "locust"), "--only-summary", "--stop-timeout", "10",
            "--loglevel", "WARNING",
        ]
        if args.locust_processes > 1:
            cmd += ["--processes", str(args.locust_processes)]
        print(f"locust: {users} users, {args.rate:g} req/s offered, mix {args.mix}, {args.duration} s → {base}")
        speed_before = reference_ms()
        started = time.time()
        cpu_before = cpu_snapshot(server.pid)
        children_before = os.times()
        with open(out / "locust.log", "wb") as log:
            locust = subprocess.run(cmd, env=locust_env, stdout=log, stderr=subprocess.STDOUT, check=False)
        children_after = os.times()
        cpu_after = cpu_snapshot(server.pid)
        ended = time.time()
        locust_cpu = (children_after.children_user - children_before.children_user) + (
            children_after.children_system - children_before.children_system
        )
        (out / "metrics-after.txt").write_bytes(get(f"{base}/metrics", admin))
        run = {
            "run_id": run_id, "mix": args.mix, "rate": args.rate, "users": users,
            "locust_processes": args.locust_processes, "duration_s": args.duration, "warmup_s": warmup,
            "workers": args.workers, "persons": args.persons, "hospitals": args.hospitals,
            "year": args.year, "seeded_via": args.seed_via, "locust_exit": locust.returncode,
            # locust spends a few seconds generating claims before the first request
            "started_at": max(started, ended - args.duration - 1), "ended_at": ended,
        }
        clients = list(out.glob("client-*.json"))
        if not clients:
            print(f"loadtest: locust wrote no results (exit {locust.returncode}); see {out / 'locust.log'}",
                  file=sys.stderr)
            return 2
        settle_sent = sum(json.loads(p.read_text())["counts"].get("settle_sent", 0) for p in clients)
        checks = run_checks(args.database_url, "LT" + run["run_id"].replace("-", ""), settle_sent)
        requests = sum(len(json.loads(p.read_text())["records"].get(k, [])) for p in clients for k in
                       ("settle", "preview", "reversal", "retry"))
        run["cpu"] = cpu_usage(cpu_before, cpu_after, locust_cpu, requests)
        run["cpu"]["reference_loop_ms"] = [speed_before, reference_ms()]
        report = write_report(out, run, checks)
        print((out / "report.md").read_text())
        status = 1 if report["failures"] else 0
        return status
    except Exception as exc:
        print(f"loadtest: {exc}; service log {out / 'serve.log'}", file=sys.stderr)
        return 2
    finally:
        stop(server)
        serve_log.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if not args.keep_db:
            try:
                drop_database(args.database_url)
            except Exception as exc:
                print(f"loadtest: could not drop the database: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
