# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""The certificate module's look at one certificate, for another module's call.

vault_pki_cert compares the host with its prerequisites, then keeps the certificate
(CertKeeper). ``check()`` does the same without changing anything: a module that runs
on the host anyway (envoy_platform) tells its role whether vault_pki_cert's call would
find anything to do, so that the role can leave out the vault_cert role on a host whose
certificate needs nothing (one module call and the role's checks less per host and run).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.mailmesh.imap.plugins.module_utils._host_state import (
    FILE_OPTIONS,
    compare,
    looks_at,
    mode_problem,
    observe,
)

__all__ = ["CERT_OPTIONS", "CHECK_OPTIONS", "arguments", "check", "compared", "keeper_options", "octal_mode"]

# vault_pki_cert's options for the certificate (that module's argument spec takes them
# from here).
CERT_OPTIONS = dict(
    common_name=dict(type="str", required=True),
    alt_names=dict(type="list", elements="str", default=[]),
    ip_sans=dict(type="list", elements="str", default=[]),
    ttl=dict(type="str"),
    renew_before=dict(type="str"),
    max_clock_skew=dict(type="str", default="5m"),
    cert_path=dict(type="path", required=True),
    key_path=dict(type="path", required=True, no_log=False),
    chain_path=dict(type="path"),
    fullchain_path=dict(type="path"),
    cert_mode=dict(type="raw", default="0644"),
    key_type=dict(type="str", default="ec", choices=["ec", "rsa"], no_log=False),
    key_bits=dict(type="int", no_log=False),
    rotate_key=dict(type="bool", default=False, no_log=False),
    force=dict(type="bool", default=False),
    prerequisites=dict(
        type="dict",
        options=dict(
            packages=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            files=dict(type="list", elements="dict", default=[], options=FILE_OPTIONS),
        ),
    ),
)

# What check() takes: vault_pki_cert's arguments for a call with approle_file, as the
# vault_cert role makes them (its __vault_cert_module_args), with the same types and
# defaults as that module's connection and file options (a unit test compares them).
CHECK_OPTIONS = dict(
    CERT_OPTIONS,
    approle_file=dict(type="path", required=True),
    ca_cert=dict(type="path"),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw"),
    # Only what a first call passes: nothing to start.
    units=dict(type="list", elements="dict", default=[]),
    daemon_reload=dict(type="bool", default=False),
)

# The connection options vault_pki_cert's argument spec gives a call with approle_file.
_CONNECTION = dict(validate_certs=True, timeout=30, namespace=None)


def octal_mode(value):
    """A mode given as octal digits (or an int) as an int; None for a symbolic mode,
    which set_fs_attributes_if_different applies afterwards."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text and all(char in "01234567" for char in text):
        return int(text, 8)
    return None


def keeper_options(params):
    """The renewal options (see CertKeeper) from vault_pki_cert's parameters."""
    key_mode = params["mode"] if params["mode"] is not None else "0600"
    return dict(
        engine_mount_point=params["engine_mount_point"],
        role_name=params["role_name"],
        common_name=params["common_name"],
        alt_names=params["alt_names"],
        ip_sans=params["ip_sans"],
        ttl=params["ttl"],
        renew_before=params["renew_before"],
        max_clock_skew=params["max_clock_skew"],
        key_type=params["key_type"],
        key_bits=params["key_bits"],
        rotate_key=params["rotate_key"],
        force=params["force"],
        cert_path=params["cert_path"],
        key_path=params["key_path"],
        chain_path=params["chain_path"],
        fullchain_path=params["fullchain_path"],
        owner=params["owner"],
        group=params["group"],
        key_mode=octal_mode(key_mode),
        cert_mode=octal_mode(params["cert_mode"]),
    )


def _file(path, owner, group, mode):
    return dict(path=path, state="file", sha256=None, target=None, entries=None, owner=owner, group=group, mode=mode)


def _answer(differences_found=(), reasons=(), problem=""):
    return dict(keep=not differences_found and not reasons and not problem,
                differences=list(differences_found), reasons=list(reasons), problem=problem)


