"""Benchmarks of the suite: ratios against a baseline measured in the same run (`make bench`)."""
