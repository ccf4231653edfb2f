"""Markdown import: the sample folder, idempotent re-imports, per-file errors that stop nothing."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policies.vocabulary import DocumentKind, Sensitivity
from sharing import clients, documents
from sharing.importer import import_markdown, parse_markdown
from sharing.tables import AuditEvent, Document, DocumentRevision
from tenants.errors import Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor, ActorKind
from tenants.root_key import EnvRootKey
from tests.helpers import make_tenant

SAMPLES = Path(__file__).resolve().parents[2] / "gateway" / "sample_docs"


@pytest.fixture
async def msp(db):
    tenant = await make_tenant("msp")
    actor = Actor(
        kind=ActorKind.SYSTEM, id=None, label="import", tenant_id=tenant.id, tenant_kind=tenant.kind
    )
    for name, code in (("Contoso Ltd", "CONTOSO"), ("Fabrikam Inc", "FABRIKAM")):
        await clients.create_client(actor, name=name, short_code=code)
    keyring = KeyRing(EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode()))
    return tenant, actor, keyring


async def test_sample_folder_imports_and_reimports_without_duplicates(msp, tmp_path: Path) -> None:
    tenant, actor, keyring = msp
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLES, folder)
    progress: list[tuple[int, int, str]] = []
    report = await import_markdown(actor, keyring, folder, progress=lambda *a: progress.append(a))
    assert (report.created, report.updated, report.unchanged, report.errors) == (9, 0, 0, [])
    assert progress[-1][:2] == (9, 9)
    credential = next(
        item
        for item in (
            await documents.list_documents(actor, keyring, documents.DocumentFilters())
        ).items
        if item.kind is DocumentKind.CREDENTIAL
    )
    assert credential.sensitivity is Sensitivity.SECRET
    opened = await documents.get_document(actor, keyring, credential.id)
    assert opened.fields is not None
    assert opened.fields.username == "netadmin"

    again = await import_markdown(actor, keyring, folder)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 9)
    assert await Document.count().where(Document.tenant_id == tenant.id) == 9
    assert await DocumentRevision.count().where(DocumentRevision.tenant_id == tenant.id) == 9

    outage = folder / "contoso" / "core-switch-outage.md"
    outage.write_text(outage.read_text() + "\n## Added after review\n")
    changed = await import_markdown(actor, keyring, folder)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 8)
    assert await DocumentRevision.count().where(DocumentRevision.tenant_id == tenant.id) == 10
    summaries = (
        await AuditEvent.select()
        .where((AuditEvent.tenant_id == tenant.id) & (AuditEvent.action == "document:imported"))
        .output(load_json=True)
    )
    assert [s["context"]["created"] for s in summaries] == ["9", "0", "0"]


BAD_FILES = {
    "latin1.md": b"---\nkind: sop\n---\nCaf\xe9 menu\n",
    "no-front-matter.md": b"# Just a heading\n",
    "unclosed.md": b"---\nkind: sop\n# never closed\n",
    "unknown-client.md": b"---\nkind: sop\nclient: INITECH\n---\nbody\n",
    "unknown-kind.md": b"---\nkind: passwords\n---\nbody\n",
    "standard-credential.md": b"---\nkind: credential\nsensitivity: standard\npassword: x\n---\n",
    "unknown-key.md": b"---\nkind: sop\ncolour: red\n---\nbody\n",
    "fields-on-sop.md": b"---\nkind: sop\npassword: hunter2\n---\nbody\n",
    "huge.md": b"---\nkind: sop\n---\n" + b"a" * (1024 * 1024 + 10),
}


async def test_bad_files_are_reported_one_by_one_and_good_ones_still_import(
    msp, tmp_path: Path
) -> None:
    tenant, actor, keyring = msp
    for name, raw in BAD_FILES.items():
        (tmp_path / name).write_bytes(raw)
    (tmp_path / "good.md").write_text(
        "---\nkind: runbook\nclient: contoso\ntags: [a, b]\n---\n# Good one\n"
    )
    report = await import_markdown(actor, keyring, tmp_path)
    assert report.created == 1
    problems = dict(report.errors)
    assert set(problems) == set(BAD_FILES)
    assert "UTF-8" in problems["latin1.md"]
    assert "front matter" in problems["no-front-matter.md"]
    assert "INITECH" in problems["unknown-client.md"]
    assert "passwords" in problems["unknown-kind.md"]
    assert "always secret" in problems["standard-credential.md"]
    assert "colour" in problems["unknown-key.md"]
    assert "credential" in problems["fields-on-sop.md"]
    assert "bytes" in problems["huge.md"]
    page = await documents.list_documents(actor, keyring, documents.DocumentFilters())
    assert [(item.title, item.tags) for item in page.items] == [("Good one", ["a", "b"])]
    assert await DocumentRevision.count().where(DocumentRevision.tenant_id == tenant.id) == 1


def test_front_matter_parsing() -> None:
    parsed = parse_markdown(
        b'\xef\xbb\xbf---\r\ntitle: "Quoted: title"\r\nkind: SOP\r\ntags: x, y\r\n---\r\nBody\r\n',
        "fallback",
    )
    assert (parsed.kind, parsed.content.title, parsed.tags) == (
        DocumentKind.SOP,
        "Quoted: title",
        ["x", "y"],
    )
    assert parsed.content.body == "Body"
    assert (
        parse_markdown(b"---\nkind: note\n---\nno heading\n", "from name").content.title
        == "from name"
    )
    with pytest.raises(Invalid, match="line 2"):
        parse_markdown(b"---\nno colon here\n---\n", "x")


def test_cli_import_prints_progress_summary_and_fails_on_bad_files(
    tmp_path: Path, settings
) -> None:
    if settings.database_kind != "sqlite":
        pytest.skip("the CLI test runs on its own SQLite file")
    shiftgate = str(Path(sys.executable).parent / "shiftgate")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL"} and not key.startswith("SHIFTGATE_")
    }
    env.update(SHIFTGATE_VAR_DIR=str(tmp_path / "var"), PICCOLO_CONF="gateway.piccolo_conf")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [shiftgate, *args], env=env, capture_output=True, text=True, timeout=120
        )

    assert run("init").returncode == 0
    assert run("demo").returncode == 0
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLES / "contoso", folder)
    (folder / "broken.md").write_bytes(b"---\nkind: sop\nclient: NOBODY\n---\n")
    result = run("import", "markdown", str(folder), "--tenant", "northwind")
    assert result.returncode == 1
    assert "broken.md: unknown client 'NOBODY'" in result.stderr
    assert "importing [" in result.stderr
    assert "Traceback" not in result.stderr
    assert "6 created" in result.stdout
    assert "1 failed" in result.stdout
    missing = run("import", "markdown", str(tmp_path / "nope"), "--tenant", "northwind")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("shiftgate: ")
    assert len(missing.stderr.strip().splitlines()) == 1
