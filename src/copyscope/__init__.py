"""copyscope: does this generative model store copies of its training data?"""

import os

# torch's OpenMP threads sleep between operations instead of spinning (unless the user chose):
# beside a busy core, spinning threads slow loops of small operations (sampling) many times
# over (benchmarks/threads.py). Set before torch starts its thread pool; a process that imported
# torch first keeps its own policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
