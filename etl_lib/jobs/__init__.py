"""The jobs the registry runs.

Each reads through ``io``, applies the steps of ``layers`` and the capabilities, and writes through ``io`` again:
batch layer, speed layer, file ingest, quality replay, ML, reconciliation, data products.
"""
