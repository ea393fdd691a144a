"""Print what a checkpoint says about itself, as JSON: ``python -m games.checkpoint_info PATH``.

Run as its own process by `register_partner` and the evolution (docs/evolution.md), so that torch
is loaded there and never in a web or scoring process, which need not have it installed.
"""

from __future__ import annotations

import json
import sys

import torch


def describe(path: str) -> dict:
    """The version, class list, architecture and stored evaluation of a checkpoint of ours."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # uploads may carry pickled code
    config = checkpoint.get("config") or {}
    return {
        "version": str(checkpoint.get("version", "")),
        "classes": [str(name) for name in checkpoint.get("classes", [])],
        "architecture": str(config.get("arch", "")),
        "evaluation": (checkpoint.get("metrics") or {}).get("evaluation"),
    }


if __name__ == "__main__":
    print(json.dumps(describe(sys.argv[1])))
