"""Table and stream I/O.

Delta tables of the lakehouse, the sources (files, JDBC, event streams), clients of the services a run calls, and
the sinks whose outage degrades a run instead of stopping it.
"""
