"""Errors of the Raylight client: every failed call raises RaylightError."""

from __future__ import annotations

import grpc


class RaylightError(Exception):
    """A call the cluster refused or could not complete.

    `code` is the gRPC status code, `message` the cluster's message, and `field` the request
    field it names (the cluster's messages begin with "field: ..."), or None.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message
        self.field = field_of(message)
        super().__init__(f"{code.name}: {message}")


class JobFailed(RaylightError):
    """A job that ended FAILED or CANCELLED; `job_id` names it."""

    def __init__(self, job_id: str, code: grpc.StatusCode, message: str) -> None:
        self.job_id = job_id
        super().__init__(code, message)


def field_of(message: str) -> str | None:
    """The field a cluster message names: the text before the first ': ' when it is one."""
    head, sep, _ = message.partition(": ")
    if not sep or not head or " " in head.strip():
        return None
    return head.strip()


def from_rpc(error: grpc.RpcError) -> RaylightError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return RaylightError(code, details or "")
