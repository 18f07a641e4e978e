"""Leader leases across real OS processes (FileStore, SeaweedFS): 4 processes contend for one
lease and their terms never overlap, with strictly increasing epochs; after SIGKILL of the
leader another process is elected within ttl plus one renew interval.

Workers are ``_runtime_worker.py``. Under ``CI=true`` a SeaweedFS that cannot start fails the
run (the server fixture raises), it is never skipped.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from ._runtime import TIMEOUT, answer, go, reaped
from ._runtime import spawn_runtime as spawn

PROCESSES = 4

pytestmark = [pytest.mark.stores("file", "seaweedfs"), pytest.mark.slow]


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    with reaped() as procs:
        yield procs


def test_four_processes_never_lead_at_once_and_epochs_grow(
    store_url: str, store_kind: str, workers: list[subprocess.Popen[str]]
) -> None:
    ttl, renew = ("6", "1") if store_kind == "seaweedfs" else ("4", "0.5")
    workers.extend(
        spawn("contend", store_url, f"w{i}", "3", ttl, renew, "0.2") for i in range(PROCESSES)
    )
    for p in workers:
        assert answer(p) == "ready"
    go(*workers)
    answers = [answer(p) for p in workers]
    for p in workers:
        assert p.wait(timeout=TIMEOUT) == 0
    terms = sorted(
        (start, end, epoch, f"w{i}")
        for i, a in enumerate(answers)
        for epoch, start, end in a["terms"]
    )
    assert len(terms) >= PROCESSES * 3  # every round won a term (a lost one adds more)
    assert all(end > start for start, end, _, _ in terms)
    for (_, prev_end, prev_epoch, prev), (start, _, epoch, who) in itertools.pairwise(terms):
        assert start >= prev_end, f"{who} (epoch {epoch}) led before {prev} stopped"
        assert epoch > prev_epoch, f"epoch {epoch} of {who} follows {prev_epoch} of {prev}"
    epochs = [epoch for _, _, epoch, _ in terms]
    assert epochs == list(range(1, len(terms) + 1))  # no term lost or skipped an epoch


def test_after_sigkill_of_the_leader_another_is_elected_within_ttl_plus_a_renewal(
    store_url: str, store_kind: str, workers: list[subprocess.Popen[str]]
) -> None:
    ttl, renew = (8.0, 2.0) if store_kind == "seaweedfs" else (3.0, 1.0)
    leader = spawn("hold", store_url, "doomed", str(ttl), str(renew))
    workers.append(leader)
    assert answer(leader) == "ready"
    go(leader)
    first = answer(leader)
    assert first["epoch"] == 1
    heirs = [spawn("wait", store_url, f"heir{i}", str(ttl), str(renew)) for i in range(3)]
    workers.extend(heirs)
    for p in heirs:
        assert answer(p) == "ready"
    go(*heirs)
    time.sleep(renew * 2)  # the heirs watch a live, renewed lease
    for p in heirs:
        assert p.poll() is None
    killed = time.time()
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(timeout=30)
    elections = [answer(p) for p in heirs]
    for p in heirs:
        assert answer(p) == "done"
        assert p.wait(timeout=TIMEOUT) == 0
    elections.sort(key=lambda e: e["elected"])
    assert [e["epoch"] for e in elections] == [2, 3, 4]
    failover = elections[0]["elected"] - killed
    # the dead leader's term runs out at most ttl after its last renewal; the heirs wake at
    # the stored expiry (or after one poll): generous slack of one more ttl for slow requests
    assert failover <= 2 * ttl + renew, f"failover took {failover:.2f}s (ttl {ttl:g}s)"
