"""transferkit benchmarks: transferkit vs references, side by side in the same run.

Run ``python -m benchmarks`` (or ``python benchmarks/run_all.py``); see run_all.py.
"""
