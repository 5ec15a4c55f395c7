"""The example web app of the end-to-end tests: a WSGI app whose one page proves its dependencies work.

Its dependencies are the two kinds the seed exists for: `zcrc`, a C extension linking zlib (compiled in the
factory, installed from the wheelhouse), and `greeting`, a package from a git repository (`git+file://…`).
"""

import json
import os
import platform
import sys

VERSION = "1.0"


def application(environ, start_response):
    import greeting
    import zcrc
    from zcrc import _native

    body = json.dumps(
        {
            "app": "webapp",
            "version": VERSION,
            "crc": zcrc.crc(),
            "native": os.path.basename(_native.__file__),
            "greeting": greeting.VERSION,
            "greeting_file": greeting.__file__,
            "uid": os.getuid(),
            "python": platform.python_version(),
            "prefix": sys.prefix,
            "app_file": __file__,
        },
        sort_keys=True,
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
