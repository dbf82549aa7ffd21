"""Running a job.

The session, the registry and runner, the task graph, the run lock, run records, and the Spark line's versions and
jars.
"""
