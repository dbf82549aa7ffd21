"""Build and deploy tooling: resolving the JVM jars with Maven, packaging, and the platforms' job arguments."""
