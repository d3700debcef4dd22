# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mailmesh.imap maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This module_utils is PRIVATE and should only be used by this collection. Breaking
# changes can occur at any time.

"""Secrets engines and auth methods are both mounts: one table to read, one path to
enable, one ``tune`` endpoint. ``ensure_mount`` makes a mount match what a module wants,
changing only what differs, and honours check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mailmesh.imap.plugins.module_utils._vault_api import (
    api_delete,
    api_read,
    api_write,
)

__all__ = ["MountKind", "SECRETS_ENGINES", "AUTH_METHODS", "ensure_mount"]


class MountKind:
    """Where one kind of mount lives in the API and how the modules name its fields."""

    def __init__(self, table, type_key, noun, config_keys, replace_note):
        self.table = table  # sys/mounts or sys/auth
        self.type_key = type_key  # the module option that holds the mount's type
        self.noun = noun
        self.config_keys = config_keys  # tunable values kept under the mount's config
        self.replace_note = replace_note

    def describe(self, path, entry):
        config = entry.get("config") or {}
        live = {"path": path, self.type_key: entry.get("type"),
                "description": entry.get("description", "")}
        for key in self.config_keys:
            live[key] = int(config.get(key) or 0)
        return live


SECRETS_ENGINES = MountKind(
    "sys/mounts", "engine_type", "secrets engine", ("default_lease_ttl", "max_lease_ttl"),
    "removed first (state=absent), which destroys its data",
)
AUTH_METHODS = MountKind("sys/auth", "method_type", "auth method", (), "disabled first (state=absent)")


def live_mount(module, client, kind, path):
    """The mount at path as the module returns it, or None."""
    try:
        table = api_read(client, kind.table) or {}
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_vault(exc, "reading the %ss" % kind.noun)
    entry = table.get(path + "/")
    if not isinstance(entry, dict):
        return None
    return kind.describe(path, entry)


def ensure_mount(module, client, kind, path, mount_type, wanted, state):
    """Make the mount at path present (of mount_type, with the wanted values) or absent.

    ``wanted`` holds only the values the user set (``description`` and the kind's
    config keys, already normalised). Returns ``(changed, before, after)``.
    """
    before = live_mount(module, client, kind, path)
    api_path = "%s/%s" % (kind.table, path)

    if state == "absent":
        if before is not None and not module.check_mode:
            try:
                api_delete(client, api_path)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "removing the %s at %s" % (kind.noun, path))
        return before is not None, before, {}

    if before is None:
        after = {"path": path, kind.type_key: mount_type, "description": ""}
        after.update((key, 0) for key in kind.config_keys)
        after.update(wanted)
        if not module.check_mode:
            body = {"type": mount_type}
            if "description" in wanted:
                body["description"] = wanted["description"]
            config = {key: wanted[key] for key in kind.config_keys if key in wanted}
            if config:
                body["config"] = config
            try:
                api_write(client, api_path, body)
            except Exception as exc:  # pylint: disable=broad-except
                module.fail_vault(exc, "enabling the %s %s at %s" % (mount_type, kind.noun, path))
        return True, before, after

    if before[kind.type_key] != mount_type:
        module.fail_json(
            msg="a %s %s is already at %s on %s; %s=%s would need it %s"
            % (before[kind.type_key], kind.noun, path, module.url, kind.type_key, mount_type,
               kind.replace_note)
        )
    tune = {key: value for key, value in wanted.items() if before.get(key) != value}
    after = dict(before, **tune)
    if tune and not module.check_mode:
        try:
            api_write(client, api_path + "/tune", tune)
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_vault(exc, "tuning the %s at %s" % (kind.noun, path))
        after = live_mount(module, client, kind, path) or after
    return bool(tune), before, after
