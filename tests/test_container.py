"""The container recipe: Dockerfile, .dockerignore and deploy/ (nginx and compose).

There is no container engine in CI, so the files are linted by reading them
(tests/container_lint.py): the rules a teacher relies on — the image runs the app as a user who
is not root, installs requirements.txt, serves port 8501 with a health check; the load
balancer keeps a browser on one replica and passes its websocket through; each replica has its
own GPU. Each lint rule is shown to catch the mistake it is for, on a broken copy. The image's
files are put together as its COPY lines say, and the app runs from them alone. Where nginx is
installed, two replicas run behind it; where ``docker info`` answers, the image is built too.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from cnnviz import limits
from cnnviz.presets import PRESETS
from cnnviz.specs import spec_to_json
from tests.browser import VIEWPORT, expect, settle, streamlit_server
from tests.container_lint import (COMPOSE, DOCKERFILE, DOCKERIGNORE, NGINX, ROOT,
                                  compose_services, copy_paths, ignored, instructions,
                                  lint_compose, lint_dockerfile, lint_nginx, local_nginx,
                                  nginx_command, routes)


# -- the Dockerfile --------------------------------------------------------------------------

def test_the_dockerfile_keeps_every_rule():
    assert lint_dockerfile(DOCKERFILE.read_text()) == []



BROKEN = {  # a mistake -> (the line it changes, its replacement, what the lint must say)
    "runs as root": ("USER cnnviz", "USER root", "runs as root"),
    "no user": ("USER cnnviz", "", "USER: missing"),
    "a missing file": ("COPY pages/ pages/", "COPY pagez/ pages/", "COPY pagez/: no such file"),
    "an ignored file": ("COPY pages/ pages/", "COPY tests/ tests/", "COPY tests/: .dockerignore"),
    "dev requirements": ("pip install -r requirements.txt",
                         "pip install -r requirements-dev.txt", "requirements-dev.txt"),
    "a CPU-only index": ("pip install -r requirements.txt",
                         "pip install -r requirements.txt --index-url https://example.org/cpu",
                         "from PyPI"),
    "another package": ("pip install -r requirements.txt",
                        "pip install -r requirements.txt jupyter", "more than requirements"),
    "no exposed port": ("EXPOSE 8501", "", "EXPOSE: missing"),
    "another port": ("EXPOSE 8501", "EXPOSE 8000", "EXPOSE: ['8000']"),
    "no health check": ("HEALTHCHECK", "LABEL", "HEALTHCHECK: missing"),
    "a missing app": ('"streamlit_app.py"', '"app.py"', "app.py is not a file"),
    "localhost only": ('"--server.address", "0.0.0.0"', '"--server.address", "127.0.0.1"',
                       "--server.address 127.0.0.1"),
    "a misspelt cap": ("CNNVIZ_DATA=/data", "CNNVIZ_DATA=/data CNNVIZ_MAX_EPOCH=5",
                       "CNNVIZ_MAX_EPOCH"),
    "another base": ("FROM python:3.11-slim", "FROM python:3.12", "FROM"),
}



NGINX_BROKEN = {
    "round robin": ("hash $cnnviz_replica consistent;", "", "no sticky directive"),
    "a hash of no cookie": ("hash $cnnviz_replica consistent;", "hash $remote_port consistent;",
                            "from no cookie"),
    "no cookie set": ("add_header Set-Cookie", "add_header X-Replica", "no Set-Cookie"),
    "no upgrade": ("proxy_set_header Upgrade $http_upgrade;", "", "Upgrade"),
    "HTTP/1.0": ("proxy_http_version 1.1;\n            proxy_set_header Upgrade",
                 "proxy_set_header Upgrade", "proxy_http_version"),
    "the wrong host": ("proxy_set_header Host $http_host;\n            proxy_read",
                       "proxy_set_header Host $host;\n            proxy_read", "Host $http_host"),
    "one replica": ("server app-gpu1:8501;", "", "want two or more"),
    "small uploads": ("client_max_body_size 600m;", "client_max_body_size 1m;",
                      "under the weights cap"),
}


COMPOSE_BROKEN = {
    "one GPU for both": ('device_ids: ["1"]', 'device_ids: ["0"]', "one GPU of their own"),
    "two images": ("image: cnnviz:latest\n    volumes:\n      - data-gpu1",
                   "image: cnnviz:old\n    volumes:\n      - data-gpu1", "same image"),
    "a misspelt cap": ('CNNVIZ_MAX_EPOCHS: "50"', 'CNNVIZ_MAX_EPOCH: "50"', "CNNVIZ_MAX_EPOCH"),
    "no balancer config": ("./nginx.conf:/etc/nginx/nginx.conf", "./other.conf:/etc/nginx/x",
                           "does not mount"),
}

# Every lint rule catches its mistake: (the file, its lint, the mistakes) where a mistake is
# (the text it changes, its replacement, what the lint must say).
MISTAKES = {"Dockerfile": (DOCKERFILE, lint_dockerfile, BROKEN),
            "nginx.conf": (NGINX, lint_nginx, NGINX_BROKEN),
            "compose.yaml": (COMPOSE, lint_compose, COMPOSE_BROKEN)}


@pytest.mark.parametrize("where, mistake", [(where, mistake)
                                            for where, (_, _, table) in MISTAKES.items()
                                            for mistake in sorted(table)])
def test_the_lint_catches(where, mistake):
    path, lint, table = MISTAKES[where]
    old, new, said = table[mistake]
    text = path.read_text()
    assert old in text, f"{where} no longer has {old!r}: update the mistakes"
    problems = lint(text.replace(old, new))
    assert any(said in p for p in problems), problems


def test_a_cap_the_image_sets_is_one_the_app_reads():
    text = DOCKERFILE.read_text() + "\nENV CNNVIZ_MAX_EPOCHS=20 CNNVIZ_ABANDON_SECONDS=30\n"
    assert lint_dockerfile(text) == []
    assert {"CNNVIZ_MAX_EPOCHS", "CNNVIZ_ABANDON_SECONDS"} <= {c.env for c in
                                                               limits.CAPS.values()}


def test_dockerignore_keeps_local_state_and_tests_out():
    patterns = DOCKERIGNORE.read_text().splitlines()
    for path in (".git", ".venv", "tests", "docs/img", "benchmarks", ".hypothesis",
                 "cnnviz/__pycache__"):
        assert ignored(patterns, path), path
    for path in ("cnnviz", "cnnviz/ui/state.py", "pages", "streamlit_app.py", "requirements.txt",
                 ".streamlit/config.toml"):
        assert not ignored(patterns, path), path


def _image_files(tmp: Path) -> Path:
    """The image's /app as the Dockerfile's COPY lines put it together (after WORKDIR)."""
    workdir = tmp / "app"
    workdir.mkdir()
    patterns = DOCKERIGNORE.read_text().splitlines()
    for name, args in instructions(DOCKERFILE.read_text()):
        if name != "COPY":
            continue
        sources, dest = copy_paths(args)
        for source in sources:
            src = ROOT / source.rstrip("/")
            target = workdir / dest if dest not in ("./", ".") else workdir
            if src.is_dir():
                shutil.copytree(src, workdir / dest.rstrip("/"), dirs_exist_ok=True,
                                ignore=lambda d, names: [n for n in names if ignored(
                                    patterns, str((Path(d) / n).relative_to(ROOT)))])
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)
    return workdir


PAGES_SCRIPT = textwrap.dedent("""
    import sys
    import cnnviz
    from streamlit.testing.v1 import AppTest
    assert cnnviz.__file__.startswith(sys.argv[1]), cnnviz.__file__  # the image's copy
    at = AppTest.from_file(sys.argv[1] + "/streamlit_app.py", default_timeout=240)
    at.query_params["preset"] = "lenet-bn"
    at.run()
    shown = []
    for page in ("home", "build", "sizes", "train", "maps", "graph", "batchnorm"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        shown.append(at.title[0].value)
    print(" | ".join(shown))
""")


def test_the_app_runs_from_the_files_the_image_copies(tmp_path):
    """Nothing the app needs is left out of the image: every page opens from the copied files
    alone (with the repository's packages, as requirements.txt installs them)."""
    app = _image_files(tmp_path)
    assert not (app / "tests").exists() and not (app / "docs").exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CNNVIZ_DATA"] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, "-c", PAGES_SCRIPT, str(app)], cwd=app, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == ("cnnviz — the classic CNNs of *Dive into Deep "
                                           "Learning* | Build | Input size | Train | "
                                           "Feature maps | Connections | BatchNorm")


def _docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _docker_ready(), reason="no container engine answers `docker info` "
                                                "(CI has none; the lint above still runs)")
