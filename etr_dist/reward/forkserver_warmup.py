"""Imported only as a forkserver preload: grading once here builds sympy's caches and the LaTeX parser's
tables in the server, and every worker forked from it inherits them, so a replacement for a killed worker
is ready in milliseconds instead of the ~0.5 s its own first symbolic grade would take."""

import gc

from etr_dist.reward.worker import warm_up

warm_up()
gc.freeze()  # the imported modules and warm caches are permanent: workers' collections never rescan them
