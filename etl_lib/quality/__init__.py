"""Data quality: rules declared per table, evaluated in one pass, with row-level results and a gate."""
