"""Benchmark dataset exports: throughput and peak memory at growing sizes (see bench/exports.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bench.exports import bench_exports, table
from maps.export_jobs import FORMATS


class Command(BaseCommand):
    help = "Export synthetic experiments of growing size in a throwaway database; report rows/s and peak memory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000], help="Rounds per experiment.")
        parser.add_argument("--clicks-per-round", type=int, default=50, help="Mean bubbles per round (±10).")
        parser.add_argument("--images", type=int, default=500)
        parser.add_argument("--participants", type=int, default=2000)
        parser.add_argument("--formats", nargs="+", choices=FORMATS[:3], default=["clicks_csv", "clicks_parquet"])

    def handle(self, *args: Any, **options: Any) -> None:
        results = bench_exports(
            sizes=sorted(options["sizes"]), clicks_per_round=max(options["clicks_per_round"], 11),
            images=options["images"], participants=options["participants"], formats=options["formats"],
            say=lambda line: self.stderr.write(line),
        )  # fmt: skip
        self.stdout.write(f"export benchmark ({', '.join(options['formats'])}):")
        for line in table(results):
            self.stdout.write(line)
