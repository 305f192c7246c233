"""Which processes are a local Ray head's, and how they are stopped (`HeadSession` in
mixpeek_infra/ray/_process.py), pinned where the mutation check (docs/testing.md) found that a changed
comparison or deadline passed the rest of the suite.

The real-process tests (test_ray_local, test_safety_ray) carry the `ray` marker or start a real session
and wait out real deadlines; these run the same code against a process table, environments, signals and
a clock made up here, so each rule of the class docstring is checked on its own and at once."""

from __future__ import annotations

import os
import signal

import pytest

from mixpeek_infra import processes
from mixpeek_infra.processes import ProcInfo
from mixpeek_infra.ray import _process
from mixpeek_infra.ray._process import HeadSession

REAL_REAP = _process._reap
HEAD = "rayhead-mine"
OTHER = "rayhead-other"
LEADER = 100
START = 1000.0


class World:
    """A process table with environments, a clock that `time.sleep` advances, and signals that end
    processes (unless a process ignores that signal)."""

    def __init__(self, monkeypatch, linux=True, boot="boot-1"):
        self.procs: dict[int, ProcInfo] = {}
        self.markers: dict[int, str | None] = {}
        self.ignores: dict[int, set[int]] = {}
        self.on_term: dict[int, list[int]] = {}  # pid -> pids that exit with it (ray start draining its children)
        self.signals: list[tuple[float, int, int]] = []
        self.now = 0.0
        self.reaped: list[int] = []
        self.reap_waits: list[float] = []
        monkeypatch.setattr(_process, "process_table", lambda: list(self.procs.values()))
        monkeypatch.setattr(_process, "process_info", lambda pid: self.procs.get(pid))
        monkeypatch.setattr(_process, "_marker", lambda pid: self.markers.get(pid))
        monkeypatch.setattr(_process, "_linux", lambda: linux)
        monkeypatch.setattr(processes, "on_linux", lambda: linux)  # same_start: whole seconds off Linux
        monkeypatch.setattr(_process, "current_boot_id", lambda: boot)
        monkeypatch.setattr(_process, "_signal", self.signal)
        monkeypatch.setattr(_process, "_reap", self.reap)
        monkeypatch.setattr(_process, "time", self)

    def add(self, pid, *, ppid=LEADER, sid=LEADER, start=START + 1, marker=HEAD, state="S", ignores=()):
        self.procs[pid] = ProcInfo(pid=pid, ppid=ppid, pgid=sid, sid=sid, state=state, start=start)
        self.markers[pid] = marker
        self.ignores[pid] = set(ignores)
        return self

    def leader(self, **kwargs):
        return self.add(LEADER, **{"ppid": 1, "start": START, **kwargs})

    # the `time` module, as _process uses it
    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def reap(self, pid, wait=0.0):
        self.reaped.append(pid)
        self.reap_waits.append(wait)

    def signal(self, pid, sig):
        self.signals.append((round(self.now, 1), pid, sig))
        if pid in self.procs and sig not in self.ignores[pid]:
            for gone in [pid, *self.on_term.get(pid, [])]:
                self.procs.pop(gone, None)


def session(boot_id=None, head_id=HEAD):
    return HeadSession(LEADER, START, head_id, boot_id)


def members(world_session):
    return [p.pid for p in world_session.members()]


# --- members: only processes proven the head's


def test_members_are_the_leader_its_marked_processes_and_unmarked_children_of_proven_ones(monkeypatch):
    world = World(monkeypatch).leader()
    world.add(101)  # marked, in the session
    world.add(102, ppid=101, marker="")  # Ray's renamed process: no id, parent proven
    world.add(103, ppid=102, marker="", start=START + 3)  # ... down the tree
    world.add(104, ppid=1, marker="")  # no id, parent not the head's
    world.add(105, marker=OTHER)  # another head's id
    world.add(106, ppid=105, marker="")  # no id, its parent another head's
    world.add(107, sid=200)  # the id, but another session
    world.add(108, state="Z")  # a zombie
    world.add(109, start=START - 1)  # started before the leader: the pid's earlier owner's process
    world.add(110, marker=None)  # an environment this user cannot read
    world.add(111, ppid=101, marker="", start=START)  # unmarked, started before its parent 101
    world.add(os.getpid())  # this process is never a member, even in the session
    assert members(session()) == [100, 101, 102, 103]
    assert members(session(head_id=OTHER)) == [105, 106]


