"""`make demo`: the whole lambda pipeline on the bundled data, a summary, and an HTML report."""
