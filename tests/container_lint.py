"""Lints for the container recipe (Dockerfile, .dockerignore, deploy/nginx.conf,
deploy/compose.yaml), read as text: no container engine, no YAML parser. Each lint returns
every way a file breaks the rules docs/teaching.md relies on (empty when it keeps them);
tests/test_container.py runs them on the real files and on broken copies.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

from cnnviz import limits

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NGINX = ROOT / "deploy" / "nginx.conf"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PORT = "8501"

# -- the Dockerfile --------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped (Docker
    drops comment lines inside a continuation too)."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        word, _, rest = whole.partition(" ")
        out.append((word.upper(), rest.strip()))
    if pending:
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _command(args: str) -> list[str]:
    """An instruction's command: the exec form (a JSON list) or the shell form's words."""
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)


def copy_paths(args: str) -> tuple[list[str], str]:
    words = [w for w in _command(args) if not w.startswith("--")]
    return words[:-1], words[-1]


def ignored(pattern_lines: list[str], path: str) -> bool:
    """Whether .dockerignore's patterns leave ``path`` (relative, no trailing slash) out."""
    out = False
    for raw in pattern_lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), pattern) or
                  fnmatch.fnmatch("/".join(parts[:i]), pattern.replace("**/", ""))
                  for i in range(1, len(parts) + 1))
        if hit:
            out = not keep
    return out


def cnnviz_settings() -> set[str]:
    """Every CNNVIZ_* environment variable the library reads."""
    found: set[str] = set()
    for source in (ROOT / "cnnviz").rglob("*.py"):
        found |= set(re.findall(r"CNNVIZ_[A-Z_]+", source.read_text()))
    return found


def lint_dockerfile(text: str, root: Path = ROOT, ignore: list[str] | None = None) -> list[str]:
    """Every way ``text`` breaks the recipe's rules (empty when it keeps them all)."""
    ignore = DOCKERIGNORE.read_text().splitlines() if ignore is None else ignore
    steps = instructions(text)
    names = [name for name, _ in steps]
    problems: list[str] = []
    froms = [args for name, args in steps if name == "FROM"]
    if froms != ["python:3.11-slim"]:
        problems.append(f"FROM: one stage from python:3.11-slim, not {froms}")
    copied: set[str] = set()
    user = "root"
    for i, (name, args) in enumerate(steps):
        if name in ("COPY", "ADD"):
            sources, _ = copy_paths(args)
            for source in sources:
                clean = source.rstrip("/")
                if clean.startswith("..") or clean.startswith("/"):
                    problems.append(f"COPY {source}: outside the build context")
                elif not (root / clean).exists():
                    problems.append(f"COPY {source}: no such file in the repository")
                elif ignored(ignore, clean):
                    problems.append(f"COPY {source}: .dockerignore leaves it out of the context")
                copied.add(clean)
        elif name == "RUN" and "pip install" in args:
            files = re.findall(r"(?:-r|--requirement)\s+(\S+)", args)
            if files != ["requirements.txt"]:
                problems.append(f"RUN pip install: installs {files or 'no file'}, not -r "
                                "requirements.txt")
            elif "requirements.txt" not in copied:
                problems.append("RUN pip install: requirements.txt is not copied before it")
            if re.search(r"--(extra-)?index-url|-i\s", args):
                problems.append("RUN pip install: torch must come from PyPI, as pinned")
            rest = re.sub(r"(?:-r|--requirement)\s+\S+|-\S+", " ", args.split("pip install", 1)[1])
            if rest.split("&&")[0].split():
                problems.append(f"RUN pip install: installs more than requirements.txt: {rest}")
        elif name == "USER":
            user = args.split(":")[0]
        elif name == "CMD":
            if user in ("root", "0"):
                problems.append("CMD: runs as root; a USER that is not root must come first")
    for needed in ("EXPOSE", "HEALTHCHECK", "CMD", "USER"):
        if needed not in names:
            problems.append(f"{needed}: missing")
    exposed = [args for name, args in steps if name == "EXPOSE"]
    if exposed and PORT not in " ".join(exposed).replace("/tcp", "").split():
        problems.append(f"EXPOSE: {exposed}, not {PORT}")
    for name, args in steps:
        if name == "HEALTHCHECK" and f":{PORT}/_stcore/health" not in args:
            problems.append(f"HEALTHCHECK: does not ask :{PORT}/_stcore/health")
        if name == "CMD":
            problems += _lint_cmd(_command(args), copied, root)
        if name == "ENV":
            for variable in re.findall(r"\b(CNNVIZ_[A-Z_]+)=", args):
                if variable not in cnnviz_settings():
                    problems.append(f"ENV {variable}: cnnviz reads no such variable "
                                    f"(the caps are {sorted(c.env for c in limits.CAPS.values())})")
    return problems


