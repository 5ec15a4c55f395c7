"""pip 23.2's own reading of requirements files, in the shape of `dstack-factory recipe show --json`.

Usage:
  python3 pip_parse.py < request.json          request: {"cases": ["/abs/case-dir", ...]}; prints a JSON list
  python3 pip_parse.py --write CASE_DIR...     (re)writes each case's expected.json

Each case folder holds `main.txt` (the top file, read with the folder as the working directory, as pip reads a
file given on its command line), its includes, and optionally `env.json` ({"VAR": "value"}: the environment
variables `${VAR}` sees; nothing else is visible). The parse goes through pip's own
`req_file.parse_requirements` and `constructors.install_req_from_parsed_requirement`, the code `pip install -r`
runs. Options are aggregated over all lines in file order (the last --index-url wins, lists accumulate,
--no-binary/--only-binary through one FormatControl shared by every line, as pip's finder shares it).
A file pip rejects gives {"error": true, "file", "line", "message", "type"}: the line pip was reading.
"""
import json
import os
import sys

from pip._internal.models.format_control import FormatControl
from pip._internal.network.session import PipSession
from pip._internal.req import req_file
from pip._internal.req.constructors import install_req_from_parsed_requirement

_current = {"file": None, "line": None}
_last_opened = {"file": None}
_option_lines = []
_format_control = {"fc": None}

_orig_get_file_content = req_file.get_file_content
_orig_preprocess = req_file.preprocess
_orig_get_line_parser = req_file.get_line_parser
_orig_handle_option_line = req_file.handle_option_line


def _get_file_content(url, session):
    _last_opened["file"] = url
    return _orig_get_file_content(url, session)


def _preprocess(content):
    filename = _last_opened["file"]
    for line_number, line in _orig_preprocess(content):
        _current["file"], _current["line"] = filename, line_number
        yield line_number, line


class _FinderFormatControl:
    """get_line_parser only reads finder.format_control; share one as pip's PackageFinder does."""

    @property
    def format_control(self):
        return _format_control["fc"]


def _get_line_parser(finder):
    return _orig_get_line_parser(_FinderFormatControl())


def _handle_option_line(opts, filename, lineno, finder=None, options=None, session=None):
    _option_lines.append(opts)
    return _orig_handle_option_line(opts, filename, lineno, finder, options, session)


req_file.get_file_content = _get_file_content
req_file.preprocess = _preprocess
req_file.get_line_parser = _get_line_parser
req_file.handle_option_line = _handle_option_line


def _options():
    o = {
        "indexUrl": None,
        "extraIndexUrls": [],
        "findLinks": [],
        "noIndex": False,
        "pre": False,
        "noBinary": sorted(_format_control["fc"].no_binary),
        "onlyBinary": sorted(_format_control["fc"].only_binary),
        "preferBinary": False,
        "trustedHosts": [],
        "requireHashes": False,
    }
    for opts in _option_lines:
        if opts.index_url:
            o["indexUrl"] = opts.index_url
        o["extraIndexUrls"] += opts.extra_index_urls or []
        o["findLinks"] += opts.find_links or []
        o["trustedHosts"] += opts.trusted_hosts or []
        o["noIndex"] = o["noIndex"] or bool(opts.no_index)
        o["pre"] = o["pre"] or bool(opts.pre)
        o["preferBinary"] = o["preferBinary"] or bool(opts.prefer_binary)
        o["requireHashes"] = o["requireHashes"] or bool(opts.require_hashes)
    return o


def parse_case(case_dir):
    env_file = os.path.join(case_dir, "env.json")
    env = {}
    if os.path.exists(env_file):
        with open(env_file) as f:
            env = json.load(f)
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    _option_lines.clear()
    _format_control["fc"] = FormatControl(set(), set())
    _current["file"], _current["line"] = "main.txt", None
    os.chdir(case_dir)
    for k in [k for k in os.environ if k.isupper()]:
        del os.environ[k]
    os.environ.update(env)
    try:
        requirements = []
        for parsed in req_file.parse_requirements("main.txt", PipSession()):
            ireq = install_req_from_parsed_requirement(parsed)
            requirements.append(
                {
                    "name": ireq.req.name if ireq.req else None,
                    "extras": sorted(ireq.extras),
                    "specifier": str(ireq.req.specifier) if ireq.req else "",
                    "marker": str(ireq.markers) if ireq.markers else None,
                    "url": ireq.link.url if ireq.link else None,
                    "editable": ireq.editable,
                    "constraint": ireq.constraint,
                    "hashes": [f"{a}:{d}" for a, ds in ireq.hash_options.items() for d in ds],
                    "file": os.path.normpath(_current["file"]),
                    "line": _current["line"],
                }
            )
        return {"requirements": requirements, "options": _options()}
    except BaseException as e:  # pip's own errors, packaging's, and RecursionError for include cycles
        if isinstance(e, KeyboardInterrupt):
            raise
        return {
            "error": True,
            "file": os.path.normpath(_current["file"]),
            "line": _current["line"],
            "type": type(e).__name__,
            "message": f"{type(e).__name__}: {e}"[:2000],
        }
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def stored_form(case_dir, result):
    """expected.json: local file URLs as paths relative to the case folder."""
    from pip._internal.utils.urls import url_to_path

    if result.get("error"):
        return {k: result[k] for k in ("error", "file", "line", "message")}
    for r in result["requirements"]:
        if r["url"] and r["url"].startswith("file:"):
            p = url_to_path(r["url"].split("#")[0])
            if os.path.abspath(p).startswith(os.path.abspath(case_dir)):
                r["url"] = os.path.relpath(p, case_dir) + (("#" + r["url"].split("#", 1)[1]) if "#" in r["url"] else "")
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        for case_dir in sys.argv[2:]:
            case_dir = os.path.abspath(case_dir)
            with open(os.path.join(case_dir, "expected.json"), "w") as f:
                json.dump(stored_form(case_dir, parse_case(case_dir)), f, indent=2)
                f.write("\n")
        return
    request = json.load(sys.stdin)
    sys.setrecursionlimit(400)
    json.dump([parse_case(c) for c in request["cases"]], sys.stdout)


if __name__ == "__main__":
    main()
