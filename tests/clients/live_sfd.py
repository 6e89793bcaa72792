"""A real sfd for the Python-driven tests (clients, observability).

LiveSfd starts the built `sfd` binary in a fresh temp dir with its own sfd.yaml: state dir, a
Unix socket, model/data/output roots and the Prometheus endpoint on 127.0.0.1 with a free port
(port 0, read back from sfd's "sfd metrics:" line). The tiny random-init Qwen3 model with the
real Qwen3 tokenizer is written by make_tiny_model (the tokenizer is fetched once per build dir
by tests/oracle/fetch_tokenizers.sh, like the C++ e2e harness does). Every wait is bounded;
stop() SIGKILLs sfd, whose workers die with it (PR_SET_PDEATHSIG), and removes the temp dir.

Paths come from the environment that CTest sets: SFD_SOURCE_DIR, SFD_BINARY_DIR.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

SOURCE_DIR = os.environ.get("SFD_SOURCE_DIR", os.path.abspath(os.path.join(
    os.path.dirname(__file__), "..", "..")))
BINARY_DIR = os.environ.get("SFD_BINARY_DIR", os.path.join(SOURCE_DIR, "build"))
BIN_DIR = os.path.join(BINARY_DIR, "bin")


def worker_built():
    return os.path.exists(os.path.join(BIN_DIR, "sfd-worker"))


def tokenizer_dir():
    tok = os.path.join(BINARY_DIR, "tokenizer_models")
    if not os.path.exists(os.path.join(tok, ".done")):
        os.makedirs(tok, exist_ok=True)
        subprocess.run(
            ["flock", tok + ".lock", "bash",
             os.path.join(SOURCE_DIR, "tests/oracle/fetch_tokenizers.sh"), tok],
            check=True, stdout=subprocess.DEVNULL, timeout=600)
    return tok


def tiny_job(max_steps, eval_every=0, name="live", extra=""):
    """job.yaml text for the tiny model on the bundled example dataset."""
    return (
        f"name: {name}\nmodel: tiny\n"
        "data: {train: example/instructions.jsonl, format: alpaca, max_seq_len: 64, "
        "packing: true, eval_fraction: 0.1}\n"
        f"training:\n  max_steps: {max_steps}\n  micro_batch_size: 2\n"
        "  optimizer: {lr: 3.0e-3}\n  lr_scheduler: constant\n  seed: 1\n"
        f"eval: {{every_steps: {eval_every}, max_batches: 1}}\n"
        "engine: {device: cpu, cpu_threads: 1}\n" + extra)


class LiveSfd:
    def __init__(self, extra_config=""):
        self.dir = tempfile.mkdtemp(prefix="sfd_live_")
        self.extra_config = extra_config
        self.proc = None
        self.metrics_url = None
        os.makedirs(os.path.join(self.dir, "models"))
        os.makedirs(os.path.join(self.dir, "data", "example"))
        os.makedirs(os.path.join(self.dir, "out"))
        shutil.copy(os.path.join(SOURCE_DIR, "deploy/example/instructions.jsonl"),
                    os.path.join(self.dir, "data/example/instructions.jsonl"))

    @property
    def socket(self):
        return os.path.join(self.dir, "state", "sfd.sock")

    @property
    def log_path(self):
        return os.path.join(self.dir, "sfd.log")

    def make_tiny_model(self):
        tok = tokenizer_dir()
        subprocess.run(
            [os.path.join(BIN_DIR, "make_tiny_model"),
             "--out=" + os.path.join(self.dir, "models", "tiny"),
             "--tokenizer_json=" + os.path.join(tok, "qwen3", "tokenizer.json"),
             "--tokenizer_config=" + os.path.join(
                 SOURCE_DIR, "tests/fixtures/tokenizers/qwen3/tokenizer_config.json")],
            check=True, stdout=subprocess.DEVNULL, timeout=120)

    def start(self, timeout=30):
        with open(os.path.join(self.dir, "sfd.yaml"), "w") as f:
            f.write("state_dir: state\nroots:\n  models: [models]\n  data: [data]\n"
                    "  output: out\nmetrics_address: 127.0.0.1:0\nlog_level: debug\n"
                    + self.extra_config + "\n")
        offset = len(self.log())  # a restart appends to the same log
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BIN_DIR, "sfd"), "--config=" + os.path.join(self.dir, "sfd.yaml")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()[offset:]
            if "sfd ready: " in text:
                m = re.search(r"sfd metrics: (http://\S+)", text)
                self.metrics_url = m.group(1) if m else None
                return
            if self.proc.poll() is not None:
                raise RuntimeError("sfd exited at start:\n" + text)
            time.sleep(0.05)
        raise TimeoutError("sfd not ready in %d s:\n%s" % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill9(self):
        """SIGKILL sfd (its worker dies with it); the state dir stays for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self):
        self.kill9()
        if not os.environ.get("SFD_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_for(predicate, timeout, what, interval=0.2):
    """Polls predicate() until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last_error = e
        time.sleep(interval)
    raise TimeoutError("timed out after %.0f s waiting for %s%s" % (
        timeout, what, "" if last_error is None else " (last error: %r)" % (last_error,)))
