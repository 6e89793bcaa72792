"""A live sfd training a tiny job, scraped every second by Debian's Prometheus.

Checks: `promtool check metrics` is clean on a scrape; Prometheus's HTTP API returns every
expected sfd series (with job_id, without job/instance labels of sfd's own); every PromQL
expression of the Grafana dashboard (deploy/grafana/dashboards/sfd.json) evaluates without an
error and with a non-empty result; the job's series disappear when it ends.
Everything listens on 127.0.0.1; every wait is bounded; all processes are killed at the end.
Run by CTest with /usr/bin/python3 (SFD_SOURCE_DIR, SFD_BINARY_DIR in the environment).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients"))
import live_sfd  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
DASHBOARD = os.path.join(live_sfd.SOURCE_DIR, "deploy/grafana/dashboards/sfd.json")

sfd = None
prom = None
prom_dir = None
prom_url = None
job_id = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def query(expr):
    """Instant query; returns Prometheus's JSON answer (status, data.result)."""
    url = prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(http_get(url))
    except urllib.error.HTTPError as e:  # 400 = bad expression: the body says why
        return json.loads(e.read().decode())


def result(expr):
    answer = query(expr)
    if answer.get("status") != "success":
        raise AssertionError("query %s: %s" % (expr, answer))
    return answer["data"]["result"]


