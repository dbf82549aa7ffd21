"""Readers of the systems data comes from: landing folders of files, JDBC databases, event streams."""
