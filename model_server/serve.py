"""The partner model server: Open Inference Protocol (KServe v2) over aiohttp, dynamically batched.

A request names images by key (decoded once, then served from an LRU cache) or sends pixels, plus
each item's bubbles and noise seed; the server renders what the partner sees (`reveal.py`) and
answers the top-k classes. Requests are parsed on the event loop (preprocess), merged into
batches that run in a thread pool (`inference.infer`) and turned back into tensors (postprocess).
Tensors travel as JSON or as the protocol's binary tensor data (`binary_data.py`); the endpoints are
the protocol's required ones plus the extensions standard clients call (docs/model-server.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from aiohttp import web

from model_server import metadata, protocol
from model_server.batching import DynamicBatcher, Overloaded
from model_server.binary_data import HEADER, pack_response, parse_json, split_body
from model_server.cli import add_arguments, from_arguments
from model_server.inference import Job, batch_key, run_jobs
from model_server.registry import BadRequest, ImageCache, LoadedModel, ModelRegistry, NotFound, load_model
from model_server.statistics import Statistics, VersionStats
from model_server.wire import PRIORITIES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server can be told at start; each field is also a flag and an env var."""

    checkpoint: Path | None = None
    name: str = "partner"
    image_root: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8001
    max_batch_size: int = 64
    max_delay_ms: float = 5.0
    max_queue: int = 512  # queued items beyond which requests get 503 at once
    workers: int = 2  # batches running at once; each gets cores // workers torch threads
    cache_size: int = 1024  # decoded 256x256 images kept (196 KB each)
    max_bubbles: int = 500
    max_items: int = 256  # items in one request
    max_body_bytes: int = 16 * 1024 * 1024  # pixels sent as JSON take about 800 KB per image
    admin_token: str = ""  # when set, repository endpoints need "Authorization: Bearer <token>"
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class ServerState:
    """What the handlers share: settings, models, image cache, batcher and thread pool."""

    settings: ServerSettings
    registry: ModelRegistry
    images: ImageCache
    executor: ThreadPoolExecutor
    batcher: DynamicBatcher
    statistics: Statistics = field(default_factory=Statistics)  # per model version, the batcher times batches


STATE = web.AppKey("state", ServerState)


