"""Service errors, as the protocols carry them.

    ServiceError (code, status_code, sender_fault)
    ├── CommonServiceError      a code SageMaker returns unmodelled (ValidationException)
    ├── sagemaker:  ResourceNotFound, ResourceInUse, ResourceLimitExceeded, ConflictException
    ├── runtime:    ValidationError (PayloadTooLarge), ModelError (+OriginalStatusCode,
    │               OriginalMessage, LogStreamArn), ModelNotReadyException, ServiceUnavailable
    └── edge:       auth and protocol errors shared by every service

The boundary in `server.py` turns any of these into the protocol's error body; anything else is a
500 InternalFailure with the request id logged.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    code: ClassVar[str] = "InternalFailure"
    status_code: ClassVar[int] = 500
    sender_fault: ClassVar[bool] = False

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    @property
    def error_code(self) -> str:
        return self.code

    @property
    def http_status(self) -> int:
        return self.status_code


class CommonServiceError(ServiceError):
    """An error whose code is not a modelled shape (SageMaker's ValidationException)."""

    def __init__(
        self,
        code: str,
        message: str,
        status_code: int = 400,
        sender_fault: bool = True,
        **fields: Any,
    ) -> None:
        super().__init__(message, **fields)
        self._code = code
        self._status = status_code
        self.is_sender_fault = sender_fault

    @property
    def error_code(self) -> str:
        return self._code

    @property
    def http_status(self) -> int:
        return self._status


def validation_exception(message: str) -> CommonServiceError:
    """SageMaker's control plane answers most bad input and missing resources this way."""
    return CommonServiceError("ValidationException", message)


class _ClientError(ServiceError):
    status_code = 400
    sender_fault = True


# -- SageMaker control plane (modelled) --
class ResourceNotFound(_ClientError):
    code = "ResourceNotFound"


class ResourceInUse(_ClientError):
    code = "ResourceInUse"


class ResourceLimitExceeded(_ClientError):
    code = "ResourceLimitExceeded"


class ConflictException(_ClientError):
    code = "ConflictException"


# -- SageMaker Runtime (modelled) --
class ValidationError(_ClientError):
    code = "ValidationError"


class PayloadTooLarge(ValidationError):
    """An InvokeEndpoint body past the limit; HTTP 413 as SageMaker's front end answers it."""

    status_code = 413


class ModelError(ServiceError):
    code = "ModelError"
    status_code = 424
    sender_fault = True


class InStreamError(Exception):
    """An error inside a streamed answer, after its 200: sent as the event stream's exception
    message (ModelStreamError, with an ErrorCode; InternalStreamFailure)."""

    def __init__(self, shape: str, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.shape = shape
        self.message = message
        self.error_code = error_code

    def members(self) -> dict[str, str]:
        out = {"Message": self.message}
        if self.error_code is not None:
            out["ErrorCode"] = self.error_code
        return out


class ThrottlingException(_ClientError):
    """Past a serverless endpoint's MaxConcurrency (botocore retries it, with backoff)."""

    code = "ThrottlingException"


class ModelNotReadyException(ServiceError):
    code = "ModelNotReadyException"
    status_code = 429
    sender_fault = True


class ServiceUnavailable(ServiceError):
    code = "ServiceUnavailable"
    status_code = 503


class InternalFailure(ServiceError):
    code = "InternalFailure"
    status_code = 500


# -- the edge: authentication and protocol, shared by every service --
class MissingAuthenticationToken(ServiceError):
    code = "MissingAuthenticationTokenException"
    status_code = 403
    sender_fault = True


class UnrecognizedClient(ServiceError):
    code = "UnrecognizedClientException"
    status_code = 403
    sender_fault = True


class InvalidSignature(ServiceError):
    code = "InvalidSignatureException"
    status_code = 403
    sender_fault = True


class IncompleteSignature(ServiceError):
    code = "IncompleteSignatureException"
    status_code = 403
    sender_fault = True


class UnknownOperation(_ClientError):
    code = "UnknownOperationException"


class SerializationError(_ClientError):
    code = "SerializationException"


class UnsupportedEncoding(SerializationError):
    """A request body in a Content-Encoding the operation does not take."""


class RequestTimeout(ServiceError):
    """The sender paused too long while sending its body."""

    code = "RequestTimeoutException"
    status_code = 408
    sender_fault = True


class BadRequest(_ClientError):
    """A message that could not be parsed as HTTP at all."""

    code = "BadRequestException"


class NotFoundRoute(ServiceError):
    code = "UnknownOperationException"
    status_code = 404
    sender_fault = True
