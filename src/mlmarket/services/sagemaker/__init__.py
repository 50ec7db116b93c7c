"""The SageMaker control plane (awsJson1_1)."""
