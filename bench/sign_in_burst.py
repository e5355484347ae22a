"""What a burst of sign-ins does to everyone else's database calls.

Argon2 takes tens of ms of a core per sign-in. Run in the pool the database calls use (`run_db`, the baseline: how
sign-in ran before), a burst holds every thread of it and a plain read waits behind the whole burst; run in its own
pool (`accounts.run_auth`), the read answers at once. Prints the read's latency during each kind of burst, measured
in the same run, and their ratio.

    python bench/sign_in_burst.py [--burst 24] [--probes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def probe_during_burst(runner, burst: int, probes: int) -> list[float]:
    from backend.db import run_db
    from backend.humans import accounts

    waits = []
    for _ in range(probes):
        tasks = [asyncio.create_task(runner(accounts.log_in, "sam", "correct horse")) for _ in range(burst)]
        await asyncio.sleep(0.02)  # the burst has taken its threads
        started = time.perf_counter()
        await run_db(accounts.find_user, "sam")
        waits.append(time.perf_counter() - started)
        await asyncio.gather(*tasks)
    return waits


async def main(burst: int, probes: int) -> None:
    from backend.bootstrap import prepare_database
    from backend.db import run_db
    from backend.humans import accounts

    prepare_database()
    await run_db(accounts.sign_up, "sam", "correct horse")
    baseline = await probe_during_burst(run_db, burst, probes)
    own_pool = await probe_during_burst(accounts.run_auth, burst, probes)
    med_b, med_o = statistics.median(baseline) * 1000, statistics.median(own_pool) * 1000
    print(f"a database read while {burst} sign-ins hash ({probes} bursts each, median / max):")
    print(f"  sign-ins in the database's pool (before): {med_b:8.1f} ms / {max(baseline) * 1000:8.1f} ms")
    print(f"  sign-ins in their own pool (now):         {med_o:8.1f} ms / {max(own_pool) * 1000:8.1f} ms")
    print(f"  ratio: {med_b / max(med_o, 0.001):.0f}x faster")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=24)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    os.environ.setdefault("MAESTRO_SIGNUP_POLICY", "open")
    os.environ.setdefault("MAESTRO_RATE_LIMITS", "sign_in=100000/minute")
    asyncio.run(main(args.burst, args.probes))
