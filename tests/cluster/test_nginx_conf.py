"""deploy/nginx.conf.template: one template, rendered for production and for the local cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.cluster import Cluster, ClusterConfig
from deploy.nginx import EXAMPLES, docker_nginx_conf, production_nginx_conf
from tests.conftest import require

from .conftest import nginx_available


def nginx_accepts(conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    assert nginx is not None
    return subprocess.run(
        [nginx, "-t", "-p", f"{prefix}/", "-c", str(conf), "-e", str(prefix / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_example_nginx_confs_are_the_template_rendered():
    for path, render in EXAMPLES.items():
        assert path.read_text() == render(), (
            f"deploy/{path.name} is out of date: run `python -m deploy.cluster render-example`"
        )


def test_the_production_rendering_keeps_tls_and_the_local_one_drops_it(tmp_path):
    production = production_nginx_conf()
    local = Cluster(ClusterConfig(workers=2, run_dir=tmp_path)).nginx_conf()
    for conf in (production, docker_nginx_conf(), local):
        assert "map $http_upgrade $connection_upgrade" in conf
        assert "proxy_set_header Connection $connection_upgrade;" in conf
        assert "proxy_next_upstream error timeout;" in conf
        assert "proxy_read_timeout 90s;" in conf
        assert "{{" not in conf
        directives = [line.split()[0] for line in conf.splitlines() if line.strip()]
        assert not {"ip_hash", "hash", "sticky"} & set(directives), "no sticky sessions"
    assert "ssl_certificate " in production and "return 301 https://" in production
    assert "ssl_certificate" not in local and "X-Chatsite-Upstream" not in production
    assert local.count("max_fails=") == 2 and "127.0.0.1:8102" in local


@pytest.mark.nginx
def test_nginx_accepts_both_renderings(tmp_path):
    require("nginx", nginx_available(), "no nginx binary on PATH or in /usr/sbin")
    require("openssl", shutil.which("openssl") is not None, "no openssl for a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=chat.example.com", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
    )
    production = tmp_path / "production.conf"
    production.write_text(
        production_nginx_conf(
            pid_file=str(tmp_path / "nginx.pid"),
            error_log=str(tmp_path / "error.log"),
            access_log=str(tmp_path / "access.log"),
            static_root=str(tmp_path),
            ssl_certificate=str(cert),
            ssl_certificate_key=str(key),
        )
    )
    checked = nginx_accepts(production, tmp_path)
    assert checked.returncode == 0, checked.stderr

    cluster = Cluster(ClusterConfig(workers=3, run_dir=tmp_path / "run"))
    (tmp_path / "run" / "logs").mkdir(parents=True)
    local = tmp_path / "local.conf"
    local.write_text(cluster.nginx_conf())
    checked = nginx_accepts(local, tmp_path)
    assert checked.returncode == 0, checked.stderr