def error_response(status: int, message: str) -> web.Response:
    """Answer an OIP error: a JSON object with one "error" string."""
    headers = {"Retry-After": "1"} if status == 503 else None
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Turn domain errors and aiohttp's own HTTP errors into JSON error bodies."""
    try:
        return await handler(request)
    except BadRequest as error:
        return error_response(400, str(error))
    except NotFound as error:
        return error_response(404, str(error))
    except Overloaded as error:
        return error_response(503, str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = error.text or ""
        if not message or message.startswith(f"{error.status}:"):  # aiohttp's bare default text
            message = f"{error.reason}: {request.method} {request.path}"
        return error_response(error.status, message)


async def read_json(request: web.Request) -> dict:
    """Read a JSON object body; an empty body is an empty object (aiohttp answers 413 past client_max_size)."""
    return parse_json(await request.read())


async def load_images(state: ServerState, keys: list[str]) -> list[torch.Tensor]:
    """Return canvases (3, 256, 256) for image keys; misses are checked and decoded in the pool."""
    found = {key: state.images.lookup(key) for key in dict.fromkeys(keys)}  # scoring repeats keys
    missing = [key for key, image in found.items() if image is None]
    if missing:
        # Off the loop: resolving touches the filesystem and decoding takes milliseconds.
        loop = asyncio.get_running_loop()
        decoded = await asyncio.gather(
            *(loop.run_in_executor(state.executor, state.images.load, key) for key in missing)
        )
        for key, image in zip(missing, decoded, strict=True):
            state.images.store(key, image)
            found[key] = image
    return [found[key] for key in keys]


def model_of(request: web.Request) -> LoadedModel:
    """Return the model version a /v2/models/{name}[/versions/{version}]/... path names (404 if none)."""
    return request.app[STATE].registry.get(request.match_info["name"], request.match_info.get("version"))


async def infer(request: web.Request) -> web.Response:
    """POST /v2/models/{name}[/versions/{version}]/infer: top-k guesses for revealed images."""
    state = request.app[STATE]
    loaded = model_of(request)
    stats, started = state.statistics.of(loaded.name, loaded.version), time.perf_counter_ns()
    try:
        response = await _infer(state, loaded, request, stats, started)
    except Exception:
        stats.add("fail", time.perf_counter_ns() - started)
        raise
    stats.add("success", time.perf_counter_ns() - started)
    return response


async def _infer(
    state: ServerState, loaded: LoadedModel, request: web.Request, stats: VersionStats, started: int
) -> web.Response:
    """Preprocess, batch and postprocess one infer request, timing each phase for the statistics."""
    body, binary = split_body(await request.read(), request.headers.get(HEADER))
    parsed = protocol.parse_infer(body, state.settings, loaded, binary)
    if parsed.keys is None:
        loop = asyncio.get_running_loop()
        images = await loop.run_in_executor(state.executor, protocol.canvases, parsed.pixels, len(parsed.seeds))
    else:
        images = await load_images(state, parsed.keys)
    job = Job(
        loaded=loaded,
        images=images,
        bubbles=parsed.bubbles,
        seeds=parsed.seeds,
        bubble_size=parsed.bubble_size,
        top_k=parsed.top_k,
        attention=parsed.attention,
        priority=PRIORITIES.index(parsed.priority),
        stats=stats,
    )
    stats.add("compute_input", time.perf_counter_ns() - started)
    prediction = await state.batcher.submit(job)
    answered = time.perf_counter_ns()
    header, tensors = protocol.infer_response(loaded, prediction, body.get("id"), parsed.outputs)
    data, headers = pack_response(header, tensors)
    stats.add("compute_output", time.perf_counter_ns() - answered)
    return web.Response(body=data, headers=headers)


async def server_metadata(request: web.Request) -> web.Response:
    """GET /v2: server name, version and extensions."""
    return web.json_response(metadata.server_metadata())


async def live(request: web.Request) -> web.Response:
    """GET /v2/health/live: the process answers."""
    return web.json_response({"live": True})


async def ready(request: web.Request) -> web.Response:
    """GET /v2/health/ready: a model is loaded and active (503 until then)."""
    is_ready = request.app[STATE].registry.ready()
    return web.json_response({"ready": is_ready}, status=200 if is_ready else 503)


async def model_metadata(request: web.Request) -> web.Response:
    """GET /v2/models/{name}[/versions/{version}]: inputs, outputs, versions and class names."""
    state = request.app[STATE]
    return web.json_response(metadata.model_metadata(model_of(request), state.registry, state.settings))


async def model_ready(request: web.Request) -> web.Response:
    """GET /v2/models/{name}[/versions/{version}]/ready: 200 when loaded (a loaded version is ready), else 404."""
    loaded = model_of(request)
    return web.json_response({"name": loaded.name, "version": loaded.version, "ready": True})


async def model_config(request: web.Request) -> web.Response:
    """GET /v2/models/{name}[/versions/{version}]/config: the model configuration extension."""
    return web.json_response(metadata.model_config(model_of(request), request.app[STATE].settings))


async def model_stats(request: web.Request) -> web.Response:
    """GET /v2/models[/{name}[/versions/{version}]]/stats: the statistics extension, per model version."""
    state = request.app[STATE]
    if "name" not in request.match_info:
        chosen = state.registry.loaded()
    elif "version" in request.match_info:
        chosen = [model_of(request)]
    else:
        name = request.match_info["name"]
        chosen = [state.registry.get(name, version) for version in state.registry.versions(name)]
    entries = [state.statistics.of(one.name, one.version).as_json(one.name, one.version) for one in chosen]
    return web.json_response({"model_stats": entries})


async def stats(request: web.Request) -> web.Response:
    """GET /v2/stats: image cache and batching counters (ours, for monitoring and the benchmark)."""
    state = request.app[STATE]
    return web.json_response({"image_cache": state.images.stats(), **state.batcher.stats()})


def check_admin(request: web.Request) -> None:
    """Refuse repository calls without the admin token, when one is configured."""
    token = request.app[STATE].settings.admin_token
    given = request.headers.get("Authorization", "")
    if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise web.HTTPUnauthorized(text="repository endpoints need the admin bearer token")


async def repository_index(request: web.Request) -> web.Response:
    """POST /v2/repository/index: every model version loaded, and models unloaded (as unavailable)."""
    check_admin(request)
    body = await read_json(request)
    entries = request.app[STATE].registry.index()
    if body.get("ready") is True:  # the extension's filter: only what can answer now
        entries = [entry for entry in entries if entry["state"] == "READY"]
    return web.json_response(entries)


async def load_version(request: web.Request) -> web.Response:
    """POST /v2/repository/models/{name}/load: load a checkpoint as a version, maybe activate it."""
    check_admin(request)
    state = request.app[STATE]
    body = await read_json(request)
    name = request.match_info["name"]
    checkpoint, version, activate = protocol.parse_load(body, state.registry, name)
    loop = asyncio.get_running_loop()
    device = torch.device(state.settings.device)
    try:
        loaded = await loop.run_in_executor(state.executor, load_model, name, checkpoint, device, version)
    except Exception as error:  # a corrupt file fails in any of the unpickler's many ways
        raise BadRequest(f"cannot load checkpoint {str(checkpoint)!r}: {error}") from error
    # Swapping is one dict assignment on the loop: requests already queued keep their version.
    state.registry.add(loaded, activate=activate)
    return web.json_response(protocol.repository_state(state.registry, name, loaded.version))


async def activate_version(request: web.Request) -> web.Response:
    """POST /v2/repository/models/{name}/activate: make a loaded version the active one."""
    return await _switch(request, "activate")


async def unload_version(request: web.Request) -> web.Response:
    """POST /v2/repository/models/{name}/unload: forget an inactive version, or with no version the whole model.

    The protocol's unload (what a standard client sends: no version) unloads the model, which then answers
    404 until a load; naming a version keeps the model serving and forgets only that inactive version.
    """
    check_admin(request)
    body = await read_json(request)
    if "version" in body:
        return await _switch(request, "unload", body)
    registry, name = request.app[STATE].registry, request.match_info["name"]
    registry.unload_model(name)
    return web.json_response(protocol.repository_state(registry, name, ""))


async def _switch(request: web.Request, action: str, body: dict | None = None) -> web.Response:
    """Apply activate or unload to the version named in the body."""
    check_admin(request)
    registry = request.app[STATE].registry
    body = await read_json(request) if body is None else body
    version = body.get("version")
    if not isinstance(version, str):
        raise BadRequest("the body needs a 'version' string")
    name = request.match_info["name"]
    getattr(registry, action)(name, version)
    return web.json_response(protocol.repository_state(registry, name, version))


def create_app(settings: ServerSettings) -> web.Application:
    """Build the aiohttp application; models load and the batcher starts on startup."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors])
    workers = max(1, settings.workers)
    threads = max(1, (os.cpu_count() or 1) // workers)  # workers x threads = the cores, no oversubscription
    executor = ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="infer",
        initializer=torch.set_num_threads,  # per thread: the event loop's own setting stays as it is
        initargs=(threads,),
    )
    batcher = DynamicBatcher(
        executor,
        run_jobs,
        group_key=batch_key,
        max_batch_size=settings.max_batch_size,
        max_delay_ms=settings.max_delay_ms,
        max_queue=settings.max_queue,
        workers=workers,
    )
    images = ImageCache(settings.image_root, settings.cache_size)
    app[STATE] = ServerState(settings, ModelRegistry(), images, executor, batcher)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    add_routes(app.router)
    return app


def add_routes(router: web.UrlDispatcher) -> None:
    """Route the protocol's endpoints and the extensions' (paths are matched in the order added)."""
    router.add_get("/v2", server_metadata)
    router.add_get("/v2/health/live", live)
    router.add_get("/v2/health/ready", ready)
    router.add_get("/v2/stats", stats)
    router.add_get("/v2/models/stats", model_stats)  # before /v2/models/{name}: "stats" is no model name
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        router.add_get(prefix, model_metadata)
        router.add_get(prefix + "/ready", model_ready)
        router.add_get(prefix + "/config", model_config)
        router.add_get(prefix + "/stats", model_stats)
        router.add_post(prefix + "/infer", infer)
    router.add_post("/v2/repository/index", repository_index)
    router.add_post("/v2/repository/models/{name}/load", load_version)
    router.add_post("/v2/repository/models/{name}/activate", activate_version)
    router.add_post("/v2/repository/models/{name}/unload", unload_version)


async def _start(app: web.Application) -> None:
    """Load the initial checkpoint off the loop and start batching."""
    state = app[STATE]
    settings = state.settings
    if settings.checkpoint is not None:
        loop = asyncio.get_running_loop()
        device = torch.device(settings.device)
        loaded = await loop.run_in_executor(state.executor, load_model, settings.name, settings.checkpoint, device)
        state.registry.add(loaded, activate=True)
    state.batcher.start()
    logger.info(
        "serving %s on %s (max batch %d, delay %.1f ms, %d workers)",
        *(settings.name, settings.device, settings.max_batch_size, settings.max_delay_ms, state.batcher.workers),
    )


async def _stop(app: web.Application) -> None:
    """Fail queued work with 503 and release the thread pool."""
    state = app[STATE]
    await state.batcher.stop()
    state.executor.shutdown(wait=True)


def parse_args(argv: list[str] | None = None) -> ServerSettings:
    """Read settings from flags, each defaulting to MODEL_SERVER_<FLAG> in the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, ServerSettings, env_prefix="MODEL_SERVER_")
    args = parser.parse_args(argv)
    if args.checkpoint is None:
        parser.error("--checkpoint (or MODEL_SERVER_CHECKPOINT) is required")
    if min(args.max_batch_size, args.workers, args.max_queue, args.max_items, args.max_bubbles) < 1:
        parser.error("--max-batch-size, --workers, --max-queue, --max-items and --max-bubbles must be at least 1")
    if not args.admin_token and not is_loopback(args.host):
        # Anyone who reaches the port could load checkpoints (pickles, weights-only or not) and swap the partner.
        parser.error(
            f"--host {args.host} is reachable from other machines: set --admin-token (MODEL_SERVER_ADMIN_TOKEN)"
        )
    return from_arguments(ServerSettings, args)


def is_loopback(host: str) -> bool:
    """Say whether a listen address is reachable from this machine only ("" and 0.0.0.0 mean every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def main(argv: list[str] | None = None) -> None:
    """Start the server and serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = parse_args(argv)
    # No access log: it would write a line for every partner query; errors are still logged.
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None)


if __name__ == "__main__":
    main()
