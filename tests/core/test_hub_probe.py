"""A machine without the Hub, as a new user meets it (no HF_HUB_OFFLINE set): one probe finds it
out, and `iqa run` / `iqa check` say so in the project's words, without huggingface_hub's
retries. The Hub endpoint is pointed at a closed local port, so the result does not depend on
the network of the machine running the suite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("transformers")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: connections are refused


def iqa(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path / "hf")}
    cmd = [sys.executable, "-m", "iqa_core", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)


def test_run_without_the_hub_says_so_once_and_names_the_model(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 48), (120, 30, 40)).save(tmp_path / "a.png")
    recipe = {
        "segmenter": {"name": "whole"},
        "scorers": [{"name": "janus_pro", "params": {"model": "org/Some-VLM", "device": "cpu"}}],
        "standard": {"name": "word", "params": {"levels": 5}},
        "runtime": {"store": None},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    proc = iqa(tmp_path, "run", "--recipe", "r.yaml", "a.png", "-o", "out.csv")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot load model 'org/Some-VLM': the Hugging Face Hub (http://127.0.0.1:")
    assert "cannot be reached from this machine" in lines[0] and "no copy of 'org/Some-VLM'" in lines[0]
    assert "--local-dir DIR" in lines[0]  # how to point at a local copy
    assert "LocalEntryNotFoundError" not in proc.stderr and "Retrying" not in proc.stderr


def test_check_without_the_hub_says_it_cannot_be_reached(tmp_path: Path) -> None:
    proc = iqa(tmp_path, "check", "llm_iqa")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("segmenter", "scorer"))]
    assert len(rows) == 3
    for row in rows:
        assert "missing" in row and "the Hugging Face Hub (http://127.0.0.1:" in row and "cannot be reached" in row
    assert "ConnectError" not in proc.stdout and "Retrying" not in proc.stderr


def test_the_probe_runs_once_and_turns_huggingface_hub_offline(monkeypatch) -> None:
    from huggingface_hub import constants

    from iqa_core import weights

    asked: list[str] = []

    class Refusing:
        def head(self, url: str, timeout: float) -> None:
            asked.append(url)
            raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.get_session", lambda: Refusing())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    weights._probe_hub.cache_clear()
    try:
        first, second = weights.hub_unreachable(), weights.hub_unreachable()
        assert first == second and "cannot be reached from this machine (" in first and "refused" in first
        assert asked == [constants.ENDPOINT] and constants.is_offline_mode()
    finally:
        weights._probe_hub.cache_clear()
