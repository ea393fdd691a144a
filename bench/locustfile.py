"""Locust entry point: `locust -f bench/locustfile.py --host URL` (see docs/load-testing.md)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.player import RealTimePlayer

__all__ = ["RealTimePlayer"]
