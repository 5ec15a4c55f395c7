#!/usr/bin/env python3
"""BUILD_REQ=False: which wheels of the wheelhouse to build the dependencies of (the original's
`pip wheel /wheelhouse/${RECIPE:-*}.whl`). The one implementation: factory.py imports it (the compose door),
and `dstack-factory build` runs it as a script (the CLI door), so both choose alike.

RECIPE unset or empty: every wheel of the wheelhouse that fits the target. RECIPE a full wheel stem
(`myapp-1.0-py3-none-any`): that file. A project name (`my-app`, any spelling PEP 503 folds alike): its latest
version. A name-version (`my-app-1.0`, the project name may hold dashes): that version. Among several files of
one version, the best tag for the target wins. Writes a requirements file naming the chosen wheels by path,
`<dir>/<RECIPE or "wheelhouse">.txt`.

    select_wheels.py --wheelhouse DIR [--recipe NAME] [--tags-json FILE|-] --write-recipe DIR
prints {"recipe": PATH, "wheels": [FILE, ...]}; exit 3 with a message when nothing matches.
"""

import argparse
import json
import os
import re
import sys


class NoWheel(Exception):
    pass


def canonicalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parts(filename):
    """(project, version, tag set) of a wheel file name, or None."""
    if not filename.endswith(".whl"):
        return None
    p = filename[:-4].split("-")
    if len(p) not in (5, 6):
        return None
    tags = {"%s-%s-%s" % (a, b, c) for a in p[-3].split(".") for b in p[-2].split(".") for c in p[-1].split(".")}
    return canonicalize(p[0]), p[1], tags


def version_key(v):
    try:
        from pip._vendor.packaging.version import Version

        return (0, Version(v))
    except Exception:  # no pip here, or not PEP 440: numbers first, then the text
        return (1, tuple(int(x) for x in re.findall(r"\d+", v)), v)


def same_version(a, b):
    try:
        from pip._vendor.packaging.version import Version

        return Version(a) == Version(b)
    except Exception:
        return a == b


def interpreter_tags():
    from pip._vendor.packaging import tags

    return [str(t) for t in tags.sys_tags()]


def select(wheelhouse, recipe, tags):
    """The chosen file names (sorted), or NoWheel."""
    rank = {t: i for i, t in enumerate(tags)}
    files = sorted(f for f in os.listdir(wheelhouse) if parts(f)) if os.path.isdir(wheelhouse) else []

    def best(tagset):
        found = [rank[t] for t in tagset if t in rank]
        return min(found) if found else None

    fitting = [(f,) + parts(f) for f in files if best(parts(f)[2]) is not None]
    recipe = (recipe or "").strip()
    if not recipe:
        if not fitting:
            raise NoWheel("BUILD_REQ=False: no wheel in %s fits this interpreter" % wheelhouse)
        return [f for f, _, _, _ in fitting]
    if recipe.endswith(".whl"):
        recipe = recipe[:-4]
    if recipe + ".whl" in files:
        if best(parts(recipe + ".whl")[2]) is None:
            raise NoWheel("BUILD_REQ=False: %s.whl in %s does not fit this interpreter" % (recipe, wheelhouse))
        return [recipe + ".whl"]

    def pick(cands):
        top = max(version_key(v) for _, _, v, _ in cands)
        same = [c for c in cands if version_key(c[2]) == top]
        return min(same, key=lambda c: best(c[3]))[0]

    by_name = [c for c in fitting if c[1] == canonicalize(recipe)]
    if by_name:
        return [pick(by_name)]
    # name-version: the project name may itself hold dashes, so try every split.
    for i in [m.start() for m in re.finditer("-", recipe)]:
        name, version = canonicalize(recipe[:i]), recipe[i + 1 :]
        cands = [c for c in fitting if c[1] == name and same_version(c[2], version)]
        if cands:
            return [pick(cands)]
    raise NoWheel("BUILD_REQ=False: no wheel named %s in %s" % (recipe, wheelhouse))


def write_recipe(wheelhouse, recipe, tags, dest_dir):
    """Chooses the wheels and writes `<dest_dir>/<recipe or wheelhouse>.txt` naming them; returns (path, files)."""
    chosen = select(wheelhouse, recipe, tags)
    stem = (recipe or "").strip() or "wheelhouse"
    stem = stem[:-4] if stem.endswith(".whl") else stem
    os.makedirs(dest_dir, exist_ok=True)
    path = os.path.join(dest_dir, stem + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# BUILD_REQ=False: the dependencies of these wheels (select_wheels.py)\n")
        for name in chosen:
            f.write(os.path.join(os.path.abspath(wheelhouse), name) + "\n")
    return path, chosen


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wheelhouse", required=True)
    p.add_argument("--recipe", default=None)
    p.add_argument("--tags-json", help="the target's tags, best first (a JSON list; - for stdin)")
    p.add_argument("--write-recipe", required=True, metavar="DIR")
    a = p.parse_args(argv)
    if a.tags_json:
        tags = json.load(sys.stdin if a.tags_json == "-" else open(a.tags_json, encoding="utf-8"))
    else:
        tags = interpreter_tags()
    try:
        path, chosen = write_recipe(a.wheelhouse, a.recipe, tags, a.write_recipe)
    except NoWheel as e:
        sys.stderr.write("%s\n" % e)
        return 3
    print(json.dumps({"recipe": path, "wheels": chosen}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
