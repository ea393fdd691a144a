"""The export benchmark (`manage.py bench_exports`, `make bench`): throughput and peak memory against dataset size.

Synthetic experiments of each size (default 10k and 100k rounds of ~50 bubbles) are generated
in a throwaway database (a temporary SQLite file, or a test database on Postgres) so the
development database is untouched. Each is exported (clicks CSV + Parquet by default) twice:
once plain, for throughput, the resident-set peak (sampled every 10 ms, above the level just
before the export) and Arrow's allocation peak (its pool's own high-water mark: exact, where a
10 ms sample of a short export misses its peak batch; it only rises, so the larger export shows
more only if it ever needed more); once under tracemalloc, the fair measure of
Python allocations, whose own slowdown is why throughput comes from the first run. The goal is
flat memory: the peak at 100k within 10 % of the peak at 10k.
"""

from __future__ import annotations

import logging
import resource
import shutil
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from games.models import (
    Category,
    Click,
    Experiment,
    Image,
    ImageSet,
    Participant,
    PartnerModel,
    PartnerModelVersion,
    PlaySession,
    Round,
)
from maps.export_jobs import create_export, run_export

MIB = 1 << 20
ROUND_BATCH = 10_000  # rounds generated (and their bubbles inserted) per transaction
PAST = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Measurement:
    """One size's export: how fast, how big, and how much memory at the peak."""

    rounds: int
    clicks: int
    seconds: float
    bytes_written: int
    rss_peak: int  # bytes above the resident set just before the export
    rss_total: int  # the process's resident set at the peak
    arrow_peak: int  # bytes Arrow's memory pool has held at most, this export or any before it
    tracemalloc_peak: int | None  # Python allocations at the peak (None when not measured)

    @property
    def rows_per_second(self) -> float:
        return self.clicks / self.seconds if self.seconds else 0.0


@contextmanager
def throwaway_database() -> Iterator[Path]:
    """Point the default connection at a fresh, migrated database, as the test runner does, and drop it after."""
    scratch = Path(tempfile.mkdtemp(prefix="clickme-bench-exports-"))
    test_settings = connection.settings_dict.setdefault("TEST", {})
    previous_test_name = test_settings.get("NAME")
    if connection.vendor == "sqlite":  # a file, not memory: 5M rows in memory would dwarf what is measured
        test_settings["NAME"] = str(scratch / "bench.sqlite3")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield scratch
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        test_settings["NAME"] = previous_test_name
        shutil.rmtree(scratch, ignore_errors=True)


def _fixtures(images: int) -> tuple[ImageSet, PartnerModelVersion, list[int]]:
    image_set = ImageSet.objects.create(name="bench-exports")
    categories = Category.objects.bulk_create([Category(name=f"bench-class-{n}") for n in range(20)])
    # Rows only: the clicks export never opens image files.
    created = Image.objects.bulk_create(
        Image(image_set=image_set, category=categories[n % 20], name=f"bench_{n:05d}.JPEG", checksum=f"{n:064x}",
              crop=f"bench/{n}.png", original=f"bench/{n}.png", original_width=256, original_height=256)
        for n in range(images)
    )  # fmt: skip
    partner = PartnerModel.objects.create(name="bench-partner")
    version = PartnerModelVersion.objects.create(partner=partner, version="v1", checkpoint="bench.pt")
    return image_set, version, [image.pk for image in created]


