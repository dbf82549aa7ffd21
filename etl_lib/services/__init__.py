"""Real local services on loopback (Kafka, PostgreSQL, the AWS endpoint, Redis), started and stopped by the suite."""
