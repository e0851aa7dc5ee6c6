"""Benchmark only: a service whose previews are not recorded (benchmarks/bench_preview_records.py, "off").

On the server's PYTHONPATH ahead of ``src`` (loadtests/run.sh ``--serve-env``), Python imports
this at start-up in every worker; PreviewLog.record then keeps nothing, so no buffer, no writer
thread, no INSERTs: the preview path is otherwise the same code. Never on a real service's path —
the service itself has no switch to stop recording previews (issue 10: every preview is traced).
"""

from settlement.service.previews.recorder import PreviewLog


def _not_recorded(self: PreviewLog, *_args: object) -> None:
    return None


PreviewLog.record = _not_recorded  # type: ignore[method-assign]
