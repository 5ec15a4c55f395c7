#!/bin/sh
# The factory image's entrypoint. With no command (`docker-compose run --rm factory`), it builds: factory.py
# with CEXT/BUILD_REQ/RECIPE from the environment, then, when ARCHIVE names a folder (docker-compose.yml
# mounts one at /archive), copies every wheel the archive lacks there (archive.py: the original's rsync).
# With the build script's own flags (`--recipe …`: what the docker executor passes) it runs factory.py
# alone; the engine on the host archives. Any other command runs as given and nothing of ours is printed
# (`docker-compose run --rm factory bash`, `docker run FACTORY bash -c 'echo ok'`).
if [ "$#" -eq 0 ]; then
  /env/bin/python /opt/dstack-factory/factory.py || exit $?
  if [ -n "${ARCHIVE:-}" ]; then
    exec /env/bin/python /opt/dstack-factory/archive.py "${WHEELHOUSE:-/wheelhouse}" "$ARCHIVE"
  fi
  exit 0
fi
if [ "${1#-}" != "$1" ]; then
  exec /env/bin/python /opt/dstack-factory/factory.py "$@"
fi
exec "$@"
