"""Lineage captured by the suite itself: what each task read and wrote, with Delta versions."""
