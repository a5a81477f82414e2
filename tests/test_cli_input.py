"""Bad command-line input to the long-running commands: one line naming the flag, exit 2, nothing started."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

AGENT = ["--token", "t", "--version-tag", "v2.34.4"]
AGENTS = ["--url", "http://127.0.0.1:9", "--version-tag", "v2.34.4"]


@pytest.mark.parametrize(("argv", "message"), [
    (["serve", "--version-tag", "v2.33.9", "--log", "{file}/x"], "--log {file}/x: not a directory"),
    (["serve", "--version-tag", "v2.33.9", "--log", ""], "--log .: is a directory"),
    (["serve", "--version-tag", "v2.33.9", "--heartbeat", "nan"], "--heartbeat nan: must be between"),
    (["serve", "--version-tag", "v2.33.9", "--port", "70000"], "--port 70000: not a TCP port"),
    (["agent", "--url", "http://127.0.0.1:9", "--token", "a\nb", "--version-tag", "v2.34.4"],
     "--token: 'a\\nb' is not a token"),
    (["agent", "--url", "http://127.0.0.1:9", "--token", "", "--version-tag", "v2.34.4"], "--token: '' is not a token"),
    (["serve", "--version-tag", "v2.99.0"], "give its variant too, e.g. --version-tag v2.99.0 --variant V3"),
    (["agent", "--url", "http://127.0.0.1:9", "--token", "t", "--version-tag", "v2.99.0"],
     "give its variant too, e.g. --version-tag v2.99.0 --variant V3"),
    (["agent", "--url", "http://[::1", *AGENT], "--url 'http://[::1': expected http://HOST"),
    (["agent", "--url", "http://127.0.0.1:99999", *AGENT], "--url 'http://127.0.0.1:99999'"),
    (["agent", "--url", "http://127.0.0.1:9", *AGENT, "--log", "{file}/x"], "--log {file}/x: not a directory"),
    (["agent", "--url", "http://127.0.0.1:9", "--token", "t", "--version-tag", "v2.2.0"], "has no reinit loop"),
    (["agents", *AGENTS, "--tokens", "{binary}"], "not a text file of tokens (not UTF-8)"),
    (["agents", *AGENTS, "--tokens", "{file}"], "--tokens {file}: no tokens in the file"),
    (["agents", *AGENTS, "--count", "0", "--admin-token", "a"], "--count 0: must be between 1 and 5000"),
    (["agents", *AGENTS, "--count", "100000000", "--admin-token", "a"], "--count 100000000: must be between"),
    (["agents", *AGENTS, "--count", "3"], "--count needs --admin-token"),
    (["agents", *AGENTS, "--count", "3", "--admin-token", "a", "--duration", "-1"], "--duration -1: must be"),
    (["agents", *AGENTS, "--count", "3", "--admin-token", "a", "--log", "{file}/x"], "--log {file}/x: not a dir"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    empty, binary = tmp_path / "a-file", tmp_path / "binary"
    empty.write_text("")
    binary.write_bytes(b"\xff\xfe\x00tok\n")
    fill = {"file": empty, "binary": binary}
    r = subprocess.run([sys.executable, "-m", "harness", *(a.format(**fill) for a in argv)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert message.format(**fill) in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""  # nothing started: no ready line, no status line


def test_serve_on_a_busy_port_is_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "harness", "serve", "--version-tag", "v2.33.9", "--port", str(port)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"harness serve: error: --port {port}: Address already in use"
    assert r.stdout == ""
