"""Lab smoke check: one IMAP session as a lab user, reading the lab's welcome message.

Run by playbooks/lab-smoke.yml with python3 on an edge device (plain IMAP to the
device's Envoy on 127.0.0.1:143, which carries it through a gateway and the store's
Envoy ingress to Dovecot) and on the controller (IMAPS on the published port of a
gateway, verified against the lab CA). The password comes on stdin, never in argv.

It logs in, looks for the welcome message in INBOX and, only when there is none and
--append is given, APPENDs it; then it FETCHes the message (BODY.PEEK: no flag
changes) and checks its subject. A second run changes nothing. Output: one JSON
object on stdout ({"appended": bool, "uid": ...}); on any failure the step that failed,
on stderr, and exit status 1.
"""

import argparse
import email.utils
import imaplib
import json
import ssl
import sys

SUBJECT = "Welcome to the mailmesh lab"


class StepFailed(Exception):
    """An IMAP answer that is not OK."""


def _ok(answer, step):
    typ, data = answer
    if typ != "OK":
        raise StepFailed("%s answered %s %r" % (step, typ, data))
    return data


def _welcome_uids(imap):
    data = _ok(imap.uid("SEARCH", "SUBJECT", '"%s"' % SUBJECT), "UID SEARCH")
    return data[0].split() if data and data[0] else []


def _message(user, via):
    return (
        "From: mailmesh lab <lab@example.test>\r\n"
        "To: %s\r\n"
        "Subject: %s\r\n"
        "Date: %s\r\n"
        "Message-ID: %s\r\n"
        "\r\n"
        "This mailbox was reached through the whole mailmesh chain (%s).\r\n"
        % (user, SUBJECT, email.utils.formatdate(), email.utils.make_msgid("lab"), via)
    ).encode()


def _connect(args):
    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
        return imaplib.IMAP4_SSL(args.address, args.port, ssl_context=context, timeout=args.timeout)
    return imaplib.IMAP4(args.address, args.port, timeout=args.timeout)


def run(args, password):
    """One session; returns the result dict. Sets args.step to what it is doing."""
    result = {"host": args.host_label, "user": args.user, "appended": False}
    args.step = "connect to %s:%d" % (args.address, args.port)
    imap = _connect(args)
    args.step = "LOGIN"
    _ok(imap.login(args.user, password), "LOGIN")
    args.step = "SELECT INBOX"
    _ok(imap.select("INBOX", readonly=not args.append), "SELECT INBOX")
    args.step = "search for the welcome message"
    uids = _welcome_uids(imap)
    if not uids and args.append:
        args.step = "APPEND the welcome message"
        _ok(imap.append("INBOX", None, None, _message(args.user, args.host_label)), "APPEND")
        result["appended"] = True
        args.step = "search for the appended welcome message"
        uids = _welcome_uids(imap)
    if not uids:
        raise StepFailed("no message with subject %r in INBOX" % SUBJECT)
    args.step = "FETCH the welcome message"
    data = _ok(imap.uid("FETCH", uids[0], "(BODY.PEEK[])"), "UID FETCH")
    body = data[0][1] if data and isinstance(data[0], tuple) else b""
    if ("Subject: %s" % SUBJECT).encode() not in body:
        raise StepFailed("UID FETCH %s returned no welcome message: %r" % (uids[0].decode(), data))
    result.update(uid=int(uids[0]), messages=len(uids), size=len(body))
    args.step = "LOGOUT"
    imap.logout()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-label", required=True, help="where this runs (for messages)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=143)
    parser.add_argument("--cafile", help="IMAPS, verified against this CA bundle")
    parser.add_argument("--user", required=True)
    parser.add_argument("--append", action="store_true", help="APPEND the welcome message if missing")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    args.step = "read the password from stdin"
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        result = run(args, password)
    except (OSError, imaplib.IMAP4.error, StepFailed) as exc:
        sys.stderr.write(
            "lab smoke check FAILED on %s, user %s, step '%s': %s: %s\n"
            % (args.host_label, args.user, args.step, type(exc).__name__, exc)
        )
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
