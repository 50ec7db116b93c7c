"""The data plane of a Docker host: `mlmarket agent` and the channel servers reach it by."""
