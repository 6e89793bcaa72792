"""sfd_client: Python client of the sfd fine-tuning daemon (sfd.v1 over gRPC).

    from sfd_client import Client
    sfd = Client()                                   # $SFD_SOCKET or ./sfd-state/sfd.sock
    job = sfd.submit("deploy/example/job.yaml")      # or a dict, YAML text, a JobSpec
    for ev in sfd.events(job.id): print(ev)          # follow until the job ends
    rows = sfd.records(job.id)                       # list of dicts -> pandas.DataFrame(rows)

The generated stubs (sfd.v1.sfd_pb2, sfd.v1.sfd_pb2_grpc) are built from proto/ by CMake into
build/client/python next to a copy of this package; put that folder on PYTHONPATH.
"""

from .client import TERMINAL, Client, state_name
from .errors import (AlreadyExists, DeadlineExceeded, FailedPrecondition, InvalidArgument,
                     JobCancelled, JobFailed, NotFound, PermissionDenied, ResourceExhausted,
                     SfdError, Unauthenticated, Unavailable)
from .plot import LossCurve, live_loss_plot
from .records import COLUMNS, Recorder, step_record, to_records

from sfd.v1 import sfd_pb2 as pb  # noqa: E402  (the message classes, e.g. pb.JobSpec)

__all__ = [
    "Client", "TERMINAL", "state_name", "pb",
    "SfdError", "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition",
    "ResourceExhausted", "Unavailable", "Unauthenticated", "PermissionDenied",
    "DeadlineExceeded", "JobFailed", "JobCancelled",
    "COLUMNS", "Recorder", "step_record", "to_records", "LossCurve", "live_loss_plot",
]
