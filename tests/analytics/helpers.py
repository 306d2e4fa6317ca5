"""Running ``journey`` in-process, as the e2e tests do."""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.cli import main


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err
