#!/usr/bin/env python3
"""The archive step of the compose door (the original's `rsync -av /wheelhouse/ /archive` after a build).

`archive.py WHEELHOUSE ARCHIVE`: every wheel of WHEELHOUSE whose name ARCHIVE lacks is copied there: to a
hidden temp file, checked (a readable zip whose members' CRCs match, the same sha256 as the source), then
renamed into place, so pip reading the archive as find-links never sees half a wheel. Names already there
are left alone. Prints one line per copied wheel and a summary. The CLI door does the same in
@dstack/engine (archiveWheels), after its own ingest.
"""

import hashlib
import os
import shutil
import sys
import zipfile


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def archive(wheelhouse, dest):
    os.makedirs(dest, exist_ok=True)
    have = set(f for f in os.listdir(dest) if f.endswith(".whl"))
    copied = present = 0
    for name in sorted(os.listdir(wheelhouse)):
        if not name.endswith(".whl") or not os.path.isfile(os.path.join(wheelhouse, name)):
            continue
        if name in have:
            present += 1
            continue
        src = os.path.join(wheelhouse, name)
        temp = os.path.join(dest, ".%s.%d.tmp" % (name, os.getpid()))
        try:
            shutil.copyfile(src, temp)
            with zipfile.ZipFile(temp) as z:
                bad = z.testzip()
                if bad is not None:
                    raise ValueError("member %s fails its CRC" % bad)
            if sha256(temp) != sha256(src):
                raise ValueError("the copy differs from %s" % src)
            with open(temp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(temp, os.path.join(dest, name))
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            if os.path.exists(temp):
                os.unlink(temp)
            sys.stderr.write("archive: %s not copied to %s: %s\n" % (name, dest, e))
            return 1
        copied += 1
        print("archived %s" % name)
    print("archive: %d copied, %d present" % (copied, present))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write("usage: archive.py WHEELHOUSE ARCHIVE\n")
        sys.exit(2)
    sys.exit(archive(sys.argv[1], sys.argv[2]))