def setUpModule():
    global sfd, prom, prom_dir, prom_url, job_id
    for tool in (PROMETHEUS, PROMTOOL):
        if not os.path.exists(tool):
            raise RuntimeError("%s missing: run deploy/install-deps.sh (package prometheus)" % tool)
    if not live_sfd.worker_built():
        raise RuntimeError("sfd-worker not built in " + live_sfd.BIN_DIR)
    sfd = live_sfd.LiveSfd()
    sfd.make_tiny_model()
    sfd.start()
    assert sfd.metrics_url, "sfd printed no metrics address:\n" + sfd.log()
    target = urllib.parse.urlparse(sfd.metrics_url).netloc

    prom_dir = tempfile.mkdtemp(prefix="sfd_prom_")
    with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: sfd\n    static_configs:\n"
                "      - targets: ['%s']\n" % target)
    port = free_port()
    prom_url = "http://127.0.0.1:%d" % port
    log = open(os.path.join(prom_dir, "prometheus.log"), "w")
    prom = subprocess.Popen(
        [PROMETHEUS, "--config.file=" + os.path.join(prom_dir, "prometheus.yml"),
         "--storage.tsdb.path=" + os.path.join(prom_dir, "data"),
         "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    live_sfd.wait_for(lambda: http_get(prom_url + "/-/ready", timeout=2), 60, "Prometheus ready")

    # A job long enough to still run after every check; evals and checkpoints every 2 steps.
    from sfd_client import Client
    client = Client(socket=sfd.socket)
    job = client.submit(live_sfd.tiny_job(
        1000, eval_every=2, name="prom",
        extra="checkpoint: {every_steps: 2, keep_last: 1}\n"))
    job_id = job.id

    def progressed():
        steps = result('sfd_job_steps_total{job_id="%s"}' % job_id)
        evals = result('sfd_job_eval_loss{job_id="%s"}' % job_id)
        # Enough samples for every rate() over the 10 s windows of the dashboard test.
        window = result('count_over_time(sfd_job_steps_total{job_id="%s"}[10s])' % job_id)
        return (steps and float(steps[0]["value"][1]) >= 4 and evals and window
                and float(window[0]["value"][1]) >= 5)
    live_sfd.wait_for(progressed, 150, "4 steps and an eval of job %s in Prometheus" % job_id,
                      interval=0.5)
    client.close()


def tearDownModule():
    if prom is not None and prom.poll() is None:
        prom.kill()
        prom.wait(timeout=30)
    if sfd is not None:
        sfd.stop()
    if prom_dir and not os.environ.get("SFD_E2E_KEEP"):
        shutil.rmtree(prom_dir, ignore_errors=True)


# Every sfd series a running job must have in Prometheus (job_id added below).
JOB_SERIES = [
    "sfd_job_steps_total", "sfd_job_tokens_total", "sfd_job_target_tokens_total",
    "sfd_job_model_flops_total", "sfd_job_step", "sfd_job_total_steps", "sfd_job_attempt",
    "sfd_job_loss", "sfd_job_eval_loss", "sfd_job_learning_rate", "sfd_job_grad_norm",
    "sfd_job_tokens_per_second", "sfd_job_model_flops_per_second",
    "sfd_job_resident_memory_bytes", "sfd_job_gpu_reserved_bytes", "sfd_job_checkpoints_total",
    "sfd_job_device_update_layers", "sfd_job_optimizer_busy_seconds_total",
    "sfd_job_step_duration_seconds_bucket", "sfd_job_step_duration_seconds_count",
    "sfd_job_step_duration_seconds_sum",
]
# Series with a second label: every value must be present.
LABELLED = {
    "sfd_job_transfer_bytes_total": ("direction", {"h2d", "d2h", "nvme"}),
    "sfd_job_stall_seconds_total": ("cause", {"weights", "optimizer", "activations"}),
    "sfd_job_phase_seconds_total": ("phase", {"forward", "backward", "optimizer"}),
    "sfd_job_memory_bytes": ("tier", {"gpu", "pinned_host", "host", "nvme"}),
    "sfd_job_planned_memory_bytes": ("tier", {"gpu", "pinned_host", "host", "nvme"}),
}


def mapped_libraries(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {line.split()[-1] for line in f if "/" in line}


class PrometheusTest(unittest.TestCase):
    def test_0_metrics_come_from_the_torch_free_daemon(self):
        # civetweb cannot start its threads in a process that loaded torch 2.11: the endpoint
        # lives in sfd, which maps no torch library, and is fed by the worker, which does.
        libs = mapped_libraries(sfd.proc.pid)
        self.assertFalse([l for l in libs if re.search(r"lib(torch|c10)", l)], libs)
        children = []  # forked by the scheduler thread: look at every thread's children
        for task in os.listdir("/proc/%d/task" % sfd.proc.pid):
            with open("/proc/%d/task/%s/children" % (sfd.proc.pid, task)) as f:
                children += [int(p) for p in f.read().split()]
        workers = [p for p in children if open("/proc/%d/comm" % p).read().strip() == "sfd-worker"]
        self.assertEqual(len(workers), 1, children)
        self.assertTrue([l for l in mapped_libraries(workers[0]) if "libtorch" in l])

    def test_1_promtool_check_metrics_is_clean(self):
        text = http_get(sfd.metrics_url)
        self.assertIn('job_id="%s"' % job_id, text)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual((p.stdout + p.stderr).strip(), "")

    def test_2_expected_series_in_prometheus(self):
        self.assertEqual(float(result('up{job="sfd"}')[0]["value"][1]), 1)
        info = result("sfd_build_info")
        self.assertEqual(len(info), 1)
        self.assertTrue(info[0]["metric"]["version"])
        self.assertTrue(info[0]["metric"]["grpc_version"])
        running = result('sfd_jobs{state="running"}')
        self.assertEqual(float(running[0]["value"][1]), 1)
        self.assertEqual(len(result("sfd_jobs")), 5)
        self.assertEqual(float(result("sfd_queue_depth")[0]["value"][1]), 0)
        self.assertEqual(len(result("sfd_worker_exits_total")), 2)
        for name in JOB_SERIES:
            with self.subTest(series=name):
                self.assertTrue(result('%s{job_id="%s"}' % (name, job_id)), name)
        for name, (label, values) in LABELLED.items():
            with self.subTest(series=name):
                got = {r["metric"][label] for r in result('%s{job_id="%s"}' % (name, job_id))}
                self.assertEqual(got, values, name)
        # Values that must be positive while a job trains.
        for expr in ("sfd_job_loss", "sfd_job_learning_rate", "sfd_job_tokens_total",
                     "sfd_job_tokens_per_second", "sfd_job_model_flops_per_second",
                     "sfd_job_resident_memory_bytes", 'sfd_job_memory_bytes{tier="host"}',
                     "sfd_job_step_duration_seconds_count", "sfd_job_eval_loss"):
            with self.subTest(positive=expr):
                r = result(expr)
                self.assertTrue(r and float(r[0]["value"][1]) > 0, (expr, r))
        self.assertEqual(float(result("sfd_job_total_steps")[0]["value"][1]), 1000)
        # sfd's own series never carry job/instance (Prometheus would rename them exported_*).
        self.assertEqual(result('{__name__=~"sfd_.+", exported_job!=""}'), [])
        self.assertEqual(result('{__name__=~"sfd_.+", exported_instance!=""}'), [])
        # Every sfd metric name follows the rules: counters end in _total, units are base units.
        meta = json.loads(http_get(prom_url + "/api/v1/metadata"))["data"]
        names = [n for n in meta if n.startswith("sfd_")]
        self.assertGreaterEqual(len(names), 26, names)
        for n in names:
            kind = meta[n][0]["type"]
            self.assertEqual(kind == "counter", n.endswith("_total"), (n, kind))
            self.assertIsNone(re.search(r"(milli|micro|kilo|mega|giga|_ms$|_mb$|_gb$)", n), n)

    def test_3_every_dashboard_query_has_data(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        self.assertEqual(variables["job_id"]["type"], "query")
        jobs_query = variables["job_id"]["query"]["query"]
        m = re.fullmatch(r"label_values\((\w+), job_id\)", jobs_query)
        self.assertIsNotNone(m, jobs_query)
        self.assertIn(job_id, {r["metric"]["job_id"] for r in result(m.group(1))})

        panels = []
        for p in dash["panels"]:
            panels.append(p)
            panels.extend(p.get("panels", []))
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        exprs = 0
        for p in panels:
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                # As Grafana interpolates a regex variable: metacharacters escaped for PromQL.
                value = re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", job_id)
                expr = (t["expr"].replace("$__rate_interval", "10s")
                        .replace("${job_id}", value).replace("$job_id", value))
                self.assertNotIn("$", expr, "unknown variable in %r" % t["expr"])
                with self.subTest(panel=p["title"], expr=expr):
                    answer = query(expr)
                    self.assertEqual(answer.get("status"), "success", answer)
                    self.assertTrue(answer["data"]["result"], "empty result")
                exprs += 1
        self.assertGreaterEqual(exprs, 20)

    def test_4_series_removed_when_the_job_ends(self):
        from sfd_client import Client
        with Client(socket=sfd.socket) as client:
            client.cancel(job_id, checkpoint=False)
            live_sfd.wait_for(lambda: client.get(job_id).state == live_sfd_state("CANCELLED"),
                              60, "job cancelled")
        text = http_get(sfd.metrics_url)
        self.assertNotIn('job_id="%s"' % job_id, text)
        self.assertIn('sfd_jobs{state="cancelled"} 1', text)
        self.assertIn('sfd_jobs{state="running"} 0', text)
        self.assertIn('sfd_worker_exits_total{outcome="exited"} 1', text)


def live_sfd_state(name):
    from sfd_client import pb
    return pb.JobState.Value(name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
