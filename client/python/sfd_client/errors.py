"""Exceptions of the sfd Python client.

Every failed call raises an SfdError subclass that carries the server's status code name and
its message unchanged (e.g. ``InvalidArgument: training.optimizer.lr: must be > 0, got -1``), so
callers can catch by kind and show the daemon's own words. A job that ends badly while being
waited on raises JobFailed / JobCancelled with the job attached.
"""

import grpc


class SfdError(Exception):
    """A call to sfd failed. ``code``: gRPC status code name; ``message``: the server's text."""

    def __init__(self, code, message, details=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.details = details


class InvalidArgument(SfdError):
    """Bad job spec or request; the message starts with the field path."""


class NotFound(SfdError):
    """No such job."""


class AlreadyExists(SfdError):
    """request_id reused with a different spec."""


class FailedPrecondition(SfdError):
    """E.g. cancelling a finished job."""


class ResourceExhausted(SfdError):
    """Queue full (or, for a job, its memory plan does not fit)."""


class Unavailable(SfdError):
    """The daemon is not reachable or is shutting down."""


class Unauthenticated(SfdError):
    """Missing or wrong bearer token on TCP."""


class PermissionDenied(SfdError):
    """The daemon refused the caller."""


class DeadlineExceeded(SfdError):
    """The call took longer than its timeout."""


class JobFailed(SfdError):
    """A waited-on job ended FAILED; ``job`` is the final sfd.v1.Job."""

    def __init__(self, job):
        super().__init__(job.error_code or "UNKNOWN",
                         "job %s failed: %s" % (job.id, job.error_message))
        self.job = job


class JobCancelled(SfdError):
    """A waited-on job ended CANCELLED; ``job`` is the final sfd.v1.Job."""

    def __init__(self, job):
        super().__init__("CANCELLED", "job %s was cancelled" % job.id)
        self.job = job


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(error):
    """The SfdError for a grpc.RpcError (code name + the server's message)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    cls = _BY_CODE.get(code, SfdError)
    return cls(code.name if code is not None else "UNKNOWN", message or "", details=error)
