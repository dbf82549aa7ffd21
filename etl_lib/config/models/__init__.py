"""The configuration's models, one module an area."""