def generate(*, slug: str, rounds: int, clicks_per_round: int, image_ids: list[int], image_set: ImageSet,
             version: PartnerModelVersion, participants: int, seed: int) -> int:  # fmt: skip
    """One experiment of `rounds` scored rounds with ~`clicks_per_round` bubbles each; returns the bubble count."""
    rng = np.random.default_rng(seed)
    owner, _ = get_user_model().objects.get_or_create(username="bench-exports")
    experiment = Experiment.objects.create(
        slug=slug, title=slug, owner=owner, image_set=image_set, partner=version.partner
    )
    people = Participant.objects.bulk_create(Participant(username=f"{slug}-{n}") for n in range(participants))
    sessions = PlaySession.objects.bulk_create(PlaySession(participant=p, experiment=experiment) for p in people)
    rules, later, clicks = experiment.game_settings(), timezone.now() + timedelta(hours=1), 0
    table, quote = Click._meta.db_table, connection.ops.quote_name
    insert = f"INSERT INTO {quote(table)} (round_id, seq, x, y, t_ms) VALUES (%s, %s, %s, %s, %s)"
    # Each participant's k-th round goes to place k of their session, on an image of its own there.
    placed, offsets = np.zeros(participants, dtype=np.int64), rng.integers(0, len(image_ids), participants)
    for start in range(0, rounds, ROUND_BATCH):
        size = min(ROUND_BATCH, rounds - start)
        who = rng.integers(0, participants, size)
        where = np.empty(size, dtype=np.int64)
        for index, w in enumerate(who.tolist()):
            where[index], placed[w] = placed[w], placed[w] + 1
        what = (offsets[who] + where) % len(image_ids)
        lengths = rng.integers(clicks_per_round - 10, clicks_per_round + 11, size)
        with transaction.atomic():
            # submitted_at must follow started_at (auto_now_add): a future placeholder, moved back below.
            created = Round.objects.bulk_create(
                Round(session=sessions[w], participant_id=sessions[w].participant_id, experiment=experiment,
                      image_id=image_ids[i], client_round_id=uuid.uuid4(), position=int(k), settings=rules,
                      status=Round.Status.SCORED, outcome=Round.Outcome.CORRECT, points=50, partner_version=version,
                      submitted_at=later, scored_at=later, bubble_count=int(n))
                for w, i, k, n in zip(who.tolist(), what.tolist(), where.tolist(), lengths.tolist(), strict=True)
            )  # fmt: skip
            owners = np.repeat([r.pk for r in created], lengths)
            seq = np.arange(len(owners)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            x, y = rng.integers(0, 256, len(owners)), rng.integers(0, 256, len(owners))
            with connection.cursor() as cursor:
                cursor.executemany(insert, zip(owners.tolist(), seq.tolist(), x.tolist(), y.tolist(),
                                               (seq * 50).tolist(), strict=True))  # fmt: skip
            clicks += len(owners)
    Round.objects.filter(experiment=experiment).update(
        started_at=PAST, submitted_at=PAST + timedelta(minutes=1), scored_at=PAST + timedelta(minutes=2)
    )
    return clicks


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux: the lifetime peak is the best available
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakSampler(threading.Thread):
    """Samples the resident set every `interval` seconds, keeping the peak."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval, self.stopped = interval, threading.Event()
        self.baseline, self.rss_peak = _rss(), 0

    def run(self) -> None:
        while not self.stopped.is_set():
            self.rss_peak = max(self.rss_peak, _rss() - self.baseline)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def measure(*, slug: str, formats: list[str], root: Path, traced: bool) -> Measurement:
    """Export one experiment into `root` and measure it (tracemalloc on only when `traced`)."""
    experiment = Experiment.objects.get(slug=slug)
    export = create_export(experiment=experiment, user=experiment.owner, formats=formats, filters={}, enqueue=False,
                           quota=False)  # fmt: skip
    sampler = PeakSampler()
    if traced:
        tracemalloc.start()
    sampler.start()
    started = time.perf_counter()
    try:
        export = run_export(export_id=export.pk, root=root)
    finally:
        seconds = time.perf_counter() - started
        sampler.stop()
        peak = tracemalloc.get_traced_memory()[1] if traced else None
        tracemalloc.stop()
    written = sum(entry["bytes"] for entry in export.files)
    shutil.rmtree(root / slug, ignore_errors=True)  # gigabytes of CSV: keep the disk free
    return Measurement(export.counts["rounds"], export.counts["clicks"], seconds, written, sampler.rss_peak,
                       sampler.baseline + sampler.rss_peak, pa.default_memory_pool().max_memory(), peak)  # fmt: skip


def bench_exports(*, sizes: list[int], clicks_per_round: int, images: int, participants: int, formats: list[str],
                  say: Callable[[str], None]) -> list[Measurement]:  # fmt: skip
    """Generate each size, warm up, then export each size plainly and then each under tracemalloc."""
    logging.getLogger("maps.export_jobs").setLevel(logging.WARNING)  # one line per export would drown the table
    with throwaway_database() as scratch:
        with connection.cursor() as cursor:  # a throwaway database: durability does not matter
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA synchronous = OFF")
        image_set, version, image_ids = _fixtures(images)
        for number, size in enumerate(sizes):
            started = time.perf_counter()
            clicks = generate(slug=f"bench-{size}", rounds=size, clicks_per_round=clicks_per_round,
                              image_ids=image_ids, image_set=image_set, version=version, participants=participants,
                              seed=number)  # fmt: skip
            say(f"generated {size:,} rounds, {clicks:,} bubbles in {time.perf_counter() - started:.1f} s")
        root = scratch / "exports"
        measure(slug=f"bench-{sizes[0]}", formats=formats, root=root, traced=False)  # warm-up: imports, pools, caches
        # Every plain run before any traced one: tracemalloc's own tables would raise the later baselines.
        results = [measure(slug=f"bench-{size}", formats=formats, root=root, traced=False) for size in sizes]
        for size, plain in zip(sizes, results, strict=True):
            traced = measure(slug=f"bench-{size}", formats=formats, root=root, traced=True)
            plain.tracemalloc_peak = traced.tracemalloc_peak
            say(f"exported {plain.rounds:,} rounds in {plain.seconds:.1f} s ({traced.seconds:.1f} s under tracemalloc)")
    return results


def table(results: list[Measurement]) -> list[str]:
    """The results as a text table, then the growth of each peak from the smallest to the largest size."""
    lines = [
        f"{'rounds':>9} {'bubbles':>11} {'seconds':>8} {'rows/s':>10} {'written MiB':>12} "
        f"{'tracemalloc MiB':>16} {'Arrow MiB':>10} {'RSS Δ MiB':>10} {'RSS MiB':>8}"
    ]
    for r in results:
        lines.append(
            f"{r.rounds:>9,} {r.clicks:>11,} {r.seconds:>8.1f} {r.rows_per_second:>10,.0f} "
            f"{r.bytes_written / MIB:>12.1f} {(r.tracemalloc_peak or 0) / MIB:>16.1f} "
            f"{r.arrow_peak / MIB:>10.1f} {r.rss_peak / MIB:>10.1f} {r.rss_total / MIB:>8.1f}"
        )
    if len(results) >= 2:
        first, last = results[0], results[-1]

        def growth(a: float, b: float) -> str:
            return f"{(b / a - 1) * 100:+.1f} %" if a else "n/a"

        lines.append(
            f"peak memory growth {first.rounds:,} → {last.rounds:,} rounds (goal < +10 %): tracemalloc "
            f"{growth(first.tracemalloc_peak or 0, last.tracemalloc_peak or 0)}, Arrow "
            f"{growth(first.arrow_peak, last.arrow_peak)}, RSS {growth(first.rss_total, last.rss_total)}"
        )
        # A percentage of a few MiB above a baseline is noise (allocator reuse), so say it in MiB.
        lines.append(f"RSS above the pre-export level: {first.rss_peak / MIB:.1f} → {last.rss_peak / MIB:.1f} MiB")
    return lines
