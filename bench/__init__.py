"""`python -m bench` (`make bench`): load a real server over loopback and report figures.

One run: for each scale a bench database is prepared (loaded once, reused after), then for
each server spec in `bench.server.SERVERS` a uvicorn process is started on it, and each
workload in `bench.queries.WORKLOADS` is driven by `--concurrency` keep-alive clients.
"""
