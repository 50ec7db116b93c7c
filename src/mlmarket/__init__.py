"""mlmarket: a self-hosted marketplace and runtime for containerized ML products."""

__version__ = "0.1.0"