def test_the_image_builds_and_runs_as_a_user_who_is_not_root():
    tag = "cnnviz-test:latest"
    built = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True,
                           text=True, timeout=3600)
    assert built.returncode == 0, built.stderr[-3000:]
    ran = subprocess.run(["docker", "run", "--rm", tag, "python", "-c",
                          "import os, cnnviz.limits, streamlit, torch; print(os.getuid())"],
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() != "0"


# -- nginx -----------------------------------------------------------------------------------

def test_nginx_keeps_a_browser_on_one_replica_and_passes_its_websocket():
    assert lint_nginx(NGINX.read_text()) == []


def test_ip_hash_is_sticky_too():
    text = NGINX.read_text().replace("hash $cnnviz_replica consistent;", "ip_hash;")
    assert lint_nginx(text) == []


NO_NGINX = pytest.mark.skipif(shutil.which("nginx") is None,
                              reason="nginx is not installed here")


@NO_NGINX
def test_nginx_itself_accepts_the_configuration(tmp_path):
    conf = local_nginx(tmp_path, ["127.0.0.1:18501", "127.0.0.1:18502"], "127.0.0.1:18080")
    checked = subprocess.run(nginx_command(conf, "-t"), capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@NO_NGINX
def test_through_nginx_each_browser_keeps_its_replica_and_its_session(tmp_path, browser):
    """Two app replicas behind deploy/nginx.conf: the app draws and answers through the
    proxy (its websocket passes), an upload reaches the replica that holds the session, every
    request of a browser goes to one replica, and browsers are spread over both."""
    with streamlit_server() as first, streamlit_server() as second:
        replicas = [first.removeprefix("http://"), second.removeprefix("http://")]
        port = _free_port()
        conf = local_nginx(tmp_path, replicas, f"127.0.0.1:{port}")
        proxy = subprocess.Popen(nginx_command(conf), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/_stcore/health", timeout=2).read()
                    break
                except OSError:
                    assert proxy.poll() is None and time.monotonic() < deadline, \
                        proxy.stderr.read().decode()
                    time.sleep(0.2)
            # The same replica id always lands on the same replica, and ids spread over both.
            for i in range(16):
                request = urllib.request.Request(url + "/_stcore/health",
                                                 headers={"Cookie": f"cnnviz_replica=id{i}"})
                urllib.request.urlopen(request, timeout=10).read()
            ids = {f"id{i}" for i in range(16)}
            fixed = {k: v for k, v in routes(tmp_path / "route.log").items() if k in ids}
            assert all(len(v) == 1 for v in fixed.values()), fixed
            assert set().union(*fixed.values()) == set(replicas), fixed

            for student in range(2):
                context = browser.new_context(viewport=VIEWPORT)
                context.set_default_timeout(60_000)
                page = context.new_page()
                page.goto(url + "/build?preset=lenet")
                page.locator('[data-testid="stMain"] h1').first.wait_for()
                settle(page)
                cookie = {c["name"]: c["value"] for c in context.cookies()}["cnnviz_replica"]
                page.get_by_role("tab", name="Export").click()
                settle(page)
                spec = PRESETS["densenet"].spec
                page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                    files={"name": f"student{student}.json", "mimeType": "application/json",
                           "buffer": spec_to_json(spec).encode()})
                expect(page.locator('[data-testid="stMain"]')).to_contain_text(
                    f"Opened student{student}.json.")
                expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("densenet")
                assert page.locator('[data-testid="stException"]').count() == 0
                context.close()
                served = routes(tmp_path / "route.log")[cookie]
                assert len(served) == 1, (cookie, served)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)


# -- compose ---------------------------------------------------------------------------------

def test_compose_runs_replicas_of_one_image_each_on_its_own_gpu():
    assert lint_compose(COMPOSE.read_text()) == []
    services = compose_services(COMPOSE.read_text())
    assert {n: s["gpus"] for n, s in services.items() if s["gpus"]} == {
        "app-gpu0": ["0"], "app-gpu1": ["1"]}


