"""The composition root: the one place that knows every part of the product.

`erp.app` assembles the HTTP API (cloud_api.api) and the portal's pages (web), `erp.cli`
is the `erp` command (the cloud's, the edge's and the benchmarks' commands side by
side) and `erp.demo` drives a whole working day through them. Nothing imports `erp`;
it imports the rest, so cloud_api needs to know none of web, edge_agent, bench or
firmware_bridges (tests/test_layers.py holds it to that)."""
