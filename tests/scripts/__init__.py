"""Helpers run in child processes (a script and a multiprocessing target)."""
