"""Machine learning in the pipeline: Isolation Forest checks and churn scores, tracked in MLflow."""
