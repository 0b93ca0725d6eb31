"""Fault runs of the shop, shared by the CI tests (``tests/integration/test_fault_soak.py``)
and the soak command (``python -m bench.soak``): one workload, one verdict, one schedule."""
