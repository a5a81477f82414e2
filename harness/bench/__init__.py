"""Benchmarks: each prints its figures for people and returns them as a dict for the README and CI logs."""
