"""S3's error codes, with its own messages and the extra fields it reports."""

from __future__ import annotations

from mlmarket.protocol.errors import CommonServiceError


def s3_error(code: str, message: str, status: int = 400, **fields: str) -> CommonServiceError:
    return CommonServiceError(code, message, status, True, **fields)


def no_such_bucket(bucket: str) -> CommonServiceError:
    return s3_error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=bucket)


def no_such_key(key: str) -> CommonServiceError:
    return s3_error("NoSuchKey", "The specified key does not exist.", 404, Key=key)


def access_denied() -> CommonServiceError:
    return s3_error("AccessDenied", "Access Denied", 403)


def no_such_upload(upload_id: str) -> CommonServiceError:
    return s3_error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        404,
        UploadId=upload_id,
    )