def test_an_unmarked_child_counts_once_its_parent_is_proven_whatever_the_table_order(monkeypatch):
    world = World(monkeypatch)
    world.add(201, ppid=202, marker="", start=START + 5)  # listed before its parent
    world.add(202, ppid=203, marker="", start=START + 4)
    world.add(203, start=START + 3).leader()
    assert members(session()) == [100, 201, 202, 203]


def test_a_leader_pid_held_by_another_process_means_nothing_is_left(monkeypatch):
    world = World(monkeypatch).leader(start=START + 50)  # the pid reused: another start time
    world.add(101)
    assert members(session()) == []
    assert session().leader_alive() is False


def test_a_gone_leader_leaves_its_marked_processes_members(monkeypatch):
    World(monkeypatch).add(101).add(102, ppid=101, marker="")
    assert members(session()) == [101, 102]
    assert session().leader_alive() is False


@pytest.mark.parametrize("leader, alive", [
    ({}, True),
    ({"state": "Z"}, False),
    ({"sid": 1}, False),
    ({"start": START + 1}, False),
    ({"marker": OTHER}, False),
    ({"marker": ""}, False),  # the leader itself must carry the id
    ({"marker": None}, False),
])
def test_the_leader_is_alive_only_with_its_pid_session_start_and_id(monkeypatch, leader, alive):
    World(monkeypatch).leader(**leader)
    assert session().leader_alive() is alive
    assert (LEADER in members(session())) is alive


def test_another_boot_has_no_members_and_no_leader(monkeypatch):
    World(monkeypatch, boot="boot-2").leader().add(101)
    assert members(session("boot-1")) == [] and session("boot-1").leader_alive() is False
    assert members(session("boot-2")) == [100, 101] and session("boot-2").leader_alive() is True
    assert members(session(None)) == [100, 101]  # a record without a boot id: this boot


def test_off_linux_start_times_are_whole_seconds_and_environments_are_not_read(monkeypatch):
    world = World(monkeypatch, linux=False).leader(start=START + 1.2)  # same start, as `ps` rounds it
    world.add(101, start=START - 1.4, marker=None)  # `ps` whole seconds: within 1.5 s of the leader's start
    world.add(102, start=START - 1.6, marker=None)  # earlier: not the head's
    assert members(session()) == [100, 101]
    assert session().leader_alive() is True


def test_off_linux_an_unmarked_child_reported_in_its_parents_second_is_the_heads(monkeypatch):
    world = World(monkeypatch, linux=False).leader()
    world.add(101, ppid=LEADER, start=START, marker="")  # `ps` rounds both to the same whole second
    world.add(102, ppid=101, start=START - 1, marker="")  # a second earlier, as whole seconds may show it
    world.add(103, ppid=101, start=START - 2, marker="")  # two seconds before its parent: not its child
    assert members(session()) == [100, 101, 102]


# --- stop: SIGTERM to the leader, then to what is left, then SIGKILL


def test_stop_lets_the_leader_drain_its_children(monkeypatch):
    world = World(monkeypatch).leader().add(101).add(102, ppid=101, marker="")
    world.on_term[LEADER] = [101, 102]
    world.add(103, marker=OTHER)
    assert session().stop(timeout=10) == []
    assert world.signals == [(0.0, LEADER, signal.SIGTERM)]
    assert 103 in world.procs and world.reaped[-1] == LEADER
    assert world.reap_waits[-1] == 5.0  # the signalled leader's exit is collected, waiting up to 5 s


