"""The compose door's lock (DESIGN.md Decisions 4 and 9): what `dstack-factory build` writes for a recipe and a
target, `<recipe dir>/locks/<recipe>/pylock.<target>.toml`, written by the in-image script from its own plan.

The same file as the CLI's, byte for byte, but for one line: the CLI's `[tool.dstack-factory] key` is a sha256 of
the recipe as @dstack/recipe parses it, which this script cannot reproduce. So the lock written here carries no
key: `dstack-factory build` treats it as not current (it plans again, from the wheelhouse, and rewrites it with its
key); `dstack-factory image app --lock` installs from it as from any lock. e2e/compose.int.test.ts compares the
two doors' files.

The target's name is @dstack/wheelhouse's `Target.name` (targetFromTags: the best manylinux/musllinux tag gives
the C library and the machine), the TOML layout that of @dstack/recipe's stringifyLock (smol-toml's).
"""

import hashlib
import json
import os
import re

TOOL = "dstack-factory"
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def platform_needs(tag):
    """(machine, (libc kind, (major, minor)) or None) of a Linux platform tag, or None (wheelhouse's platformNeeds)."""
    m = re.match(r"^manylinux_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return m.group(3), ("glibc", (int(m.group(1)), int(m.group(2))))
    m = re.match(r"^(manylinux1|manylinux2010|manylinux2014)_(.+)$", tag)
    if m:
        return m.group(2), ("glibc", LEGACY_MANYLINUX[m.group(1)])
    m = re.match(r"^musllinux_(\d+)_(\d+)_(.+)$", tag)
    if m:
        return m.group(3), ("musl", (int(m.group(1)), int(m.group(2))))
    m = re.match(r"^linux_(.+)$", tag)
    if m:
        return m.group(1), None
    return None


def target_name(implementation, python_full_version, tags):
    """`Target.name` of an interpreter from its best-first tags, e.g. "cp3_11_2-manylinux_2_36_x86_64"."""
    platforms = []
    for t in tags:
        p = t.split("-")[2]
        if p not in platforms:
            platforms.append(p)
    libc_tag = next((p for p in platforms if (platform_needs(p) or (None, None))[1]), None)
    chosen = [libc_tag] if libc_tag else platforms
    m = re.match(r"^(\d+)\.(\d+)", python_full_version)
    major, minor = m.group(1), m.group(2)
    prefix = "%s%s%s" % (implementation, major, minor)
    abi = next((t.split("-")[1] for t in tags if t.startswith(implementation) and not re.search(r"-(abi3t?|none)-", t)), None)
    if abi is None and implementation == "cp":
        abi = prefix
    flags = abi[len(prefix):] if abi and abi.startswith(prefix) else ""
    version = re.sub(r"[^A-Za-z0-9]+", "_", python_full_version)
    needs = next((n for n in (platform_needs(p) for p in chosen) if n), None)
    if needs and needs[1]:
        machine, (kind, (a, b)) = needs
        platform = "%s_%d_%d_%s" % ("manylinux" if kind == "glibc" else "musllinux", a, b, machine)
    elif needs:
        platform = "linux_" + needs[0]
    else:
        first = chosen[0] if chosen else "any"
        platform = first
    return "%s%s%s-%s" % (implementation, version, flags, platform)


def environment_marker(markers):
    """The lock's PEP 751 `environments` entry (the engine's environmentMarker)."""
    return (
        'implementation_name == "%s" and python_full_version == "%s" and sys_platform == "%s" and platform_machine == "%s"'
        % (markers["implementation_name"], markers["python_full_version"], markers["sys_platform"], markers["platform_machine"])
    )


def lock_path(recipe, target):
    """`<recipe dir>/locks/<recipe name>/pylock.<target>.toml` (@dstack/recipe's lockPath)."""
    stem = re.sub(r"\.txt$", "", os.path.basename(recipe))
    return os.path.join(os.path.dirname(recipe), "locks", stem, "pylock.%s.toml" % target)


def toml_string(s):
    # smol-toml's strings: JSON's escapes, DEL as \u007f.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def file_facts(path):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def render(environment, packages, tool):
    """The lock's text, laid out as stringifyLock writes it. `packages`: dicts with name, version, requires_python,
    dependencies (names), wheel (name, path, size, sha256)."""
    out = ['lock-version = "1.0"', "environments = [ %s ]" % toml_string(environment), 'created-by = "%s"' % TOOL]
    if not packages:
        out.append("packages = []")
    for p in sorted(packages, key=lambda p: (p["name"], p["version"])):
        out += ["", "[[packages]]", "name = " + toml_string(p["name"]), "version = " + toml_string(p["version"])]
        if p.get("requires_python"):
            out.append("requires-python = " + toml_string(p["requires_python"]))
        for d in sorted(p.get("dependencies") or []):
            out += ["", "[[packages.dependencies]]", "name = " + toml_string(d)]
        w = p["wheel"]
        out += ["", "[[packages.wheels]]", "name = " + toml_string(w["name"]), "path = " + toml_string(w["path"])]
        out += ["size = %d" % w["size"], "", "[packages.wheels.hashes]", "sha256 = " + toml_string(w["sha256"])]
        for name, table in sorted((p.get("source") or {}).items()):
            section = "packages.tool.%s.%s" % (TOOL, name)
            out += ["", "[%s]" % section] + ["%s = %s" % (k, toml_string(v)) for k, v in sorted(table.items()) if k != "hashes"]
            if table.get("hashes"):
                out += ["", "[%s.hashes]" % section] + ["%s = %s" % (k, toml_string(v)) for k, v in sorted(table["hashes"].items())]
    out += ["", "[tool.%s]" % TOOL] + ["%s = %s" % (k, toml_string(v)) for k, v in sorted(tool.items())]
    return "\n".join(out) + "\n"


def source_table(source, lock_dir):
    """The package's `[packages.tool.dstack-factory]` keys for what its wheel was built from (@dstack/wheelhouse's
    sourceLockTable): PEP 751's sdist / vcs / directory shapes; none for a wheel fetched as it is."""
    kind = source.get("kind")
    if kind == "sdist":
        return {"sdist": dict({"url": source["url"]}, **({"hashes": {"sha256": source["sha256"]}} if source.get("sha256") else {}))}
    if kind == "vcs":
        vcs = {"type": source["vcs"], "url": source["url"], "commit-id": source["commit"]}
        if source.get("requestedRevision"):
            vcs["requested-revision"] = source["requestedRevision"]
        if source.get("subdirectory"):
            vcs["subdirectory"] = source["subdirectory"]
        return {"vcs": vcs}
    if kind == "directory":
        d = {"path": os.path.relpath(source["path"], lock_dir) if os.path.isabs(source["path"]) else source["path"]}
        if source.get("subdirectory"):
            d["subdirectory"] = source["subdirectory"]
        return {"directory": d}
    return None


def write_lock(recipe, info, items, files, wheelhouse, lock_root=None, sources=None):
    """Writes the lock of `recipe` for the interpreter `info` (temp file, then rename); `files` maps each project to
    its wheel's file name in `wheelhouse`, `sources` to what this run built its wheel from. With `lock_root` (BUILD_REQ=False: `recipe` is the run's own choice of
    wheels, a temp file) the lock goes to `<lock_root>/<recipe name>/` and does not name the recipe, as the CLI's.
    Returns the lock's path."""
    target = target_name(info["implementation"], info["pythonFullVersion"], info["tags"])
    path = lock_path(recipe, target)
    if lock_root:
        path = os.path.join(lock_root, os.path.basename(os.path.dirname(path)), os.path.basename(path))
    lock_dir = os.path.dirname(path)
    packages = []
    for i in items:
        filename = files.get(i["name"])
        if not filename or not os.path.isfile(os.path.join(wheelhouse, filename)):
            raise RuntimeError("no wheel of %s %s in %s for the lock %s" % (i["name"], i["version"], wheelhouse, path))
        size, sha256 = file_facts(os.path.join(wheelhouse, filename))
        packages.append(
            {
                "name": i["name"],
                "version": i["version"],
                "requires_python": i.get("requiresPython"),
                "dependencies": i.get("dependencies") or [],
                "source": source_table((sources or {}).get(i["name"]) or {}, lock_dir),
                "wheel": {
                    "name": filename,
                    "path": os.path.relpath(os.path.join(wheelhouse, filename), lock_dir),
                    "size": size,
                    "sha256": sha256,
                },
            }
        )
    tool = {"target": target} if lock_root else {"recipe": os.path.relpath(recipe, lock_dir), "target": target}
    text = render(environment_marker(info["markers"]), packages, tool)
    os.makedirs(lock_dir, exist_ok=True)
    temp = "%s.%d.tmp" % (path, os.getpid())
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temp, path)
    return path
