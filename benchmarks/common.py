"""What every benchmark script shares: how it names the machine and how it publishes."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine() -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def publish(result: dict, table: str, json_path: str, markdown_path: str) -> None:
    """Print the markdown table and write it and the full result (JSON) to their files."""
    print(table)
    for path, text in ((json_path, json.dumps(result, indent=2)), (markdown_path, table)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
