"""`python -m bench` (`make bench`): load real servers over loopback and report figures.

One run: for each scale a bench database is prepared (loaded once, reused after; see
bench/database.py), then each server of `bench.server.SERVERS` is started on it in turn
(the API with the standard executor, the API with the compiled executor, and the json_agg
floor of bench/floor.py, which answers the dashboard only), and each workload of
`bench.queries.WORKLOADS` it answers is driven by `--concurrency` keep-alive clients.
Before a server is measured on a query, its answer is compared with the other servers':
the floor must answer exactly what the compiled server answers, or it is not measured.
The report (bench/results/latest.md) puts the servers side by side per scale and query,
the dashboard's ratio to the floor, and each figure's change between scales.
"""