def _lint_cmd(cmd: list[str], copied: set[str], root: Path) -> list[str]:
    problems = []
    start = cmd[:2] if cmd[:1] == ["streamlit"] else cmd[2:4] if cmd[:3] == [
        "python", "-m", "streamlit"] else []
    if start[-1:] != ["run"] or len(cmd) <= cmd.index("run") + 1:
        return [f"CMD: {cmd} is not `streamlit run APP`"]
    app = cmd[cmd.index("run") + 1]
    if not (root / app).is_file():
        problems.append(f"CMD: {app} is not a file in the repository")
    if app not in copied:
        problems.append(f"CMD: {app} is not copied into the image")
    flags = " ".join(cmd).replace("=", " ").split()
    for flag, value in (("--server.address", "0.0.0.0"), ("--server.port", PORT)):
        given = flags[flags.index(flag) + 1] if flag in flags else None
        if given not in (value, None) or (flag == "--server.address" and given is None):
            problems.append(f"CMD: {flag} {given}, not {value}")
    return problems


# -- nginx -----------------------------------------------------------------------------------

def nginx_blocks(text: str) -> dict[str, list[str]]:
    """Each block's own directives ("http", "upstream cnnviz", "location /"…), comments
    dropped, one directive per entry without its semicolon; "" holds the top level."""
    blocks: dict[str, list[str]] = {"": []}
    stack = [""]
    body = re.sub(r"#[^\n]*", "", text)
    for token in re.findall(r"(?:\"[^\"]*\"|'[^']*'|[^;{}\"'])+[;{]|}", body):
        token = " ".join(token.split())
        if token == "}":
            stack.pop()
        elif token.endswith("{"):
            name = token[:-1].strip()
            stack.append(name)
            blocks.setdefault(name, [])
        else:
            blocks[stack[-1]].append(token[:-1].strip())
    return blocks


def lint_nginx(text: str) -> list[str]:
    """The sticky routing, the websocket's headers, the replicas and the upload limit."""
    blocks = nginx_blocks(text)
    problems = []
    upstreams = [name for name in blocks if name.startswith("upstream ")]
    if len(upstreams) != 1:
        return [f"one upstream block, not {upstreams}"]
    upstream = blocks[upstreams[0]]
    maps = {name.split()[2]: name.split()[1] for name in blocks if name.startswith("map ")}
    sticky = [d for d in upstream if d == "ip_hash" or re.fullmatch(r"hash \$\S+ consistent", d)]
    if not sticky:
        problems.append("upstream: no sticky directive (ip_hash or hash $… consistent)")
    elif sticky[0] != "ip_hash":
        key = sticky[0].split()[1]
        source = maps.get(key, key)
        if not source.startswith("$cookie_"):
            problems.append(f"upstream: hashes {key}, which comes from no cookie")
        else:
            cookie = source[len("$cookie_"):]
            sets = [d for b in blocks.values() for d in b
                    if d.startswith("add_header Set-Cookie") and f"{cookie}={key}" in d]
            if key != source and not sets:
                problems.append(f"no Set-Cookie gives the browser {cookie}")
    servers = [d.split()[1] for d in upstream if d.startswith("server ")]
    if len(servers) < 2 or any(not s.endswith(f":{PORT}") for s in servers):
        problems.append(f"upstream: servers {servers}, want two or more on :{PORT}")
    stream = blocks.get("location /_stcore/stream", [])
    for needed in ("proxy_http_version 1.1", "proxy_set_header Upgrade $http_upgrade",
                   "proxy_set_header Host $http_host"):
        if needed not in stream:
            problems.append(f"location /_stcore/stream: no `{needed}`")
    if not any(re.fullmatch(r"proxy_set_header Connection (\"upgrade\"|\$connection_upgrade)",
                            d) for d in stream):
        problems.append("location /_stcore/stream: no `proxy_set_header Connection upgrade`")
    if not any(d.startswith("proxy_pass http://") for d in stream):
        problems.append("location /_stcore/stream: no proxy_pass")
    bodies = [megabytes(d.split()[1]) for b in blocks.values() for d in b
              if d.startswith("client_max_body_size ")]
    weights = limits.CAPS["weights_mb"].default
    if not bodies or bodies[0] < weights:
        problems.append(f"client_max_body_size {bodies}: under the weights cap, {weights:g} MB")
    return problems


