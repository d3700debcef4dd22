"""Check a Vault/OpenBao raft snapshot file (playbooks/vault_backup.yml).

A raft snapshot is a gzip-compressed tar archive: meta.json (index, term), state.bin
(the data), SHA256SUMS (the sha256 of both) and SHA256SUMS.sealed (those sums signed
with the server's keys, checked by the server on restore). This checks, without the
server: the archive reads to the end, SHA256SUMS lists meta.json and state.bin, and
every listed member has that sha256. Prints one line; exit status 1 on any problem.
"""

import hashlib
import json
import sys
import tarfile

REQUIRED = ("meta.json", "state.bin")


def check(path):
    """Returns a one-line description of a sound snapshot; raises ValueError otherwise."""
    digests, sizes, meta, sums = {}, {}, {}, None
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                data = archive.extractfile(member).read()
                digests[member.name] = hashlib.sha256(data).hexdigest()
                sizes[member.name] = len(data)
                if member.name == "SHA256SUMS":
                    sums = data.decode("ascii")
                elif member.name == "meta.json":
                    meta = json.loads(data)
    except (OSError, EOFError, tarfile.TarError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a readable raft snapshot archive: %s" % exc) from exc
    if sums is None:
        raise ValueError("no SHA256SUMS in the archive (members: %s)" % ", ".join(sorted(digests)))
    listed = {}
    for line in sums.splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            listed[name.strip()] = digest.lower()
    missing = [name for name in REQUIRED if name not in listed]
    if missing:
        raise ValueError("SHA256SUMS does not list %s" % ", ".join(missing))
    for name, digest in sorted(listed.items()):
        if digests.get(name) != digest:
            raise ValueError("%s: sha256 %s, SHA256SUMS says %s" % (name, digests.get(name, "(missing)"), digest))
    return "archive sound: %s checked against SHA256SUMS, state.bin %d bytes, raft index %s, term %s" % (
        ", ".join(sorted(listed)), sizes["state.bin"], meta.get("Index", "?"), meta.get("Term", "?"))


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: raft_snapshot_check.py <snapshot file>\n")
        return 2
    try:
        print(check(sys.argv[1]))
    except ValueError as exc:
        sys.stderr.write("%s: %s\n" % (sys.argv[1], exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
