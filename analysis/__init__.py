"""Comparing runs and benchmarks: scripts that only read what runs wrote, or time the library's parts."""
