"""The data mesh: domains, their data products, the catalog that lists them, and access to them."""
