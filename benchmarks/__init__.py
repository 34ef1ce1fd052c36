"""lrpilot's benchmark: real tasks on offline data, an oracle LR grid, peers side by side.

Entry points: ``python -m benchmarks.suggestion`` (regret of each LR picker against the oracle)
and ``python -m benchmarks.overhead`` (range-test wall time against a bare training loop).
"""

import os as _os

# The benchmark's thousands of runs and sweeps stay out of the user's history store.
_os.environ.setdefault("LRPILOT_HISTORY", "0")
