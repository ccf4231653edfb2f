"""`shiftgate audit export` and `shiftgate audit verify-export`, run as a user runs them: the
real console script on its own SQLite file (see `test_cli.py`), the verifier with nothing but
the file."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.gateway.test_cli import Shiftgate

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-format.md"


@pytest.fixture
def sg(tmp_path: Path) -> Shiftgate:
    home = tmp_path / "home"
    home.mkdir()
    return Shiftgate(home)


@pytest.fixture
def seeded(sg: Shiftgate) -> Shiftgate:
    sg.ok("init")
    sg.ok("demo")
    return sg


def _export(sg: Shiftgate, out: Path, *args: str) -> str:
    run = sg.ok("audit", "export", "--tenant", "northwind", "--out", str(out), *args)
    return run.stdout


def _offline(sg: Shiftgate) -> Shiftgate:
    """A machine with the file only: no database, no root key, settings that would not load."""
    bare = Shiftgate(sg.home.parent / "auditor")
    bare.home.mkdir(exist_ok=True)
    bare.env["DATABASE_URL"] = "mysql://nowhere"
    bare.env["SHIFTGATE_ROOT_KEY"] = "not a key"
    return bare


def test_an_export_written_by_the_cli_verifies_offline(seeded: Shiftgate, tmp_path: Path) -> None:
    out = tmp_path / "northwind.jsonl"
    [(northwind,)] = seeded.query("SELECT id FROM tenants WHERE slug = 'northwind'")
    stored = seeded.count("audit_events", "tenant_id = ?", northwind)

    summary = _export(seeded, out)

    assert summary == f"exported {stored} events of northwind (seq 1 to {stored}) to {out}\n"
    assert not list(tmp_path.glob("*.partial"))
    lines = out.read_bytes().splitlines()
    header = json.loads(lines[0])
    assert header["tenant_id"] == northwind
    assert header["to_seq"] == stored
    assert seeded.query(
        "SELECT actor_label, seq FROM audit_events WHERE tenant_id = ? AND action = ?",
        northwind,
        "audit:exported",
    ) == [("cli audit export", stored + 1)]

    auditor = _offline(seeded)
    run = auditor.ok("audit", "verify-export", str(out))

    [key] = [json.loads(line) for line in lines if b'"record":"key"' in line]
    assert run.stdout == (
        f"verified {stored} events, 1 checkpoint, signed by key {key['key_id']} "
        f"(Ed25519 {key['public_key']}); tenant {northwind}, seq 1 to {stored}\n"
    )
    assert list(auditor.home.iterdir()) == []  # nothing created: no database, no key file
    pinned = auditor.ok("audit", "verify-export", str(out), "--trust-key", key["public_key"])
    assert "trusted" in pinned.stdout


def test_a_tampered_export_is_one_line_naming_the_event(seeded: Shiftgate, tmp_path: Path) -> None:
    out = tmp_path / "northwind.jsonl"
    _export(seeded, out)
    lines = out.read_bytes().splitlines(keepends=True)
    lines[3] = re.sub(rb'"actor_label":"[^"]*"', b'"actor_label":"someone else"', lines[3])
    out.write_bytes(b"".join(lines))

    run = _offline(seeded)("audit", "verify-export", str(out))

    assert run.error_line() == "shiftgate: event 3 altered: its contents do not match its hash"
    assert run.returncode == 1
    assert run.stdout == ""


def test_a_truncated_export_is_named_cut(seeded: Shiftgate, tmp_path: Path) -> None:
    out = tmp_path / "northwind.jsonl"
    _export(seeded, out)
    out.write_bytes(out.read_bytes()[:-200])

    line = _offline(seeded)("audit", "verify-export", str(out)).error_line()

    assert line.startswith("shiftgate: export cut: the file ends "), line


def test_a_key_other_than_the_pinned_one_is_refused(seeded: Shiftgate, tmp_path: Path) -> None:
    out = tmp_path / "northwind.jsonl"
    _export(seeded, out)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    pinned = base64.urlsafe_b64encode(other).rstrip(b"=").decode()

    line = _offline(seeded)("audit", "verify-export", str(out), "--trust-key", pinned).error_line()

    assert re.fullmatch(
        r"shiftgate: checkpoint \d+ forged: it is signed by key \S+, which is not among the trusted keys",
        line,
    ), line


def test_an_export_to_standard_output_keeps_the_summary_on_stderr(seeded: Shiftgate) -> None:
    run = seeded("audit", "export", "--tenant", "northwind", "--out", "-")

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith('{"record":"header"')
    assert re.fullmatch(
        r"exported \d+ events of northwind \(seq 1 to \d+\) to standard output\n", run.stderr
    )
    path = seeded.home / "piped.jsonl"
    path.write_text(run.stdout)
    assert seeded.ok("audit", "verify-export", str(path)).stdout.startswith("verified ")
    assert "verified " in seeded.ok("audit", "verify-export", "-", stdin=run.stdout).stdout


def test_a_time_range_export_verifies(seeded: Shiftgate, tmp_path: Path) -> None:
    out = tmp_path / "range.jsonl"
    rows = seeded.query(
        "SELECT e.occurred_at FROM audit_events e JOIN tenants t ON t.id = e.tenant_id"
        " WHERE t.slug = 'northwind' ORDER BY e.seq"
    )
    since = str(rows[len(rows) // 2][0]).replace(" ", "T")
    summary = _export(seeded, out, "--since", since, "--until", "2100-01-01T00:00:00+01:00")

    assert summary.startswith("exported ")
    header = json.loads(out.read_bytes().splitlines()[0])
    assert header["until"] == "2099-12-31T23:00:00.000000Z"
    assert seeded.ok("audit", "verify-export", str(out)).stdout.startswith("verified ")

    empty = tmp_path / "empty.jsonl"
    run = _export(seeded, empty, "--since", "2099-01-01T00:00:00Z")
    assert "exported 0 events of northwind (none in the time range)" in run
    assert "verified 0 events" in seeded.ok("audit", "verify-export", str(empty)).stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tenant", "nowhere"], "nowhere"),
        (["--tenant", "northwind", "--since", "last tuesday"], "--since 'last tuesday'"),
        (["--tenant", "northwind", "--until", "2026-12-01"], "UTC offset"),
        (
            [
                "--tenant",
                "northwind",
                "--since",
                "2026-12-02T00:00Z",
                "--until",
                "2026-12-01T00:00Z",
            ],
            "before",
        ),
    ],
)
def test_bad_export_input_is_one_line_and_writes_no_file(
    seeded: Shiftgate, tmp_path: Path, args: list[str], says: str
) -> None:
    out = tmp_path / "x.jsonl"
    before = seeded.count("audit_events", "action = 'audit:exported'")

    line = seeded("audit", "export", *args, "--out", str(out)).error_line()

    assert says in line
    assert list(tmp_path.glob("x.jsonl*")) == []
    assert seeded.count("audit_events", "action = 'audit:exported'") == before


@pytest.mark.parametrize("target", ["missing-dir/x.jsonl", "."])
def test_an_unwritable_path_is_one_line(seeded: Shiftgate, tmp_path: Path, target: str) -> None:
    line = seeded(
        "audit", "export", "--tenant", "northwind", "--out", str(tmp_path / target)
    ).error_line()
    assert line.startswith("shiftgate: cannot write ")
    assert seeded.count("audit_events", "action = 'audit:exported'") == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["no-such-file.jsonl"], "cannot read no-such-file.jsonl: No such file"),
        (["."], "cannot read .: Is a directory"),
        (["x.jsonl", "--trust-key", "abc"], "not an Ed25519 public key"),
    ],
)
def test_bad_verify_input_is_one_line(sg: Shiftgate, args: list[str], says: str) -> None:
    (sg.home / "x.jsonl").write_text("")
    line = _offline(sg)("audit", "verify-export", *args).error_line()
    assert says in line


def test_an_empty_or_foreign_file_is_malformed(sg: Shiftgate) -> None:
    for content, says in (("", "empty"), ("id,action\n1,x\n", "header")):
        path = sg.home / "x.jsonl"
        path.write_text(content)
        line = sg("audit", "verify-export", str(path)).error_line()
        assert line.startswith("shiftgate: line 1 malformed: "), line
        assert says in line


def test_the_documented_example_and_output_are_what_the_command_does(sg: Shiftgate) -> None:
    text = DOC.read_text(encoding="utf-8")
    example = re.search(r"<!-- example-export -->\s*```text\n(.*?)```", text, re.DOTALL)
    assert example
    success = re.search(r"prints one line and exits 0:\s*```text\n(.*?)```", text, re.DOTALL)
    failure = re.search(r"prints the failure and exits 1:\s*```text\n(.*?)```", text, re.DOTALL)
    assert success and failure
    path = sg.home / "example.jsonl"
    path.write_text(example.group(1), encoding="utf-8")

    assert sg.ok("audit", "verify-export", str(path)).stdout == success.group(1)

    path.write_text(example.group(1).replace("203.0.113.7", "203.0.113.8"), encoding="utf-8")
    assert sg("audit", "verify-export", str(path)).error_line() + "\n" == failure.group(1)
