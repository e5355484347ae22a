"""The headless engine worker: runs discussions in a process of its own, next to (or instead of) the web app.

    python -m backend.worker [--interval SECONDS] [--log-level INFO] [--metrics-port PORT]   # or: maestro worker

It migrates the database, then runs the process runner's janitor until stopped: every interval it starts each
discussion marked "running" that no live runner holds, which covers both discussions a crashed or stopped
process left unfinished (once their lease has expired) and new ones a web app marked running. Engines resume
from the log, so a resumed discussion repeats at most the model calls that were in flight when its last runner
died. The Reflex app runs the same runner in-process; with REDIS_URL set, viewers on the web workers see the
tokens this worker streams, otherwise they see each message once it is complete.

SIGTERM or SIGINT stops it gracefully: the janitor stops, engines are cancelled and their leases released, so
another worker resumes them at once. After a SIGKILL the leases expire by themselves (MAESTRO_LEASE_SECONDS).
The janitor interval comes from --interval, else MAESTRO_JANITOR_INTERVAL_S, else half the lease. Logs go to
stderr in Maestro's format: JSON lines naming the discussion (MAESTRO_LOG_FORMAT=text for plain lines).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import threading
import time

log = logging.getLogger("backend.worker")


def configure_logging(level: str | None = None) -> None:
    """Maestro's log format (JSON lines with the discussion id, or text with MAESTRO_LOG_FORMAT=text) on stderr."""
    from backend.observability import configure_logging as configure

    configure(level=level.upper() if level else None)
    quiet = logging.getLogger("httpx2")  # the SDKs' HTTP client: one INFO line per model call otherwise
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)


def _import_providers() -> None:
    """Import the SDKs of the providers this database's agents use, those of running discussions first.

    The engine imports a provider's SDK on its first call, on the event loop: half a second to a second and a
    half during which no stream in this process moves and no lease heartbeat runs. Importing them here, in a
    thread, avoids that stall; the SDKs no agent uses are not loaded at all.
    """
    from sqlmodel import select

    from backend.db import session_scope
    from backend.models import Discussion, DiscussionStatus, Participant
    from backend.providers import registry

    try:
        with session_scope() as s:
            rows = s.exec(
                select(Participant.provider, Discussion.status)
                .join(Discussion, Participant.discussion_id == Discussion.id)  # type: ignore[arg-type]
                .where(Participant.provider.is_not(None))  # type: ignore[union-attr]
                .distinct()
            ).all()
    except Exception:
        log.exception("could not read which providers the agents use")
        return
    running = {p for p, status in rows if status == DiscussionStatus.RUNNING}
    for name in sorted({p for p, _ in rows}, key=lambda p: p not in running):
        info = registry.PROVIDERS.get(name)
        if info is None:
            continue  # a provider registered in code (tests, benchmarks)
        try:
            importlib.import_module(info.module)
        except Exception as exc:  # an absent SDK only affects the agents that need it
            log.warning("provider %s is unavailable here: %s", name, exc)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable DATABASE_URL)"


async def _watch(runner, every: float) -> None:
    """Log each engine this worker starts and how its discussion stood when the engine stopped."""
    from backend.db import run_db
    from backend.services.discussions import get_discussion

    running: dict[int, float] = {}
    while True:
        current = set(runner.tasks)
        for discussion_id in sorted(current - running.keys()):
            running[discussion_id] = time.monotonic()
            log.info(
                "discussion %s: engine running in this worker", discussion_id, extra={"discussion_id": discussion_id}
            )
        for discussion_id in sorted(running.keys() - current):
            took = time.monotonic() - running.pop(discussion_id)
            try:
                status = (await run_db(get_discussion, discussion_id)).status
            except Exception as exc:
                status = f"unknown ({type(exc).__name__})"
            log.info(
                "discussion %s: engine stopped after %.1f s; status %s",
                discussion_id,
                took,
                status,
                extra={"discussion_id": discussion_id},
            )
        await asyncio.sleep(every)


async def serve(*, interval: float | None = None, stop: asyncio.Event | None = None) -> None:
    """Prepare the database, then resume and pick up discussions until `stop` is set (or SIGTERM/SIGINT)."""
    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import run_db
    from backend.orchestrator.runner import get_runner

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        settings = get_settings()
        await run_db(prepare_database)
        runner = get_runner()
        interval = interval or settings.janitor_interval_s or runner.lease_seconds / 2
        log.info(
            "worker %s: started (database %s, lease %g s, janitor every %g s, bus %s)",
            runner.owner,
            _safe_url(settings.database_url),
            runner.lease_seconds,
            interval,
            "redis" if settings.redis_url else "in-process",
        )
        # A daemon thread, so a stop during the warm-up need not wait for it.
        threading.Thread(target=_import_providers, name="worker-warm-up", daemon=True).start()
        janitor = asyncio.create_task(runner.run_janitor(interval), name="worker-janitor")
        watch = asyncio.create_task(_watch(runner, min(interval, 0.5)), name="worker-watch")
        await stop.wait()
        for task in (janitor, watch):  # the janitor first, so it starts no engine while the engines stop
            task.cancel()
        for task in (janitor, watch):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        handing_back = sorted(d for d in runner.tasks if runner.is_running(d))
        log.info(
            "worker %s: stopping; discussions handed back: %s",
            runner.owner,
            ", ".join(map(str, handing_back)) or "none",
        )
        await runner.shutdown()  # cancels the engines; each releases its lease
        log.info("worker %s: stopped", runner.owner)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(interval: float | None = None, log_level: str | None = None, metrics_port: int | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT; with `metrics_port`, serve Prometheus /metrics on 127.0.0.1 too."""
    configure_logging(log_level)
    if metrics_port:
        from backend.observability import serve_metrics

        serve_metrics(metrics_port)
        log.info("metrics on http://127.0.0.1:%s/metrics", metrics_port)
    asyncio.run(serve(interval=interval))


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m backend.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--interval",
        type=_positive,
        default=None,
        help="seconds between janitor passes (default: MAESTRO_JANITOR_INTERVAL_S, else half the lease)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: MAESTRO_LOG_LEVEL, else INFO)")
    parser.add_argument("--metrics-port", type=int, help="also serve Prometheus /metrics on 127.0.0.1:PORT")
    args = parser.parse_args()
    main(args.interval, args.log_level, args.metrics_port)
