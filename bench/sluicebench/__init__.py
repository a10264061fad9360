"""Pieces of the latency benchmark (bench/latency.py).

The benchmark talks to the API server with its own small aiohttp client (not
the official client), so that decoding watch events costs it little CPU: on a
2-core machine every millisecond it spends is taken from the operator or the
API server it is measuring.
"""