def arguments(module, certificate):
    """The certificate option's value checked and with vault_pki_cert's defaults, or
    fail_json naming what is wrong."""
    validated = ArgumentSpecValidator(CHECK_OPTIONS).validate(dict(certificate))
    if validated.error_messages:
        module.fail_json(msg="certificate: %s" % "; ".join(validated.error_messages))
    params = validated.validated_parameters
    if params["units"] or params["daemon_reload"]:
        module.fail_json(msg="certificate: units and daemon_reload belong to the certificate module's own call")
    if not params["prerequisites"]:
        params["prerequisites"] = dict(files=[], packages=[], services=[])
    problem = mode_problem(params["prerequisites"]["files"], "certificate.prerequisites.files")
    if problem:
        module.fail_json(msg=problem)
    return params


def compared(params):
    """What check() compares the host with: the prerequisites, and the four files'
    owner, group and mode (as host_state's files, packages and services)."""
    key_mode = params["mode"] if params["mode"] is not None else "0600"
    wanted = params["prerequisites"]
    files = list(wanted["files"]) + [_file(params["key_path"], params["owner"], params["group"], key_mode)]
    files += [_file(params[name], params["owner"], params["group"], params["cert_mode"])
              for name in ("cert_path", "chain_path", "fullchain_path") if params[name]]
    return dict(files=files, packages=list(wanted["packages"]), services=list(wanted["services"]))


def check(module, params, seen=None):
    """What vault_pki_cert, called with ``params`` (from arguments()), would find.

    ``keep`` (true only when it would change nothing), ``differences`` (from the
    prerequisites, and the four files' owner, group and mode), ``reasons`` (why it would
    issue a certificate: CertKeeper's, in check mode) and ``problem`` (why it could not
    look: the call itself then reports it).

    ``seen``: what the caller's module already observed on the host (_host_state's
    observe(), with at least compared()'s packages and services), so that dpkg-query and
    systemctl run once per call; the files are looked at here. A dpkg-query or systemctl
    that failed does not fail the module (the caller's own checks speak first): what it
    did not see counts as a difference, and vault_pki_cert's own call then names it.
    """
    wanted = compared(params)
    if seen is None:
        seen = observe(module, files=looks_at(wanted["files"]), packages=wanted["packages"],
                       services=wanted["services"])
    else:
        seen = dict(seen, files=observe(module, files=looks_at(wanted["files"]))["files"])
    found = compare(seen, **wanted)
    if found:
        return _answer(differences_found=found)
    if params["force"]:
        return _answer(reasons=["forced"])
    # Only now the renewal code and with it cryptography: on a new host the comparison
    # above finds the libraries missing, and an interpreter that stays between tasks
    # (Mitogen) would keep a failed import of cryptography for the role's later calls,
    # after the role installed it.
    # pylint: disable=import-outside-toplevel
    from ansible_collections.mailmesh.imap.plugins.module_utils._cert_renewal import (
        CertKeeper,
        RenewalError,
        approle_options,
        read_approle_file,
    )
    from ansible_collections.mailmesh.imap.plugins.module_utils._vault_client import (
        MissingLibraryError,
        VaultConnection,
    )
    try:
        approle = read_approle_file(params["approle_file"])
    except RenewalError as exc:
        return _answer(problem=str(exc))
    module.no_log_values.add(str(approle["secret_id"]))
    connection_params = dict(_CONNECTION, **approle_options(approle))
    if params["ca_cert"]:
        connection_params["ca_cert"] = params["ca_cert"]
    options = keeper_options(dict(params, engine_mount_point=connection_params["engine_mount_point"],
                                  role_name=connection_params["role_name"]))
    keeper = CertKeeper(VaultConnection(connection_params), options, check_mode=True, warn=module.warn)
    try:
        outcome = keeper.run()
    except (RenewalError, MissingLibraryError) as exc:
        return _answer(problem=str(exc))
    except Exception as exc:  # pylint: disable=broad-except
        return _answer(problem="unexpected %s: %s" % (type(exc).__name__, exc))
    return _answer(reasons=outcome["reasons"])
