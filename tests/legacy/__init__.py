"""Today's reservation decisions, frozen before issue #15 made them incremental: the differential oracle.

``tests/core/test_incremental_differential.py`` and ``benchmarks/feasibility.py`` run the new core against
this copy; it must never change (it is the reference the incremental algorithm has to equal).
"""
