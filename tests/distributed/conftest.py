"""The Dask tests' cluster: LocalCluster(n_workers=2, threads_per_worker=1), as issue 15 asks, per module."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, silence_logs=logging.ERROR, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c
