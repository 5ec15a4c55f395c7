#!/usr/bin/env python3
"""dstack-factory build script: one recipe -> every wheel of its closure (DESIGN.md, Decisions 2, 6, 7, 9).

The factory image runs it as its entrypoint (`docker-compose run --rm factory`, the seed's switches CEXT,
BUILD_REQ and RECIPE from the environment); the docker executor runs it with arguments in the same image;
the local executor runs it with a host interpreter. Standard library and the interpreter's own pip only.

Steps: (1) CEXT: prebuild the listed packages into the output, install them into a build venv;
(2) plan: `pip install --dry-run --ignore-installed --report` with the recipe's options and the wheelhouse as
--find-links; (3) wheels the wheelhouse already holds are cached, other wheels are downloaded
(`pip download --no-deps`), sources are built (`pip wheel --no-deps`, up to --jobs at once, one build of a
requirement at a time across processes through a lock file). Events go to stdout as JSON lines; wheels
reach the output directory only when complete.
"""

import argparse
import fcntl
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from urllib.request import url2pathname

TRUE = ("1", "true", "yes", "on")
DEFAULT_PREBUILD = ["cython", "numpy"]
LOG_TAIL = 40

_out_lock = threading.Lock()


def emit(event, **fields):
    fields = dict(fields)
    fields["event"] = event
    line = json.dumps(fields, sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def canonicalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def env_flag(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in TRUE


class Acks:
    """The engine's answers on stdin. With --ack it answers each `built` event (once the wheel is ingested)
    with `ack N`; with --host-locks it answers each `lock` event with `granted N` once it holds the host's
    lock of that requirement (a container's lock dir would be a copy), having copied in any wheel of it the
    host's wheelhouse gained meanwhile."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.events = {}
        self.lock = threading.Lock()
        self.counter = 0
        self.closed = False
        if enabled:
            threading.Thread(target=self._read, daemon=True).start()

    def _slot(self, n):
        with self.lock:
            slot = self.events.setdefault(n, threading.Event())
            if self.closed:
                slot.set()
            return slot

    def _next(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def _read(self):
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("ack", "granted") and parts[1].isdigit():
                self._slot(int(parts[1])).set()
        # stdin closed: nobody will answer any more; release every waiter.
        with self.lock:
            self.closed = True
            for e in self.events.values():
                e.set()

    def built(self, **fields):
        n = self._next()
        emit("built", ack=n if self.enabled else None, **fields)
        if self.enabled:
            slot = self._slot(n)
            slot.wait()

    def host_lock(self, name, version):
        """Asks the host for the build lock of name-version; returns its number once granted."""
        n = self._next()
        emit("lock", lock=n, package=name, version=version)
        self._slot(n).wait()
        return n

    def host_unlock(self, n):
        emit("unlock", lock=n)


# ---- recipe options --------------------------------------------------------------------------------------

OPTION_RE = re.compile(
    r"^(-i|--index-url|--extra-index-url|-f|--find-links|--no-index|--pre|--no-binary|--only-binary|"
    r"--prefer-binary|--trusted-host)(?:[ =]+(.*))?$"
)
INCLUDE_RE = re.compile(r"^(-r|--requirement|-c|--constraint)[ =]+(.*)$")
VAR_RE = re.compile(r"\$\{([A-Z0-9_]+)\}")


def logical_lines(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"\\\r?\n", "", text)
    for raw in text.splitlines():
        line = re.sub(r"(^|\s+)#.*$", "", raw).strip()
        if line:
            yield VAR_RE.sub(lambda m: os.environ.get(m.group(1), m.group(0)), line)


def recipe_options(path, seen=None):
    """The global option lines of a recipe and its includes, find-links made absolute (pip resolves them
    relative to the file): the same index options for prebuilds, downloads and builds as for the plan."""
    seen = seen if seen is not None else set()
    path = os.path.abspath(path)
    if path in seen:
        return []
    seen.add(path)
    base = os.path.dirname(path)
    out = []
    for line in logical_lines(path):
        inc = INCLUDE_RE.match(line)
        if inc:
            target = inc.group(2).strip()
            if "://" not in target:
                out += recipe_options(os.path.join(base, target), seen)
            continue
        m = OPTION_RE.match(line)
        if not m:
            continue
        opt, value = m.group(1), (m.group(2) or "").strip()
        if opt in ("-f", "--find-links") and value and "://" not in value:
            candidate = os.path.join(base, value)
            if os.path.exists(candidate):
                value = os.path.abspath(candidate)
        out.append(opt + (" " + value if value else ""))
    return out


# ---- the interpreter -------------------------------------------------------------------------------------


def pip_version(python):
    out = subprocess.run(
        [python, "-c", "import pip; print(pip.__version__)"], capture_output=True, text=True
    )
    if out.returncode != 0:
        return None
    return out.stdout.strip()


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def interpreter_info(python):
    code = (
        "import json, sys, pip\n"
        "from pip._vendor.packaging import tags, markers\n"
        "print(json.dumps({'executable': sys.executable, 'implementation': tags.interpreter_name(),"
        " 'pythonVersion': '%d.%d' % sys.version_info[:2], 'pythonFullVersion': markers.default_environment()"
        "['python_full_version'], 'pipVersion': pip.__version__, 'markers': markers.default_environment(),"
        " 'tags': [str(t) for t in tags.sys_tags()]}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("cannot inspect %s: %s" % (python, out.stderr.strip()))
    return json.loads(out.stdout)


# ---- running pip -----------------------------------------------------------------------------------------


class Failed(Exception):
    def __init__(self, command, code, tail):
        super().__init__("exit %s" % code)
        self.command, self.code, self.tail = command, code, tail


def run_logged(command, package, env, cwd=None):
    """Runs a command, streaming its output as log events; raises Failed with the last lines on error."""
    tail = []
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True, errors="replace"
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        tail.append(line)
        if len(tail) > LOG_TAIL:
            tail.pop(0)
        emit("log", package=package, line=line)
    code = proc.wait()
    if code != 0:
        raise Failed(command, code, tail)
    return tail


def pip_env(isolated):
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.pop("PIP_NO_BUILD_ISOLATION", None)
    if isolated:
        # The explicit isolated mode (Decision 7). pip reads PIP_NO_BUILD_ISOLATION into its
        # `build_isolation` flag as is, so "1" means isolation ON, and it beats a config file's setting.
        env["PIP_NO_BUILD_ISOLATION"] = "1"
    return env


# ---- wheelhouse ------------------------------------------------------------------------------------------


def wheel_parts(filename):
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    name, version = parts[0], parts[1]
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    tags = {"%s-%s-%s" % (a, b, c) for a in py.split(".") for b in abi.split(".") for c in plat.split(".")}
    return canonicalize(name), version, tags


def find_compatible(wheelhouse, name, version, tags):
    try:
        files = os.listdir(wheelhouse)
    except FileNotFoundError:
        return None
    for f in sorted(files):
        if not f.endswith(".whl"):
            continue
        p = wheel_parts(f)
        if p and p[0] == name and p[1] == version and p[2] & tags:
            return f
    return None


class BuildLock:
    """A per-requirement lock file under --build-lock-dir (fcntl: released by the kernel if we die)."""

    def __init__(self, build_lock_dir, name, version):
        self.path = None
        if build_lock_dir:
            os.makedirs(build_lock_dir, exist_ok=True)
            self.path = os.path.join(build_lock_dir, "%s-%s.lock" % (name, re.sub(r"[^A-Za-z0-9.+!]", "_", version)))
        self.fd = None

    def __enter__(self):
        if self.path:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


# ---- sources ---------------------------------------------------------------------------------------------


def archive_has_pyproject(path):
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        else:
            with tarfile.open(path) as t:
                names = t.getnames()
    except (OSError, tarfile.TarError, zipfile.BadZipFile):
        return True  # unknown: treat as modern (isolated)
    return any(n.count("/") == 1 and n.endswith("/pyproject.toml") for n in (x.lstrip("./") for x in names))


def file_path(url):
    return url2pathname(urllib.parse.urlparse(url).path)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_of(item):
    """What a wheel is made from, from pip's download_info (PEP 610), as the wheelhouse records it (WheelSource):
    an sdist (URL and sha256: pip's, else the local file's), a VCS checkout (URL and commit), a local folder, or the
    URL of a wheel fetched as it is."""
    info = item["download_info"]
    url = info["url"]
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        out = {"kind": "vcs", "vcs": vcs["vcs"], "url": url, "commit": vcs["commit_id"]}
        if vcs.get("requested_revision"):
            out["requestedRevision"] = vcs["requested_revision"]
        if info.get("subdirectory"):
            out["subdirectory"] = info["subdirectory"]
        return out
    if "dir_info" in info:
        out = {"kind": "directory", "path": file_path(url)}
        if info.get("subdirectory"):
            out["subdirectory"] = info["subdirectory"]
        return out
    if item["action"] != "build":
        return {"kind": "wheel", "url": url}
    archive = info.get("archive_info") or {}
    sha256 = (archive.get("hashes") or {}).get("sha256")
    if not sha256 and (archive.get("hash") or "").startswith("sha256="):
        sha256 = archive["hash"][len("sha256="):]
    if not sha256 and url.startswith("file:"):
        try:
            sha256 = file_sha256(file_path(url))
        except OSError:
            sha256 = None
    return {"kind": "sdist", "url": url, "sha256": sha256.lower() if sha256 else None}


def prepare_source(item, work, cext):
    """The requirement to give `pip wheel`, and whether its source has a pyproject.toml (Decision 6)."""
    name, info = item["name"], item["download_info"]
    url = info["url"]
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        # The `#egg=` form: pip 23's parser refuses some `name @ git+file://…@rev` URLs.
        req = "%s+%s@%s#egg=%s" % (vcs["vcs"], url, vcs["commit_id"], name)
        sub = info.get("subdirectory")
        if sub:
            req += "&subdirectory=" + sub
        if not cext:
            return req, True
        if vcs["vcs"] != "git":
            return req, True
        dest = os.path.join(work, "src")
        subprocess.run(["git", "clone", "-q", url, dest], check=True, capture_output=True)
        subprocess.run(["git", "-C", dest, "checkout", "-q", vcs["commit_id"]], check=True, capture_output=True)
        path = os.path.join(dest, sub) if sub else dest
        return path, os.path.exists(os.path.join(path, "pyproject.toml"))
    if "dir_info" in info:
        path = file_path(url)
        sub = info.get("subdirectory")
        if sub:
            path = os.path.join(path, sub)
        return path, os.path.exists(os.path.join(path, "pyproject.toml"))
    if url.startswith("file:"):
        path = file_path(url)
        return path, archive_has_pyproject(path)
    if not cext:
        return url, True
    dest = os.path.join(work, os.path.basename(urllib.parse.urlparse(url).path))
    try:
        with urllib.request.urlopen(url) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError:
        return url, True
    return dest, archive_has_pyproject(dest)


# ---- main ------------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", help="requirements file (default: $RECIPES/$RECIPE.txt when BUILD_REQ is true)")
    p.add_argument("--from-wheel", help="a wheel whose dependencies to build (BUILD_REQ=False)")
    p.add_argument("--wheelhouse", default=os.environ.get("WHEELHOUSE", "/wheelhouse"))
    p.add_argument("--output", help="where complete wheels go (default: the wheelhouse)")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "0") or 0) or os.cpu_count() or 1)
    p.add_argument("--prebuild", help="CEXT packages, comma-separated (default cython,numpy when CEXT is true)")
    p.add_argument("--no-cext", action="store_true")
    p.add_argument("--rebuild", action="append", default=[], help="build this project from source")
    p.add_argument("--build-lock-dir", help="folder of the cross-process build locks (flock files)")
    p.add_argument("--work-dir", help="scratch directory (default: a temp dir)")
    p.add_argument("--cache-dir", default=os.environ.get("DSTACK_CACHE_DIR"), help="keep build venvs here")
    p.add_argument("--ack", action="store_true", help="wait for `ack N` on stdin after each built wheel")
    p.add_argument("--no-index", action="store_true", help="no index: the wheelhouse and the recipe's --find-links only")
    p.add_argument(
        "--plan-only",
        action="store_true",
        help="resolve and report the plan (the `planned` event), then stop: nothing prebuilt, fetched or built",
    )
    p.add_argument(
        "--pin",
        action="append",
        default=[],
        help="NAME==VERSION kept as it is while resolving (a constraint; build --upgrade keeps the rest of a lock)",
    )
    p.add_argument(
        "--host-locks",
        action="store_true",
        help="take each requirement's build lock through the host: a `lock` event, then `granted N` on stdin",
    )
    a = p.parse_args(argv)
    recipes = os.environ.get("RECIPES", "/recipes")
    recipe_name = os.environ.get("RECIPE", "").strip()
    # The compose door (no recipe given: RECIPE from the environment) writes the recipe's lock as the CLI does;
    # with --recipe (the executors) the engine on the host writes it.
    a.write_lock = False
    a.lock_root = None
    if not a.recipe and not a.from_wheel:
        if env_flag("BUILD_REQ", True):
            recipe_name = recipe_name or "requirements"
            a.recipe = recipe_name if os.path.isfile(recipe_name) else os.path.join(recipes, recipe_name + ".txt")
            a.write_lock = True
        else:
            # The wheels' choice is select_wheels.py's, the CLI's too: a recipe naming them (RECIPE unset: all).
            import select_wheels

            try:
                a.recipe, _ = select_wheels.write_recipe(
                    a.wheelhouse, recipe_name, select_wheels.interpreter_tags(), tempfile.mkdtemp(prefix="dstack-select-")
                )
            except select_wheels.NoWheel as e:
                raise SystemExit(str(e))
            # Its lock goes where the CLI puts it: $RECIPES/locks/<RECIPE, or wheelhouse>/.
            a.write_lock, a.lock_root = True, os.path.join(recipes, "locks")
    if a.no_cext:
        a.prebuild = []
    elif a.prebuild is not None:
        a.prebuild = [x.strip() for x in a.prebuild.split(",") if x.strip()]
    else:
        a.prebuild = list(DEFAULT_PREBUILD) if env_flag("CEXT", True) else []
    a.output = a.output or a.wheelhouse
    a.rebuild = [canonicalize(x) for r in a.rebuild for x in r.split(",") if x.strip()]
    return a


def main(argv):
    a = parse_args(argv)
    wheelhouse = os.path.realpath(a.wheelhouse)
    if not a.plan_only:  # a plan writes nothing (pip reads a missing find-links folder as empty)
        os.makedirs(wheelhouse, exist_ok=True)
        os.makedirs(a.output, exist_ok=True)
    work = a.work_dir or tempfile.mkdtemp(prefix="dstack-factory-")
    os.makedirs(work, exist_ok=True)
    acks = Acks(a.ack or a.host_locks)
    try:
        return run(a, wheelhouse, work, acks)
    finally:
        if not a.work_dir:
            shutil.rmtree(work, ignore_errors=True)


def build_venv(a, work, common):
    """The build venv: pip, setuptools and wheel, plus the CEXT packages later. The plan prepares metadata in it
    without build isolation (an isolated env per source is what makes a plan slow); CEXT builds run in it.
    With --cache-dir it is kept per interpreter and prebuild list, and reused. Returns (venv, has_build_tools)."""
    base = sys.executable
    key = hashlib.sha256(
        ("%s|%s|%s" % (os.path.realpath(base), sys.version, ",".join(sorted(a.prebuild)))).encode()
    ).hexdigest()[:16]

    def create(venv):
        made = subprocess.run([base, "-m", "venv", venv], capture_output=True, text=True)
        if made.returncode != 0:
            emit("log", package=None, line="cannot create a venv: " + made.stderr.strip())
            return None
        py = os.path.join(venv, "bin", "python")
        cmd = [py, "-m", "pip", "install", "-q"] + common + ["setuptools", "wheel"]
        try:
            run_logged(cmd, None, pip_env(True))
            return "tools"
        except Failed:
            emit("log", package=None, line="no setuptools/wheel for the build venv: the plan runs with build isolation")
            return ""

    if not a.cache_dir:
        venv = os.path.join(work, "venv")
        state = create(venv)
        return (venv, state == "tools") if state is not None else (None, False)
    root = os.path.join(a.cache_dir, "venvs")
    os.makedirs(root, exist_ok=True)
    venv = os.path.join(root, key)
    ready = os.path.join(venv, ".dstack-ready")
    fd = os.open(venv + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not os.path.exists(ready):
            shutil.rmtree(venv, ignore_errors=True)
            state = create(venv)
            if state is None:
                return None, False
            if state != "tools":
                return venv, False  # not kept: the next run tries again to install setuptools and wheel
            with open(ready, "w", encoding="utf-8") as f:
                f.write(state)
        return venv, True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class Build:
    """What every step of one run shares: the arguments, folders, the acks channel, and (once set up) the
    interpreter pip runs with, its pip options and the target's tags."""

    def __init__(self, a, wheelhouse, work, acks):
        self.a, self.wheelhouse, self.work, self.acks = a, wheelhouse, work, acks
        self.no_index = ["--no-index"] if a.no_index else []
        self.common = []
        self.python = sys.executable
        self.info = None
        self.pep517 = []
        self.tags = set()
        self.build_tools = False
        # project -> the file name of its wheel in the wheelhouse (for the lock)
        self.files = {}
        # project -> what this run made its wheel from (for the lock)
        self.sources = {}

    def publish(self, src, filename, package, version, source=None):
        """Copies a wheel into --output (temp name, then rename) and reports it built, with what it was made from."""
        dest = os.path.join(self.a.output, filename)
        shutil.copyfile(src, dest + ".part")
        os.replace(dest + ".part", dest)
        self.files[package] = filename
        if source:
            self.sources[package] = source
            self.acks.built(package=package, version=version, filename=filename, source=source)
        else:
            self.acks.built(package=package, version=version, filename=filename)


def fail_run(package, command, code, tail):
    """Reports a failure that stops the whole run; returns the exit status."""
    emit("failed", package=package, version=None, command=command, exitCode=code, logTail=tail)
    emit("done", ok=False)
    return 1


def write_options(b):
    """The recipe's global options (index, find-links, ...) as a requirements file every pip command reads."""
    opts_file = os.path.join(b.work, "options.txt")
    with open(opts_file, "w", encoding="utf-8") as f:
        f.write("\n".join(recipe_options(b.a.recipe) if b.a.recipe else []) + "\n")
    b.common = ["--find-links", b.wheelhouse] + b.no_index + ["-r", opts_file]
    # Pins (build --upgrade: every locked project but the upgraded ones) constrain the plan only.
    b.pins = []
    if b.a.pin:
        pins_file = os.path.join(b.work, "pins.txt")
        with open(pins_file, "w", encoding="utf-8") as f:
            f.write("\n".join(b.a.pin) + "\n")
        b.pins = ["-c", pins_file]


def set_up_interpreter(b):
    """The build venv (or the target itself), its facts and pip's mode switches; False when there is no venv to
    build in and the run needs one."""
    venv, b.build_tools = build_venv(b.a, b.work, b.common)
    if venv:
        b.python = os.path.join(venv, "bin", "python")
    elif b.a.prebuild or pip_version(b.python) is None:
        fail_run("(venv)", [b.python, "-m", "venv"], None, ["cannot create the build venv (is python3-venv installed?)"])
        return False
    b.info = interpreter_info(b.python)
    b.info["executable"] = sys.executable  # the target interpreter; the build venv is made from it
    old_pip = version_tuple(b.info["pipVersion"]) < (23, 1)
    b.pep517 = ["--use-pep517"] if old_pip else []
    emit("started", interpreter=b.info, prebuild=b.a.prebuild)
    b.tags = set(b.info["tags"])
    return True


def prebuild_cext(b):
    """CEXT: prebuilds the listed packages into the output (the engine ingests them), then installs them into the
    build venv. False when either step fails (reported)."""
    a = b.a
    pre_out = os.path.join(b.work, "prebuild")
    cmd = [b.python, "-m", "pip", "wheel", "-w", pre_out] + b.common + b.pep517 + a.prebuild
    for name in a.prebuild:
        emit("building", package=canonicalize(name), version="", action="prebuild", command=cmd)
    try:
        run_logged(cmd, None, pip_env(True))
    except Failed as e:
        fail_run(",".join(a.prebuild), e.command, e.code, e.tail)
        return False
    for f in sorted(os.listdir(pre_out)):
        p = wheel_parts(f)
        if not p:
            continue
        if os.path.exists(os.path.join(b.wheelhouse, f)):
            emit("cached", package=p[0], version=p[1], filename=f)
        else:
            b.publish(os.path.join(pre_out, f), f, p[0], p[1])
    cmd = [b.python, "-m", "pip", "install", "--find-links", pre_out] + b.common + ["setuptools", "wheel"] + a.prebuild
    try:
        run_logged(cmd, None, pip_env(True))
    except Failed as e:
        fail_run(",".join(a.prebuild), e.command, e.code, e.tail)
        return False
    return True


def plan_report(b):
    """The plan: pip resolves, on the target interpreter, with the recipe's own options (Decision 2). Returns
    pip's installation report, or None when pip failed (reported)."""
    a = b.a
    report_file = os.path.join(b.work, "report.json")
    source = ["-r", a.recipe] if a.recipe else [a.from_wheel]
    no_binary = ["--no-binary", ",".join(a.rebuild)] if a.rebuild else []
    plan = [b.python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report", report_file]
    plan += ["--find-links", b.wheelhouse] + b.no_index + b.pep517 + no_binary + b.pins + source
    # Metadata without build isolation first (fast; it works for setuptools projects), then isolated
    # (a source needing another backend, or build requirements the venv lacks).
    fast = a.prebuild or b.build_tools
    attempts = [(plan + ["--no-build-isolation"], False), (plan, True)] if fast else [(plan, True)]
    for i, (cmd, isolated) in enumerate(attempts):
        try:
            run_logged(cmd, None, pip_env(isolated))
            break
        except Failed as e:
            if i < len(attempts) - 1:
                emit("log", package=None, line="plan without build isolation failed; planning again with isolation")
            if i == len(attempts) - 1:
                fail_run("(plan)", e.command, e.code, e.tail)
                return None
    with open(report_file, encoding="utf-8") as f:
        return json.load(f)


def plan_items(b, report):
    """Each distribution of pip's report with what to do about it: cached (its wheel is in the wheelhouse, or is
    the app wheel), download (a wheel elsewhere) or build (a source)."""
    items = []
    from_wheel = os.path.realpath(b.a.from_wheel) if b.a.from_wheel else None
    for entry in report.get("install", []):
        meta = entry["metadata"]
        name, version = canonicalize(meta["name"]), meta["version"]
        info_ = entry["download_info"]
        url = info_["url"]
        is_wheel = "archive_info" in info_ and urllib.parse.urlparse(url).path.endswith(".whl")
        filename = urllib.parse.unquote(os.path.basename(urllib.parse.urlparse(url).path)) if is_wheel else None
        if is_wheel and url.startswith("file:") and (
            os.path.dirname(os.path.realpath(file_path(url))) == b.wheelhouse
            or os.path.realpath(file_path(url)) == from_wheel
        ):
            action = "cached"
        elif is_wheel:
            action = "download"
        else:
            action = "build"
        items.append(
            {
                "name": name,
                "version": version,
                "action": action,
                "url": url,
                "filename": filename,
                "requested": bool(entry.get("requested")),
                "requires_dist": meta.get("requires_dist") or [],
                "requested_extras": entry.get("requested_extras") or [],
                "requiresPython": meta.get("requires_python"),
                "is_direct": bool(entry.get("is_direct")),
                "download_info": info_,
            }
        )
    names = {i["name"] for i in items}
    for i in items:
        i["dependencies"] = dependencies(i, names, b.info["markers"])
    return items


def report_plan(items):
    """The `planned` event, then a `cached` event for each wheel already there."""
    keys = ("name", "version", "action", "url", "filename", "requested", "dependencies", "requiresPython")
    # What each wheel to fetch or build comes from (a plan shows it: build --dry-run).
    emit("planned", packages=[dict({k: i[k] for k in keys}, **({"source": source_of(i)} if i["action"] != "cached" else {})) for i in items])
    for i in items:
        if i["action"] == "cached":
            emit("cached", package=i["name"], version=i["version"], filename=i["filename"])


def fetch_wheels(b, items):
    """Wheels to fetch: copied from a find-links folder, or downloaded by pip. Returns the number that failed."""
    remote = []
    for i in items:
        if i["url"].startswith("file:"):
            src = file_path(i["url"])
            emit("building", package=i["name"], version=i["version"], action="download", command=["copy", src])
            b.publish(src, i["filename"], i["name"], i["version"], source_of(i))
        else:
            remote.append(i)
    if not remote:
        return 0
    dl_dir = os.path.join(b.work, "download")
    reqs = [("%s @ %s" % (i["name"], i["url"])) if i["is_direct"] else "%s==%s" % (i["name"], i["version"]) for i in remote]
    cmd = [b.python, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", dl_dir] + b.common + reqs
    for i in remote:
        emit("building", package=i["name"], version=i["version"], action="download", command=cmd)
    try:
        run_logged(cmd, None, pip_env(True))
        for i in remote:
            b.publish(os.path.join(dl_dir, i["filename"]), i["filename"], i["name"], i["version"], source_of(i))
    except Failed as e:
        for i in remote:
            emit("failed", package=i["name"], version=i["version"], command=e.command, exitCode=e.code, logTail=e.tail)
        return len(remote)
    return 0


def build_under_lock(b, item):
    """Builds one source while holding its build lock: one build of a name-version at a time across processes (a
    flock in --build-lock-dir, or with --host-locks the host's lock, asked for on stdout and granted on stdin)."""
    if not b.a.host_locks:
        with BuildLock(b.a.build_lock_dir, item["name"], item["version"]):
            return build_source(b, item)
    n = b.acks.host_lock(item["name"], item["version"])
    try:
        return build_source(b, item)
    finally:
        b.acks.host_unlock(n)


def build_source(b, item):
    """`pip wheel --no-deps` of one source (isolated, or in the CEXT venv for a source without pyproject.toml);
    True when its wheel is in the output (or another process's is in the wheelhouse)."""
    a = b.a
    name, version = item["name"], item["version"]
    # Another process may have built it while we waited for the lock: reuse its wheel.
    existing = None if name in a.rebuild else find_compatible(b.wheelhouse, name, version, b.tags)
    if existing:
        emit("cached", package=name, version=version, filename=existing)
        b.files[name] = existing
        return True
    item_work = tempfile.mkdtemp(prefix=name + "-", dir=b.work)
    try:
        try:
            req, has_pyproject = prepare_source(item, item_work, bool(a.prebuild))
        except (subprocess.CalledProcessError, OSError) as e:
            emit("failed", package=name, version=version, command=["prepare", item["url"]], exitCode=None, logTail=[str(e)])
            return False
        isolated = has_pyproject or not a.prebuild
        out = os.path.join(item_work, "out")
        cmd = [b.python, "-m", "pip", "wheel", "--no-deps", "-w", out] + b.common + b.pep517
        cmd += [] if isolated else ["--no-build-isolation"]
        cmd += [req]
        emit("building", package=name, version=version, action="build", command=cmd)
        try:
            run_logged(cmd, name, pip_env(isolated))
        except Failed as e:
            emit("failed", package=name, version=version, command=e.command, exitCode=e.code, logTail=e.tail)
            return False
        made = [f for f in os.listdir(out) if f.endswith(".whl")]
        if len(made) != 1:
            emit("failed", package=name, version=version, command=cmd, exitCode=0, logTail=["pip wheel made %d wheels: %s" % (len(made), made)])
            return False
        b.publish(os.path.join(out, made[0]), made[0], name, version, source_of(item))
        return True
    finally:
        shutil.rmtree(item_work, ignore_errors=True)


def build_sources(b, items):
    """The sources, built in parallel (--jobs). Returns the number that failed."""
    if not items:
        return 0
    with ThreadPoolExecutor(max_workers=max(1, b.a.jobs)) as pool:
        results = list(pool.map(lambda i: build_under_lock(b, i), items))
    return results.count(False)


def run(a, wheelhouse, work, acks):
    """One run: set up, prebuild (CEXT), plan, then fetch and build what the wheelhouse lacks."""
    b = Build(a, wheelhouse, work, acks)
    write_options(b)
    if not set_up_interpreter(b):
        return 1
    # A plan only (build --dry-run) prebuilds nothing: the CEXT packages are planned with the rest.
    if a.prebuild and not a.plan_only and not prebuild_cext(b):
        return 1
    report = plan_report(b)
    if report is None:
        return 1
    items = plan_items(b, report)
    report_plan(items)
    if a.plan_only:
        emit("done", ok=True)
        return 0
    b.files.update({i["name"]: i["filename"] for i in items if i["filename"]})
    failures = fetch_wheels(b, [i for i in items if i["action"] == "download"])
    failures += build_sources(b, [i for i in items if i["action"] == "build"])
    if failures == 0 and a.write_lock and a.output == a.wheelhouse:
        import pylock

        try:
            emit("locked", path=pylock.write_lock(a.recipe, b.info, items, b.files, b.wheelhouse, a.lock_root, b.sources))
        except (OSError, RuntimeError) as e:
            # As the CLI: wheels without their lock are a failed build, said as such.
            emit("failed", package="(lock)", version=None, command=["write-lock", a.recipe], exitCode=None, logTail=[str(e)])
            failures += 1
    emit("done", ok=failures == 0)
    return 0 if failures == 0 else 1


def dependencies(item, names, markers):
    """Names of the closure's distributions this one requires, markers evaluated for the target."""
    try:
        from pip._vendor.packaging.requirements import Requirement  # the running pip's packaging
    except ImportError:  # pragma: no cover
        return []
    out = set()
    extras = [""] + list(item["requested_extras"])
    for text in item["requires_dist"]:
        try:
            req = Requirement(text)
        except Exception:
            continue
        name = canonicalize(req.name)
        if name not in names:
            continue
        if req.marker is None or any(req.marker.evaluate(dict(markers, extra=e)) for e in extras):
            out.add(name)
    return sorted(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
