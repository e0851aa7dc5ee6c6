"""Settlement beyond one machine: the batch of `settlement settle` on a Dask cluster, exact to the fen.

`run.settle_on_cluster` does the work, `partition` holds what the tasks do
(no Dask there), `command` is the command line's part.
"""
