"""Client: a friendly wrapper around the generated sfd.v1 stubs.

    from sfd_client import Client
    with Client() as sfd:                        # $SFD_SOCKET or ./sfd-state/sfd.sock
        job = sfd.submit({"model": "tiny", "data": {"train": "example/x.jsonl"}})
        for event in sfd.events(job.id):         # replay, then live until the job ends
            ...
        df = pandas.DataFrame(sfd.records(job.id))

Jobs are submitted as job.yaml text (a dict is sent as JSON, which is YAML), so the daemon
resolves and validates them exactly as for sfctl. Every RPC error becomes an SfdError subclass
carrying the server's code and message (see errors.py).
"""

import json
import os
import pathlib
import time

import grpc

from .errors import JobCancelled, JobFailed, SfdError, Unavailable, from_rpc_error
from .records import COLUMNS, Recorder

try:
    from sfd.v1 import sfd_pb2, sfd_pb2_grpc
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "sfd_client: the generated stubs (sfd/v1/sfd_pb2.py) are not importable: build them "
        "with `ninja -C build sfd_python_client` and put build/client/python on PYTHONPATH "
        "(%s)" % e) from e

TERMINAL = (sfd_pb2.SUCCEEDED, sfd_pb2.FAILED, sfd_pb2.CANCELLED)


def state_name(state):
    """'RUNNING' for sfd_pb2.RUNNING."""
    return sfd_pb2.JobState.Name(state)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None


