"""The Python client (client/python) against a live sfd, with Debian's python3-grpcio.

Submitting from a dict, YAML text and a file; following events as an iterator; step records for
pandas; the live loss curve; exceptions that carry the server's code and message; wait() raising
for a cancelled job; and the example notebook's code cells run top to bottom.
Run by CTest with /usr/bin/python3 (PYTHONPATH = build/client/python).
"""

import json
import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_sfd  # noqa: E402

import sfd_client  # noqa: E402
from sfd_client import pb  # noqa: E402

NOTEBOOK = os.path.join(live_sfd.SOURCE_DIR, "client/python/examples/quickstart.ipynb")

sfd = None


def setUpModule():
    global sfd
    if not live_sfd.worker_built():
        raise RuntimeError("sfd-worker not built in " + live_sfd.BIN_DIR)
    sfd = live_sfd.LiveSfd()
    sfd.make_tiny_model()
    sfd.start()


def tearDownModule():
    if sfd is not None:
        sfd.stop()


def job_dict(max_steps, eval_every=0, lr=3e-3):
    return {
        "name": "py",
        "model": "tiny",
        "data": {"train": "example/instructions.jsonl", "format": "alpaca", "max_seq_len": 64,
                 "packing": True, "eval_fraction": 0.1},
        "training": {"max_steps": max_steps, "micro_batch_size": 2, "optimizer": {"lr": lr},
                     "lr_scheduler": "constant", "seed": 1},
        "eval": {"every_steps": eval_every, "max_batches": 1},
        "engine": {"device": "cpu", "cpu_threads": 1},
    }


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        self.client = sfd_client.Client(socket=sfd.socket)

    def tearDown(self):
        self.client.close()

    def test_submit_dict_follow_events_and_records(self):
        job = self.client.submit(job_dict(4, eval_every=2), request_id="py-dict-1")
        self.assertTrue(job.id)
        self.assertEqual(job.spec.training.max_steps, 4)
        self.assertEqual(job.spec.model, os.path.join(os.path.realpath(sfd.dir), "models/tiny"))
        # Same request_id + same spec = the same job.
        self.assertEqual(self.client.submit(job_dict(4, eval_every=2), "py-dict-1").id, job.id)

        events = list(self.client.events(job.id))
        self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)))
        states = [e.state.state for e in events if e.WhichOneof("kind") == "state"]
        self.assertEqual(states, [pb.QUEUED, pb.RUNNING, pb.SUCCEEDED])
        steps = [e.step for e in events if e.WhichOneof("kind") == "step"]
        self.assertEqual([s.step for s in steps], [1, 2, 3, 4])

        # Records: one per step, every column, eval loss where an eval ran.
        records = self.client.records(job.id)
        self.assertEqual([r["step"] for r in records], [1, 2, 3, 4])
        for r, s in zip(records, steps):
            self.assertEqual(tuple(r), sfd_client.COLUMNS)
            self.assertEqual(r["loss"], s.loss)
            self.assertTrue(math.isfinite(r["loss"]) and r["loss"] > 0)
            self.assertEqual(r["job_id"], job.id)
            self.assertAlmostEqual(r["tokens_per_second"], s.tokens / s.step_seconds)
            self.assertEqual(r["peak_host"], s.peak.host)
        evals = {e.eval.step: e.eval.eval_loss for e in events if e.WhichOneof("kind") == "eval"}
        self.assertEqual(sorted(evals), [2, 4])
        self.assertEqual([r["eval_loss"] for r in records],
                         [None, evals[2], None, evals[4]])
        json.dumps(records)  # plain Python values only

        # Resume a replay after a given seq; the finished job ends the stream.
        tail = list(self.client.events(job.id, after_seq=events[-3].seq))
        self.assertEqual([e.seq for e in tail], [e.seq for e in events[-2:]])
        final = self.client.wait(job.id)
        self.assertEqual(final.state, pb.SUCCEEDED)
        self.assertTrue(os.path.isdir(final.final_model_dir))
        self.assertIn(job.id, [j.id for j in self.client.list(states=["SUCCEEDED"])])

        # The live plot's data is the records' loss and eval loss.
        curve = sfd_client.LossCurve()
        for e in events:
            curve.add(e)
        self.assertEqual(curve.train, ([1, 2, 3, 4], [s.loss for s in steps]))
        self.assertEqual(curve.eval, ([2, 4], [evals[2], evals[4]]))
        try:
            import matplotlib
        except ImportError:
            with self.assertRaisesRegex(ImportError, "needs matplotlib"):
                sfd_client.live_loss_plot(self.client, job.id)
        else:
            matplotlib.use("Agg")
            self.assertEqual(sfd_client.live_loss_plot(self.client, job.id), records)

    def test_submit_yaml_text_and_file(self):
        text = live_sfd.tiny_job(3, name="from-yaml")
        resolved = self.client.submit(text, validate_only=True)
        self.assertEqual(resolved.spec.name, "from-yaml")
        self.assertEqual(resolved.spec.training.max_steps, 3)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            from_file = self.client.submit(f.name, validate_only=True)
            from_file.spec.ClearField("output_dir")  # default output_dir names the job id
            resolved.spec.ClearField("output_dir")
            self.assertEqual(from_file.spec, resolved.spec)
        finally:
            os.unlink(f.name)
        with self.assertRaises(FileNotFoundError):
            self.client.submit("/nonexistent/job.yaml")
        with self.assertRaises(TypeError):
            self.client.submit(42)

    def test_errors_carry_the_server_message(self):
        with self.assertRaises(sfd_client.InvalidArgument) as cm:
            self.client.submit(job_dict(3, lr=-1))
        e = cm.exception
        self.assertIsInstance(e, sfd_client.SfdError)
        self.assertEqual(e.code, "INVALID_ARGUMENT")
        self.assertTrue(e.message.startswith("training.optimizer.lr"), e.message)
        self.assertIn(e.message, str(e))

        with self.assertRaises(sfd_client.InvalidArgument) as cm:
            self.client.submit({"model": "tiny", "data": {"train": "x.jsonl"}, "nonsense": 1})
        self.assertIn("nonsense", cm.exception.message)

        with self.assertRaises(sfd_client.NotFound) as cm:
            self.client.get("j-doesnotexist")
        self.assertIn("j-doesnotexist", cm.exception.message)
        with self.assertRaises(sfd_client.NotFound):
            list(self.client.events("j-doesnotexist"))

        gone = sfd_client.Client(socket=os.path.join(sfd.dir, "no.sock"), timeout=2)
        with self.assertRaises(sfd_client.Unavailable):
            gone.info()
        gone.close()

    def test_wait_raises_for_a_cancelled_job_and_cancel_twice_is_refused(self):
        job = self.client.submit(job_dict(1000))
        live_sfd.wait_for(lambda: self.client.get(job.id).progress.step >= 1, 120, "step 1")
        self.client.cancel(job.id, checkpoint=False)
        with self.assertRaises(sfd_client.JobCancelled) as cm:
            self.client.wait(job.id)
        self.assertEqual(cm.exception.job.state, pb.CANCELLED)
        with self.assertRaises(sfd_client.FailedPrecondition):
            self.client.cancel(job.id)
        self.assertEqual(self.client.wait(job.id, raise_on_failure=False).state, pb.CANCELLED)

    def test_events_follow_across_a_daemon_restart(self):
        spec = job_dict(4)
        spec["checkpoint"] = {"every_steps": 2, "keep_last": 1}
        job = self.client.submit(spec)
        seqs, states, restarted = [], [], False
        for ev in self.client.events(job.id, reconnect_seconds=60):
            seqs.append(ev.seq)
            kind = ev.WhichOneof("kind")
            if kind == "state":
                states.append(ev.state.state)
            if kind == "checkpoint" and ev.checkpoint.step == 2 and not restarted:
                sfd.kill9()   # the stream breaks (UNAVAILABLE) ...
                sfd.start()   # ... and the iterator reconnects from the last seq it saw
                restarted = True
        self.assertTrue(restarted)
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))  # nothing missed or repeated
        # The interrupted job was re-queued at startup and resumed to the end.
        self.assertEqual(states[:2], [pb.QUEUED, pb.RUNNING])
        self.assertIn(pb.QUEUED, states[2:])
        self.assertEqual(states[-1], pb.SUCCEEDED)
        self.assertEqual(self.client.wait(job.id).progress.step, 4)

    def test_example_notebook_runs(self):
        with open(NOTEBOOK) as f:
            nb = json.load(f)
        self.assertEqual(nb["nbformat"], 4)
        cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
        self.assertGreaterEqual(len(cells), 4)
        for c in cells:
            self.assertEqual(c["outputs"], [], "commit the notebook without outputs")
        os.environ["SFD_SOCKET"] = sfd.socket
        os.environ["SFD_EXAMPLE_MODEL"] = "tiny"
        namespace = {"display": print}
        for c in cells:
            exec(compile("".join(c["source"]), NOTEBOOK, "exec"), namespace)  # noqa: S102
        self.assertEqual(namespace["job"].state, pb.SUCCEEDED)
        self.assertEqual([r["step"] for r in namespace["records"]], list(range(1, 5)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
