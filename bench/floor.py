"""The floor: the same work a played round needs, done raw, measured in the same run.

Database: the round's writes as plain SQL on one connection of the stack's database, one
autocommit statement per request as the site commits them (insert the round, each upload's
clicks in one multi-row INSERT, each guess's row, the submit and the score as UPDATEs), into
scratch tables shaped like games_round/games_click. CPU of the client and of its backend.
Model: the model server's forward passes per round (its batch counters), done in-process at the
same mean batch size with the same reveal, one thread. Web, worker and Redis have no floor of their
own: everything they do beyond this is overhead.
"""

from __future__ import annotations

import time

import psutil
import psycopg
import torch

from devtools.partner_process import DEMO_CHECKPOINT
from model_server.inference import input_buffer
from model_server.registry import load_model
from model_server.reveal import pad_bubbles, reveal_batch

SCRATCH = """
CREATE TABLE IF NOT EXISTS floor_round (id bigserial PRIMARY KEY, session_id bigint, image_id bigint,
  client_round_id uuid, status varchar(16), bubble_count int, points smallint, started_at timestamptz DEFAULT now(),
  submitted_at timestamptz, scored_at timestamptz);
CREATE TABLE IF NOT EXISTS floor_click (round_id bigint, seq smallint, x smallint, y smallint, t_ms int,
  PRIMARY KEY (round_id, seq));
CREATE TABLE IF NOT EXISTS floor_guess (round_id bigint, query_index smallint, label varchar(64), probability real);
"""


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def database_floor(database_url: str, *, rounds: int, clicks_per_round: float, guesses_per_round: float) -> float:
    """CPU-seconds per round (client + Postgres backend) of the round's writes as raw SQL."""
    connection = psycopg.connect(database_url, autocommit=True, cursor_factory=psycopg.ClientCursor)
    cursor = connection.cursor()
    cursor.execute(SCRATCH)
    cursor.execute("SELECT pg_backend_pid()")
    backend = psutil.Process(cursor.fetchone()[0])
    me = psutil.Process()
    clicks, guesses = max(1, round(clicks_per_round)), max(1, round(guesses_per_round))
    per_upload = max(1, clicks // guesses)
    before = _cpu(me) + _cpu(backend)
    for number in range(rounds):
        cursor.execute(
            "INSERT INTO floor_round (session_id, image_id, client_round_id, status, bubble_count) "
            "VALUES (1, 1, gen_random_uuid(), 'playing', 0) RETURNING id"
        )
        round_id = cursor.fetchone()[0]
        for start in range(0, clicks, per_upload):
            rows = [
                (round_id, seq, seq % 256, (seq * 7) % 256, seq * 50)
                for seq in range(start, min(clicks, start + per_upload))
            ]
            values = ",".join(cursor.mogrify("(%s,%s,%s,%s,%s)", row) for row in rows)
            cursor.execute(f"INSERT INTO floor_click VALUES {values}")
            cursor.execute("INSERT INTO floor_guess VALUES (%s, %s, 'cat', 0.5)", (round_id, start // per_upload))
        cursor.execute("UPDATE floor_round SET status='submitted', bubble_count=%s, submitted_at=now() WHERE id=%s",
                       (clicks, round_id))  # fmt: skip
        cursor.execute("UPDATE floor_round SET status='scored', points=%s, scored_at=now() WHERE id=%s",
                       (number % 100, round_id))  # fmt: skip
    spent = _cpu(me) + _cpu(backend) - before
    cursor.execute("DROP TABLE floor_round, floor_click, floor_guess")
    connection.close()
    return spent / rounds


def model_floor(*, batch: int, forwards: int = 64) -> float:
    """CPU-seconds per image of reveal + forward in-process at batch size `batch`, one torch thread."""
    torch.set_num_threads(1)
    loaded = load_model("floor", DEMO_CHECKPOINT, torch.device("cpu"))
    batch = max(1, batch)
    images = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([[(60 + i % 120, 60 + (i * 3) % 120) for i in range(40)] for _ in range(batch)])
    me = psutil.Process()
    with torch.inference_mode():
        seen = reveal_batch(images, bubbles, counts, list(range(batch)), out=input_buffer(batch, torch.device("cpu")))
        loaded.model(seen)  # warm-up
        before, done = _cpu(me), 0
        started = time.perf_counter()
        while done < forwards and time.perf_counter() - started < 20:
            seeds = list(range(done, done + batch))
            seen = reveal_batch(images, bubbles, counts, seeds, out=input_buffer(batch, torch.device("cpu")))
            loaded.model(seen)
            done += batch
    return (_cpu(me) - before) / done
