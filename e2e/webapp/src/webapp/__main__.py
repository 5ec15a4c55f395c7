"""`python -m webapp` (or the `webapp` script of its wheel): serve the app with the standard library's
wsgiref on 0.0.0.0:$PORT (default 8000)."""

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from webapp import application


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - wsgiref's own signature
        sys.stderr.write("%s\n" % (format % args))


def main():
    port = int(os.environ.get("PORT", "8000"))
    with make_server("0.0.0.0", port, application, handler_class=QuietHandler) as server:
        sys.stderr.write("webapp serving on 0.0.0.0:%d\n" % port)
        sys.stderr.flush()
        server.serve_forever()


if __name__ == "__main__":
    main()
