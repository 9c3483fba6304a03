"""A request checked against the input shape of an AWS API operation, as the service models that
botocore ships describe it (the same models the AWS SDKs and CLI send with)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _shape(service: str, operation: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape


def api_errors(service: str, operation: str, request: dict[str, Any]) -> str:
    """What the SDK's validator reports about `request`; empty when it is what the API takes."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(request, _shape(service, operation))
    return report.generate_report() if report.has_errors() else ""
