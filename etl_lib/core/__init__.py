"""What a run is and what it reports: its context (ids, clock), its writes and commits, the reads lineage records."""
