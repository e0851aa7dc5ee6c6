"""The settlement rules, vectorised over numpy int64 arrays in fen.

Pure: no web, database or file I/O. One entry point, :func:`settle`, serves
the counter (a batch of one, accumulators from the database) and the insurer
batch (millions of claims, accumulators carried in memory).
"""

from .batch import NO_STANDARD, OK, Accumulators, BatchResult, ClaimBatch
from .pipeline import classify, line_parts, settle
from .tables import UNLIMITED, Tables, compile_tables

__all__ = [
    "NO_STANDARD",
    "OK",
    "UNLIMITED",
    "Accumulators",
    "BatchResult",
    "ClaimBatch",
    "Tables",
    "classify",
    "compile_tables",
    "line_parts",
    "settle",
]