def test_stop_waits_out_the_timeout_then_terminates_then_kills_what_is_left(monkeypatch):
    world = World(monkeypatch).leader(ignores={signal.SIGTERM})
    world.add(101, ignores={signal.SIGTERM}).add(102, ppid=101, marker="")
    assert session().stop(timeout=10) == []
    term = [(t, pid) for t, pid, sig in world.signals if sig == signal.SIGTERM]
    kill = [(t, pid) for t, pid, sig in world.signals if sig == signal.SIGKILL]
    assert term[0] == (0.0, LEADER)
    assert sorted(pid for _, pid in term[1:]) == [100, 101, 102]
    assert all(10.0 <= t <= 10.2 for t, _ in term[1:])  # after the leader's timeout, not before
    assert sorted(pid for _, pid in kill) == [100, 101]  # what SIGTERM left
    assert all(13.0 <= t <= 13.3 for t, _ in kill)  # three seconds' grace after SIGTERM


def test_stop_of_a_gone_leader_terminates_its_members_at_once(monkeypatch):
    world = World(monkeypatch).add(101).add(102, ppid=101, marker="")
    assert session().stop(timeout=10) == []
    assert sorted(world.signals) == [(0.0, 101, signal.SIGTERM), (0.0, 102, signal.SIGTERM)]


def test_a_process_proven_once_is_stopped_after_its_parent_exits(monkeypatch):
    """102 carries no id: once 101 has gone, only having been proven keeps it the head's."""
    world = World(monkeypatch).add(101).add(102, ppid=101, marker="", ignores={signal.SIGTERM})
    assert session().stop(timeout=10) == []
    assert (signal.SIGKILL, 102) in [(sig, pid) for _, pid, sig in world.signals]
    assert 102 not in world.procs


def test_a_seen_pid_taken_by_another_process_is_not_signalled(monkeypatch):
    world = World(monkeypatch).add(101).add(102, ppid=101, marker="", ignores={signal.SIGTERM})
    original = world.signal

    def signal_and_reuse(pid, sig):
        original(pid, sig)
        if pid == 101:  # 101 exits; its pid goes to a new, unrelated process
            world.add(101, ppid=1, sid=1, start=START + 99, marker="")

    monkeypatch.setattr(_process, "_signal", signal_and_reuse)
    assert session().stop(timeout=10) == []
    assert [(pid, sig) for _, pid, sig in world.signals if pid == 101] == [(101, signal.SIGTERM)]
    assert 101 in world.procs


def test_stop_returns_the_pids_that_survive_sigkill_after_waiting_for_them(monkeypatch):
    world = World(monkeypatch).add(101, ignores={signal.SIGTERM, signal.SIGKILL}).add(102)
    assert session().stop(timeout=10) == [101]
    assert [(pid, sig) for _, pid, sig in world.signals] == [
        (101, signal.SIGTERM), (102, signal.SIGTERM), (101, signal.SIGKILL)]
    assert 8.0 <= world.now <= 8.3  # waited 3 s after SIGTERM and 5 s after SIGKILL, no longer


def test_stop_of_another_heads_session_signals_nothing(monkeypatch):
    world = World(monkeypatch).leader(marker=OTHER).add(101, marker=OTHER).add(102, ppid=101, marker="")
    assert session().stop(timeout=10) == []
    assert world.signals == [] and sorted(world.procs) == [100, 101, 102]


def test_leader_alive_reaps_a_leader_this_process_started_so_no_zombie_is_left(monkeypatch):
    """A leader started here is collected (`_reap`) before its state is read: an exited one reads as gone."""
    World(monkeypatch)
    monkeypatch.setattr(_process, "_reap", REAL_REAP)
    waited = []

    class Child:  # the Popen of a leader that has exited
        def wait(self, timeout):
            waited.append(timeout)
            return 0

    monkeypatch.setitem(_process._CHILDREN, LEADER, Child())
    assert session().leader_alive() is False  # no leader in the table: it exited
    assert waited == [0.0] and LEADER not in _process._CHILDREN
