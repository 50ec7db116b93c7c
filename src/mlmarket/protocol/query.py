"""The awsQuery protocol (`Action=…&Version=…`, form-encoded; XML answers), for STS:
GetCallerIdentity, which boto3, the AWS CLI and the SageMaker SDK call to learn the account;
and the answer to a service mlmarket does not serve, in that service's own protocol.

A caller signs with an mlmarket account's keys, which are that account's own (root) keys: the
identity is the account's root, `arn:aws:iam::<account>:root`, as AWS answers for root keys.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from functools import lru_cache
from urllib.parse import parse_qsl

import botocore.exceptions
from aiohttp import web

from mlmarket import limits
from mlmarket.domain import arns
from mlmarket.protocol import json_protocol, rest_json, rest_xml, sigv4
from mlmarket.protocol.admission import Admission
from mlmarket.protocol.errors import CommonServiceError, ServiceError
from mlmarket.protocol.models import service_model

_STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


class StsEdge:
    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        claim = self.admission.check(request, "sts")
        held = self.admission.body(request, claim, limits.CONTROL_BODY_MAX_BYTES)
        async with held as body:
            form = dict(parse_qsl(request.query_string, keep_blank_values=True))
            if request.method == "POST":
                form.update(parse_qsl(bytes(body).decode("utf-8", "replace")))
            action = form.get("Action", "")
            ctx = held.verify(request_id, action)
        if action != "GetCallerIdentity":
            raise CommonServiceError(
                "InvalidAction",
                f"Could not find operation {action or '(none)'} for version "
                f"{form.get('Version', '(none)')}: mlmarket's STS answers GetCallerIdentity.",
            )
        answer = ET.Element("GetCallerIdentityResponse", xmlns=_STS_NAMESPACE)
        result = ET.SubElement(answer, "GetCallerIdentityResult")
        ET.SubElement(result, "Arn").text = arns.account_root(ctx.account_id)
        ET.SubElement(result, "UserId").text = ctx.account_id
        ET.SubElement(result, "Account").text = ctx.account_id
        metadata = ET.SubElement(answer, "ResponseMetadata")
        ET.SubElement(metadata, "RequestId").text = request_id
        return web.Response(
            body=ET.tostring(answer, xml_declaration=True, encoding="utf-8"),
            headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
        )

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        if error.error_code == "UnrecognizedClientException":  # STS's word for an unknown key
            error = CommonServiceError("InvalidClientTokenId", error.message, error.http_status)
        return web.Response(
            status=error.http_status,
            body=serialize_error(error, request_id),
            headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
        )


def serialize_error(error: ServiceError, request_id: str) -> bytes:
    """awsQuery's error document (STS, IAM, and the other query services)."""
    root = ET.Element("ErrorResponse")
    element = ET.SubElement(root, "Error")
    ET.SubElement(element, "Type").text = "Sender" if error.http_status < 500 else "Receiver"
    ET.SubElement(element, "Code").text = error.error_code
    ET.SubElement(element, "Message").text = error.message
    ET.SubElement(root, "RequestId").text = request_id
    return bytes(ET.tostring(root, xml_declaration=True, encoding="utf-8"))


# The services mlmarket serves: the signing names their requests carry, and how messages name
# them. Any other signing name is refused by ForeignEdge, in that service's own protocol.
SERVED = {
    "sagemaker": "SageMaker and SageMaker Runtime",
    "s3": "S3",
    "aws-marketplace": "AWS Marketplace",
    "mlmarket": "mlmarket's own API",
    "logs": "CloudWatch Logs (reading)",
    "sts": "STS GetCallerIdentity",
}


class ForeignEdge:
    """A service mlmarket does not serve, named by the credential scope: refused in that
    service's own protocol (from botocore's model of it), so its client reads a clear error
    instead of failing to parse one."""

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        service = sigv4.scope_service(request.headers.get("Authorization")) or "(unsigned)"
        await asyncio.to_thread(_protocol_of, service)  # loads its model off the loop, once
        raise CommonServiceError(
            "UnknownOperationException",
            f"mlmarket does not serve the '{service}' service; it serves "
            f"{', '.join(SERVED.values())}.",
        )

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        service = sigv4.scope_service(request.headers.get("Authorization"))
        protocol = _protocol_of(service) if service else "json"
        if protocol in ("query", "ec2"):
            refused = CommonServiceError("InvalidAction", error.message)
            status, headers = 400, {"Content-Type": "text/xml"}
            body = serialize_error(refused, request_id)
        elif protocol == "rest-xml":
            status, headers, body = rest_xml.serialize_error(
                CommonServiceError("NotImplemented", error.message, 501), request_id
            )
        elif protocol == "rest-json":
            status, headers, body = rest_json.serialize_error(
                CommonServiceError(error.error_code, error.message, 404)
            )
        else:
            status, headers, body = json_protocol.serialize_error(error)
        headers["x-amzn-RequestId"] = request_id
        return web.Response(status=status, body=body, headers=headers)


@lru_cache(maxsize=64)
def _protocol_of(service: str) -> str:
    """The protocol of the service botocore knows by this name ("json" when it knows none)."""
    try:
        return str(service_model(service).protocol)
    except botocore.exceptions.UnknownServiceError:
        return "json"
