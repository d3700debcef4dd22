"""Documentation for someone who installed the tarball: links that resolve inside it,
playbooks by FQCN, a README for every role, the example inventory reachable from the
installed collection, and the plugin and role docs clean for antsibull-docs."""

from __future__ import annotations

import json
import re

from ansible_collections.mailmesh.imap.tests.unit.packaging._support import (
    REPO,
    broken_links,
    clean_env,
    markdown_anchors,
    markdown_links,
    run,
    tool,
)

# antsibull-docs findings waiting for a fix in files this change does not own, each with
# the fix. The test fails on any other finding, and when one of these is gone (then
# delete it here).
ANTSIBULL_DOCS_PENDING: dict[tuple[str, str], str] = {}


def test_markdown_helpers():
    text = "# A `b` c: d\n\n[x](y.md#a-b-c-d) `[no](link)`\n```\n[no](link)\n```\n[r]: ref.md\n## A `b` c: d\n"
    assert markdown_links(text) == ["y.md#a-b-c-d", "ref.md"]
    assert markdown_anchors(text) == {"a-b-c-d", "a-b-c-d-1"}
    documents = {"docs/a.md": "[up](../README.md) [gone](../nope.md) [here](#x)\n# X\n", "README.md": ""}
    assert broken_links(documents, lambda p: p in ("README.md", "docs/a.md", "docs", "")) == [
        "docs/a.md: link to ../nope.md: no such file in it"]


def test_shipped_markdown_links_resolve_inside_the_tarball(tarball):
    documents = {name: text for name, text in tarball.texts.items() if name.endswith(".md")}
    assert "README.md" in documents and "roles/dovecot/README.md" in documents
    problems = broken_links(documents, tarball.exists)
    assert not problems, "\n".join(problems)


def test_repository_markdown_links_resolve():
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=str(REPO))
    assert listed.returncode == 0, listed.stderr
    documents = {name: (REPO / name).read_text(encoding="utf-8") for name in listed.stdout.split()}
    problems = broken_links(documents, lambda path: (REPO / path).exists())
    assert not problems, "\n".join(problems)


def test_every_role_has_a_readme():
    for role in sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir()):
        readme = REPO / "roles" / role / "README.md"
        assert readme.is_file(), role
        text = readme.read_text(encoding="utf-8")
        assert text.startswith("# mailmesh.imap.%s\n" % role), role
        assert "ansible-doc -t role mailmesh.imap.%s" % role in text, role
        assert re.search(r"```yaml\n(?:[^`]*\n)?- name: [^\n]*\n\s+hosts: ", text), "%s: no example play" % role


def test_shipped_docs_call_playbooks_by_fqcn(tarball):
    """The user docs name the playbooks as a user of the installed collection runs them,
    never by a path in a checkout; the README names every one."""
    playbooks = sorted(re.fullmatch(r"playbooks/([^/]+)\.yml", n).group(1)
                       for n in tarball.files if re.fullmatch(r"playbooks/[^/]+\.yml", n))
    readme = tarball.texts["README.md"]
    for playbook in playbooks:
        assert "mailmesh.imap.%s" % playbook in readme, playbook
    by_path = [
        "%s: %s" % (name, match)
        for name, text in sorted(tarball.texts.items()) if name.endswith(".md")
        for match in re.findall(r"(?:ansible-playbook[^\n`]*\s|`)(playbooks/[\w-]+\.yml)", text)
    ]
    assert not by_path, "playbooks by path in the shipped docs:\n" + "\n".join(by_path)


def test_readme_tells_where_the_example_inventory_is(tarball):
    readme = tarball.texts["README.md"]
    assert "ansible_collections/mailmesh/imap/inventories/example" in readme
    assert "inventories/example/README.md" in readme
    assert "inventories/example/hosts.yml" in tarball.files


def test_antsibull_docs_lint_collection_docs():
    """`antsibull-docs lint-collection-docs --plugin-docs` on the checkout: the markup of
    every plugin's and role's documentation, and the collection's docs."""
    done = run([tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", "--message-format", "json", "."],
               env=clean_env(), cwd=str(REPO))
    assert done.returncode in (0, 3), done.stdout + done.stderr
    found = {(m["path"], m["message"]) for m in json.loads(done.stdout)["messages"]}
    new = sorted(found - set(ANTSIBULL_DOCS_PENDING))
    assert not new, "antsibull-docs findings:\n" + "\n".join("%s: %s" % item for item in new)
    fixed = sorted(set(ANTSIBULL_DOCS_PENDING) - found)
    assert not fixed, "fixed now, remove from ANTSIBULL_DOCS_PENDING: %s" % fixed