def megabytes(size: str) -> float:
    """nginx's size ("600m", "1g", "512k", bytes) in MB."""
    scale = {"k": 1 / 1024, "m": 1, "g": 1024}.get(size[-1].lower())
    return float(size[:-1]) * scale if scale else float(size) / 2**20


def local_nginx(tmp: Path, replicas: list[str], listen: str) -> Path:
    """deploy/nginx.conf for this machine: the replicas' addresses for compose's names, a
    local port, nginx's files under ``tmp``, and a log of which replica served each request
    for which browser (its replica cookie)."""
    text = NGINX.read_text()
    servers = "".join(f"        server {address};\n" for address in replicas)
    text = re.sub(r"(        server app-gpu\d+:8501;\n)+", servers, text)
    files = "".join(f"    {kind}_temp_path {tmp}/{kind};\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", "http {\n" + files +
                        f"    log_format route '$cnnviz_replica $upstream_addr $status "
                        f"$request_method $uri';\n    access_log {tmp}/route.log route;\n", 1)
    conf = tmp / "nginx.conf"
    conf.write_text(text.replace("listen 80;", f"listen {listen};"))
    return conf


def nginx_command(conf: Path, *args: str) -> list[str]:
    """nginx on ``conf`` with its pid and error log beside it; in the foreground unless
    ``args`` (such as ``-t``) make it a one-off."""
    where = conf.parent
    return ["nginx", "-p", str(where), "-c", str(conf), "-g",
            f"pid {where}/nginx.pid; error_log {where}/error.log;" +
            (" daemon off;" if not args else ""), *args]


def routes(log: Path) -> dict[str, set[str]]:
    """Which replicas served each browser (by its replica id), from the route log."""
    served: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        browser_id, upstream, *_ = line.split()
        served.setdefault(browser_id, set()).add(upstream)
    return served


# -- compose ---------------------------------------------------------------------------------

def compose_services(text: str) -> dict[str, dict]:
    """Per service under ``services:``: its ``image``, GPU ``device_ids``, whether it merges
    the shared replica block (``<<: *…``), and the CNNVIZ_ variables set anywhere."""
    services: dict[str, dict] = {}
    section = service = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            section, service = stripped.split(":")[0], None
            continue
        if section == "services" and indent == 2 and stripped.endswith(":"):
            service = stripped[:-1]
            services[service] = {"image": None, "gpus": [], "merges": None}
            continue
        if section != "services" or service is None:
            continue
        entry = services[service]
        key, _, value = stripped.partition(":")
        value = value.strip()
        if key == "image":
            entry["image"] = value
        elif key == "device_ids":
            entry["gpus"] += json.loads(value)
        elif key == "<<":
            entry["merges"] = value
    return services


def lint_compose(text: str) -> list[str]:
    """Two or more replicas of one image, one GPU each, nginx's upstream, known caps."""
    services = compose_services(text)
    replicas = {name: s for name, s in services.items() if s["gpus"]}
    problems = []
    if len(replicas) < 2:
        problems.append(f"fewer than two replicas with a GPU: {sorted(replicas)}")
    gpus = [g for s in replicas.values() for g in s["gpus"]]
    if len(gpus) != len(set(gpus)) or any(len(s["gpus"]) != 1 for s in replicas.values()):
        problems.append(f"replicas must each have one GPU of their own: {gpus}")
    images = {s["image"] for s in replicas.values()}
    if len(images) != 1 or None in images:
        problems.append(f"replicas must run the same image: {images}")
    upstream = nginx_blocks(NGINX.read_text())["upstream cnnviz"]
    servers = {d.split()[1].split(":")[0] for d in upstream if d.startswith("server ")}
    if servers != set(replicas):
        problems.append(f"nginx's upstream {sorted(servers)} is not the replicas "
                        f"{sorted(replicas)}")
    if "./nginx.conf:/etc/nginx/nginx.conf" not in text:
        problems.append("the balancer does not mount ./nginx.conf")
    caps = {c.env for c in limits.CAPS.values()}
    for variable in re.findall(r"^\s+(CNNVIZ_[A-Z_]+):", text, re.M):
        if variable not in caps | cnnviz_settings():
            problems.append(f"{variable}: cnnviz reads no such variable")
    return problems
