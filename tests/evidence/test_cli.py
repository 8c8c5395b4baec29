"""``interlock evidence`` as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.evidence.ledger import Ledger
from tests.evidence import tamper


def run(*args: str | Path, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(home / "xdg")}  # never the real user's ledger
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", "evidence", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
    )


def seed(path: Path, home: Path, n: int, **body: object) -> None:
    """Entries written through the API (each CLI run costs a Python start-up), same default key."""
    key = home / "xdg" / "interlock" / "keys" / "ledger-ed25519.pem"
    with Ledger(path, key=key) as led:
        led.extend([("alert", {"i": i, **body}) for i in range(n)], actor="seed")


def one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interlock: error:"), res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_default_ledger_and_key_live_in_the_user_data_folder(tmp_path: Path) -> None:
    res = run(
        "append", "--body", '{"note": "isolated PLC-3 from the WAN"}', "--actor", "alice", home=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("seq 1 hash ")
    res = run("checkpoint", home=tmp_path)
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "xdg" / "interlock"
    assert (folder / "ledger.sqlite").is_file() and (folder / "ledger.sqlite.checkpoints").is_file()
    assert (folder / "keys" / "ledger-ed25519.pem").stat().st_mode & 0o777 == 0o600
    assert (folder / "keys" / "ledger-ed25519.pub.pem").is_file()
    res = run("verify", home=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "intact: 1 entries" in res.stdout and "checkpoints: 1 verified" in res.stdout


def test_verify_names_the_first_bad_entry_after_a_byte_changes(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    for i in range(5):
        res = run(
            "append", "--ledger", ledger, "--kind", "alert", "--body", json.dumps({"i": i}), home=tmp_path
        )
        assert res.returncode == 0, res.stderr
    assert run("verify", "--ledger", ledger, home=tmp_path).returncode == 0
    tamper.flip(ledger, 3, "canonical", 20)
    res = run("verify", "--ledger", ledger, home=tmp_path)
    assert res.returncode == 1
    assert "TAMPERED: first bad entry seq 3: edited" in res.stdout


def test_anchor_from_checkpoint_catches_truncation(tmp_path: Path) -> None:
    ledger, anchor = tmp_path / "l.sqlite", tmp_path / "elsewhere" / "anchor.txt"
    anchor.parent.mkdir()
    seed(ledger, tmp_path, 4)
    res = run("checkpoint", "--ledger", ledger, "-o", anchor, home=tmp_path)
    assert res.returncode == 0 and json.loads(res.stdout)["seq"] == 4
    assert run("verify", "--ledger", ledger, "--anchor", anchor, home=tmp_path).returncode == 0
    # Roll back everything on this machine: the last entry, the checkpoint row, the side file.
    tamper.sql(ledger, "DELETE FROM entries WHERE seq = 4")
    tamper.sql(ledger, "DELETE FROM checkpoints")
    ledger.with_name(ledger.name + ".checkpoints").unlink()
    assert run("verify", "--ledger", ledger, home=tmp_path).returncode == 0  # the documented limit
    res = run("verify", "--ledger", ledger, "--anchor", anchor, home=tmp_path)
    assert res.returncode == 1 and "first bad entry seq 4: truncated" in res.stdout


def test_show_lists_entries(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    seed(ledger, tmp_path, 2)
    run("append", "--ledger", ledger, "--body", "-", home=tmp_path, stdin=json.dumps({"n": 2}))
    res = run("show", "--ledger", ledger, "--tail", "2", "--format", "jsonl", home=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [2, 3] and rows[1]["body"] == {"n": 2}
    assert rows[1]["prev_hash"] == rows[0]["hash"]


def test_corrupt_files_give_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.sqlite"
    seed(good, tmp_path, 60, pad="x" * 200)
    random_bytes = tmp_path / "random.sqlite"
    random_bytes.write_bytes(os.urandom(8192))
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    not_ledger = tmp_path / "other.sqlite"
    db = sqlite3.connect(not_ledger)
    db.execute("CREATE TABLE t (x)")
    db.close()
    for path, words in [
        (random_bytes, "not a readable ledger"),
        (truncated, "not a readable ledger"),
        (not_ledger, "not an Interlock ledger"),
        (empty, "empty database"),
        (tmp_path / "absent.sqlite", "no such ledger"),
        (tmp_path, "a folder"),
    ]:
        one_line_error(run("verify", "--ledger", path, home=tmp_path), str(path), words)
    one_line_error(run("show", "--ledger", truncated, home=tmp_path), "not a readable ledger")
    one_line_error(run("append", "--ledger", random_bytes, "--body", "{}", home=tmp_path), "not a readable")
    assert not (tmp_path / "absent.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("append", "--body", "{x"), "--body: not JSON"),
        (("append", "--body", "[1]"), "--body: a JSON object"),
        (("verify", "--anchor", "12:zz"), "--anchor 12:zz"),
        (("verify", "--pubkey", "/nonexistent.pub.pem"), "cannot read the public key"),
    ],
)
def test_bad_arguments_give_one_line_errors(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    seed(tmp_path / "xdg" / "interlock" / "ledger.sqlite", tmp_path, 1)
    one_line_error(run(*args, home=tmp_path), words)


def test_readable_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert run("key", "--key", key, home=tmp_path).returncode == 0
    key.chmod(0o644)
    seed(tmp_path / "l.sqlite", tmp_path, 1)
    one_line_error(
        run("checkpoint", "--ledger", tmp_path / "l.sqlite", "--key", key, home=tmp_path), "chmod 600"
    )
