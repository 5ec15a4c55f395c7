#!/bin/sh
# The factory image's entrypoint. With no command, or with the build script's own flags (`--recipe …`,
# `--from-wheel …`: what the docker executor passes), it builds: factory.py with CEXT/BUILD_REQ/RECIPE from
# the environment. Any other command runs as given and nothing of ours is printed
# (`docker-compose run --rm factory bash`, `docker run FACTORY bash -c 'echo ok'`).
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  exec /env/bin/python /opt/dstack-factory/factory.py "$@"
fi
exec "$@"
