"""`python -m benchmarks`: run every benchmark and rewrite BENCHMARKS.md (see run_all.py)."""

from benchmarks.run_all import main

raise SystemExit(main())
