"""Every restriction mlmarket enforces, as a named constant with its source.

Values that the seller guide calls "not adjustable" are still configurable (`config.Settings`)
so tests can run the 60 s and 3600 s limits in seconds; these are the defaults.
"""

# R5 — real-time payload: the SageMaker Runtime model caps InvokeEndpoint's body at 6 MiB
# (botocore sagemaker-runtime BodyBlob max 6291456); the 2022-23 seller page says 6 MB.
INVOKE_MAX_BODY_BYTES = 6_291_456

# R6 — real-time processing time: 60 s per invocation
# (seller page; DG your-algorithms-inference-code).
INVOKE_TIMEOUT_SECONDS = 60.0
# Response streaming (InvokeEndpointWithResponseStream): the container must start answering
# within INVOKE_TIMEOUT_SECONDS (R6), and finish within this. The public record gives no figure
# for the whole stream (only the error, ModelStreamError ModelInvocationTimeExceeded): this is
# mlmarket's own, for answers generated token by token.
STREAM_TIMEOUT_SECONDS = 480.0
# A serverless endpoint scales to zero when idle; SageMaker publishes no figure for how long it
# waits: this is mlmarket's.
SERVERLESS_IDLE_SECONDS = 300.0

# Hosting container contract (DG your-algorithms-inference-code).
PING_TIMEOUT_SECONDS = 2.0
# "consistently" answer /ping within 4 minutes after start-up; used when the variant sets no
# ContainerStartupHealthCheckTimeoutInSeconds (the API gives no default).
DEFAULT_STARTUP_HEALTH_TIMEOUT_SECONDS = 240.0
# SIGTERM, then SIGKILL 30 s later, on scale-in and update.
CONTAINER_STOP_GRACE_SECONDS = 30
CONTAINER_PORT = 8080

# InvokeEndpoint headers (botocore sagemaker-runtime InvokeEndpointInput).
CUSTOM_ATTRIBUTES_MAX_CHARS = 1024

# Model artifacts: refuse archives that would expand past these (tar-bomb guard). The size
# follows the instance's storage volume; the member count is mlmarket's own bound.
MODEL_ARCHIVE_MAX_MEMBERS = 100_000

# The edge's own bounds (mlmarket's; AWS publishes none for the control plane). A control-plane
# body is held whole to be parsed; every body held whole counts against one server-wide budget,
# of which one account may hold half, and a sender may pause at most so long mid-body (S3's
# RequestTimeout names the same idle limit).
CONTROL_BODY_MAX_BYTES = 16 * 1024 * 1024
BODY_BYTES_IN_FLIGHT = 256 * 1024 * 1024
# Every held body counts as at least this much: what a call costs beyond its body (buffers, a
# small answer held whole) is then within the budget too, however small the bodies.
BODY_MIN_RESERVATION = 64 * 1024
REQUEST_BODY_IDLE_SECONDS = 20.0

# SigV4: AWS accepts request timestamps within 15 minutes of its clock.
SIGV4_MAX_CLOCK_SKEW_SECONDS = 15 * 60

# Training: StopTrainingJob and MaxRuntimeInSeconds send SIGTERM, then SIGKILL 120 s later
# (DG your-algorithms-training-algo-dockerfile).
TRAINING_STOP_GRACE_SECONDS = 120
# FailureReason keeps the first 1024 characters of /opt/ml/output/failure.
TRAINING_FAILURE_REASON_MAX = 1024
# A training job's storage volume when ResourceConfig names none (R3).
DEFAULT_TRAINING_VOLUME_GB = 30
