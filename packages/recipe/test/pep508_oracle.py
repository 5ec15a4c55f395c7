"""Reads a JSON list of strings on stdin; prints, for each, what pip 23.2's vendored packaging makes of it.

kind "requirement": {"name", "extras" (sorted), "specifier" (str of SpecifierSet), "marker" (str or null),
"url"} or {"error": "..."}; kind "marker": {"marker": str(Marker)} or {"error": "..."}.
Used by the property tests to compare @dstack/recipe's parsePep508 and normalizeMarker with pip itself.
"""
import json
import sys

from pip._vendor.packaging.markers import Marker
from pip._vendor.packaging.requirements import Requirement


def requirement(text):
    try:
        r = Requirement(text)
    except Exception as e:  # InvalidRequirement, and the InvalidSpecifier/ValueError packaging lets through
        return {"error": f"{type(e).__name__}: {e}"}
    return {
        "name": r.name,
        "extras": sorted(r.extras),
        "specifier": str(r.specifier),
        "marker": str(r.marker) if r.marker is not None else None,
        "url": r.url or None,
    }


def marker(text):
    try:
        return {"marker": str(Marker(text))}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    request = json.load(sys.stdin)
    fn = requirement if request["kind"] == "requirement" else marker
    json.dump([fn(t) for t in request["texts"]], sys.stdout)


if __name__ == "__main__":
    main()
