"""strict.front_door_problem for a settle request (the counter's front-door checks), CPU per call.

    PYTHONPATH=<tree>/src .venv/bin/python benchmarks/bench_front_door_checks.py LABEL   # alternate two trees
"""
import sys
import time

from settlement.service.settlements.router import counter_api
from settlement.service.strict import front_door_problem

routes = {r.path: r for r in counter_api.routes}
settle = routes["/v1/settlements"]
scope = {
    "type": "http", "method": "POST", "query_string": b"",
    "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer x")],
}
body = b'{"claim_id": "C1", "hospital": {"id": "H0002"}, "items": []}'
assert front_door_problem(settle, scope, {}, body) is None
N = 200_000
best = []
for _ in range(5):
    t = time.process_time()
    for _ in range(N):
        front_door_problem(settle, scope, {}, body)
    best.append((time.process_time() - t) / N * 1e9)
print(sys.argv[1], "front_door_problem ns CPU:", " ".join(f"{b:.0f}" for b in best))