class Client:
    """Connection to one sfd daemon.

    socket: Unix socket path (default $SFD_SOCKET, else ./sfd-state/sfd.sock).
    address: host:port for TCP instead (default $SFD_ADDRESS); token / token_file: bearer token
    (default $SFD_TOKEN / $SFD_TOKEN_FILE); tls_ca, tls_cert + tls_key, tls_server_name: TLS.
    timeout: seconds per unary call.
    """

    def __init__(self, socket=None, address=None, token=None, token_file=None, tls_ca=None,
                 tls_cert=None, tls_key=None, tls_server_name=None, timeout=30.0):
        address = address or os.environ.get("SFD_ADDRESS")
        token = token or os.environ.get("SFD_TOKEN")
        token_file = token_file or os.environ.get("SFD_TOKEN_FILE")
        if not token and token_file:
            token = pathlib.Path(token_file).read_text().strip()
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if address:
            self.target = address
            if tls_ca or tls_cert:
                read = lambda p: pathlib.Path(p).read_bytes() if p else None  # noqa: E731
                creds = grpc.ssl_channel_credentials(read(tls_ca), read(tls_key), read(tls_cert))
                if tls_server_name:
                    options.append(("grpc.ssl_target_name_override", tls_server_name))
                self._channel = grpc.secure_channel(address, creds, options)
            else:
                self._channel = grpc.insecure_channel(address, options)
        else:
            socket = socket or os.environ.get("SFD_SOCKET") or "sfd-state/sfd.sock"
            self.target = "unix:" + os.path.abspath(socket)
            self._channel = grpc.insecure_channel(self.target, options)
        self._stub = sfd_pb2_grpc.SfdStub(self._channel)
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        self.timeout = timeout

    # -- lifetime ---------------------------------------------------------------------------
    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _unary(self, method, request):
        return _call(method, request, timeout=self.timeout, metadata=self._metadata)

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, job, request_id="", validate_only=False):
        """Creates a job; returns the sfd.v1.Job (resolved spec, id, state).

        job: a dict (the job.yaml structure), job.yaml text, a path to a job.yaml file
        (str or pathlib.Path) or an sfd_pb2.JobSpec. request_id makes the call idempotent.
        """
        req = sfd_pb2.CreateJobRequest(request_id=request_id or "", validate_only=validate_only)
        if isinstance(job, sfd_pb2.JobSpec):
            req.spec.CopyFrom(job)
        elif isinstance(job, dict):
            req.job_yaml = json.dumps(job)
        elif isinstance(job, pathlib.Path):
            req.job_yaml = job.read_text()
        elif isinstance(job, str):
            if "\n" not in job and (os.path.isfile(job) or job.endswith((".yaml", ".yml"))):
                req.job_yaml = pathlib.Path(job).read_text()  # FileNotFoundError names it
            else:
                req.job_yaml = job
        else:
            raise TypeError("submit: job must be a dict, YAML text, a path or a JobSpec, not %s"
                            % type(job).__name__)
        return self._unary(self._stub.CreateJob, req).job

    def get(self, job_id):
        return self._unary(self._stub.GetJob, sfd_pb2.GetJobRequest(job_id=job_id))

    def list(self, states=None, limit=None):
        """Jobs in creation order; states: e.g. ["QUEUED", "RUNNING"] or enum values."""
        wanted = [sfd_pb2.JobState.Value(s) if isinstance(s, str) else s for s in states or []]
        jobs, token = [], ""
        while True:
            resp = self._unary(self._stub.ListJobs, sfd_pb2.ListJobsRequest(
                page_size=500, page_token=token, states=wanted))
            jobs.extend(resp.jobs)
            token = resp.next_page_token
            if not token or (limit is not None and len(jobs) >= limit):
                return jobs[:limit] if limit is not None else jobs

    def cancel(self, job_id, checkpoint=None):
        """Cancels a job; checkpoint: write a final checkpoint first (None = the spec's choice)."""
        req = sfd_pb2.CancelJobRequest(job_id=job_id)
        if checkpoint is not None:
            req.final_checkpoint = bool(checkpoint)
        return self._unary(self._stub.CancelJob, req)

    def checkpoints(self, job_id):
        return list(self._unary(self._stub.ListCheckpoints,
                                sfd_pb2.ListCheckpointsRequest(job_id=job_id)).checkpoints)

    def info(self):
        return self._unary(self._stub.GetServerInfo, sfd_pb2.GetServerInfoRequest())

    # -- events -----------------------------------------------------------------------------
    def events(self, job_id, after_seq=0, follow=True, reconnect_seconds=60.0):
        """Yields the job's sfd.v1.JobEvents with seq > after_seq: the stored ones, then (with
        follow) live ones until the job has ended and every event was sent. If the daemon goes
        away while following, reconnects from the last seen seq for up to reconnect_seconds, so
        no event is missed or repeated."""
        last = after_seq
        down_since = None
        while True:
            req = sfd_pb2.StreamJobEventsRequest(job_id=job_id, after_seq=last,
                                                 no_follow=not follow)
            try:
                for event in self._stub.StreamJobEvents(req, metadata=self._metadata):
                    down_since = None
                    last = event.seq
                    yield event
                return
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                if not (follow and isinstance(err, Unavailable)):
                    raise err from None
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > reconnect_seconds:
                    raise err from None
                time.sleep(0.5)

    def wait(self, job_id, raise_on_failure=True):
        """Follows the job until it ends; returns the final Job. Raises JobFailed / JobCancelled
        (unless raise_on_failure is False)."""
        for _ in self.events(job_id):
            pass
        job = self.get(job_id)
        if raise_on_failure and job.state == sfd_pb2.FAILED:
            raise JobFailed(job)
        if raise_on_failure and job.state == sfd_pb2.CANCELLED:
            raise JobCancelled(job)
        return job

    def records(self, job_id, follow=False):
        """Step records of the job (see records.py): list of dicts, one per step, for pandas."""
        rec = Recorder()
        for event in self.events(job_id, follow=follow):
            rec.add(event)
        return rec.records()

    def dataframe(self, job_id, follow=False):
        """records() as a pandas.DataFrame indexed by step (needs pandas)."""
        try:
            import pandas
        except ImportError as e:
            raise ImportError("Client.dataframe needs pandas (apt install python3-pandas); "
                              "Client.records returns the same rows as dicts") from e
        return pandas.DataFrame(self.records(job_id, follow=follow),
                                columns=list(COLUMNS)).set_index("step")


__all__ = ["Client", "SfdError", "TERMINAL", "state_name"]
