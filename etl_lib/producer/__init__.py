"""The event producer: the real Online Retail purchases replayed as customer events into a stream."""
