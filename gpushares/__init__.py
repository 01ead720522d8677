"""Shared Python for the operator scripts, the demo, the benchmark and the tests:
the local node, the deployments file, the fleet CSV format and unit conversions."""
