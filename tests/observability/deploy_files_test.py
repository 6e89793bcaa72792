"""deploy/ files for running sfd as a service: the systemd unit passes `systemd-analyze verify`
(with ExecStart pointed at the built sfd), deploy/prometheus.yml passes `promtool check config`
and scrapes sfd's default metrics address, the Grafana provisioning files name the dashboard
folder and a Prometheus data source. Run by CTest with /usr/bin/python3.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import yaml

SOURCE_DIR = os.environ["SFD_SOURCE_DIR"]
BIN_DIR = os.path.join(os.environ["SFD_BINARY_DIR"], "bin")
DEPLOY = os.path.join(SOURCE_DIR, "deploy")


class DeployFilesTest(unittest.TestCase):
    def test_systemd_unit_verifies(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        with open(os.path.join(DEPLOY, "sfd.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/local/bin/sfd --config=/etc/sfd/sfd.yaml", unit)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sfd.service")
            with open(path, "w") as f:
                f.write(unit.replace("/usr/local/bin/sfd", os.path.join(BIN_DIR, "sfd")))
            p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertNotIn("sfd.service", p.stdout + p.stderr)

    def test_prometheus_config_is_valid_and_scrapes_the_default_address(self):
        path = os.path.join(DEPLOY, "prometheus.yml")
        p = subprocess.run(["promtool", "check", "config", path], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(path) as f:
            config = yaml.safe_load(f)
        targets = [t for job in config["scrape_configs"] for sc in job["static_configs"]
                   for t in sc["targets"]]
        self.assertIn("127.0.0.1:9464", targets)  # kDefaultMetricsAddress in server/config.h
        with open(os.path.join(SOURCE_DIR, "server/config.h")) as f:
            self.assertIn('kDefaultMetricsAddress[] = "127.0.0.1:9464"', f.read())

    def test_grafana_provisioning(self):
        base = os.path.join(DEPLOY, "grafana", "provisioning")
        with open(os.path.join(base, "datasources", "sfd.yaml")) as f:
            ds = yaml.safe_load(f)
        self.assertEqual(ds["apiVersion"], 1)
        self.assertEqual([d["type"] for d in ds["datasources"]], ["prometheus"])
        with open(os.path.join(base, "dashboards", "sfd.yaml")) as f:
            dash = yaml.safe_load(f)
        providers = dash["providers"]
        self.assertEqual(len(providers), 1)
        self.assertEqual(providers[0]["type"], "file")
        self.assertTrue(providers[0]["options"]["path"].startswith("/"))
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, "grafana", "dashboards", "sfd.json")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
