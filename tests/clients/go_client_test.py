"""The Go client's example command (bin/sfd-go, client/go) against a live sfd.

submit --follow trains a tiny job to SUCCEEDED printing every event; follow replays a finished
job; the daemon's refusals come back with its status code and message (exit 1); usage errors
exit 2. Run by CTest with /usr/bin/python3 (the harness only starts sfd).
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_sfd  # noqa: E402

SFD_GO = os.path.join(live_sfd.BIN_DIR, "sfd-go")
sfd = None


def setUpModule():
    global sfd
    for binary in (SFD_GO, os.path.join(live_sfd.BIN_DIR, "sfd-worker")):
        if not os.path.exists(binary):
            raise RuntimeError(binary + " not built")
    sfd = live_sfd.LiveSfd()
    sfd.make_tiny_model()
    sfd.start()


def tearDownModule():
    if sfd is not None:
        sfd.stop()


def sfd_go(*args, timeout=300):
    return subprocess.run([SFD_GO, "--socket=" + sfd.socket, *args], capture_output=True,
                          text=True, timeout=timeout)


def job_file(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=sfd.dir, delete=False)
    f.write(text)
    f.close()
    return f.name


class GoClientTest(unittest.TestCase):
    def test_submit_follow_to_succeeded_then_replay(self):
        p = sfd_go("submit", job_file(live_sfd.tiny_job(3, eval_every=3, name="go")), "--follow")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        job_id = lines[0]
        self.assertRegex(job_id, r"^j-[0-9a-f]+$")
        seqs = [int(m.group(1)) for m in (re.match(r"#(\d+) ", l) for l in lines[1:-1]) if m]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertIn("state QUEUED", p.stdout)
        self.assertIn("state RUNNING", p.stdout)
        self.assertIn("state SUCCEEDED", p.stdout)
        steps = re.findall(r"step (\d+)/3 loss ([0-9.]+)", p.stdout)
        self.assertEqual([s for s, _ in steps], ["1", "2", "3"])
        self.assertTrue(all(float(loss) > 0 for _, loss in steps))
        self.assertRegex(p.stdout, r"eval step 3 loss [0-9.]+")
        self.assertRegex(lines[-1], r"^job %s SUCCEEDED; final model in /" % job_id)

        replay = sfd_go("follow", job_id)
        self.assertEqual(replay.returncode, 0, replay.stderr)
        self.assertEqual(replay.stdout.splitlines(), lines[1:])

        got = sfd_go("get", job_id)
        self.assertEqual(got.returncode, 0, got.stderr)
        self.assertRegex(got.stdout, r'"state":\s+"SUCCEEDED"')
        self.assertRegex(got.stdout, r'"final_model_dir":\s+"/')

    def test_server_refusals_carry_code_and_message(self):
        bad = job_file(live_sfd.tiny_job(3).replace("lr: 3.0e-3", "lr: -1"))
        p = sfd_go("submit", bad)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr, r"^sfd-go: INVALID_ARGUMENT: training\.optimizer\.lr")

        p = sfd_go("get", "j-doesnotexist")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"NOT_FOUND: .*j-doesnotexist")

        p = subprocess.run([SFD_GO, "--socket=" + os.path.join(sfd.dir, "none.sock"), "get", "x"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("UNAVAILABLE", p.stderr)

    def test_usage_errors_exit_2(self):
        for args in ([], ["submit"], ["frobnicate", "x"]):
            with self.subTest(args=args):
                p = sfd_go(*args)
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertIn("usage: sfd-go", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
