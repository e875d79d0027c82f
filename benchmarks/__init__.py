"""Side-by-side benchmarks, run by ``make bench`` (never by the test suite)."""
