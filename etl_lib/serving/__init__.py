"""The lambda serving layer: views over batch and speed results, reconciliation, the real-time store."""
