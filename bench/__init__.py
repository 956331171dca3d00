"""``make bench``: the service's speed, AWS cost, memory and latency, each beside a baseline.

``python -m bench`` runs everything, prints a table and writes bench/results.json.
"""
