"""From a cell's events to facts, from facts to a verdict; and live against predicted.

Facts are read off the events every world writes in the same vocabulary (agents' ``agent.*``,
replicas' ``control.claimed`` / ``build.completed``, the story's ``harness.mark``), so the same code
judges a live run and the model's prediction. The contract (DESIGN.md) is a set of independent
checkers, like Jepsen's: each turns facts into a CheckResult; one that crashes yields UNKNOWN with its
error and the others still run. A cell's verdict is the worst of its checks.

Windows: the *claim window* runs from the successful completion of the claim build to the story's
``quiet`` mark (or the end); the *quiet window* from that mark to the end.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.events import Event
from harness.protocol.ids import ZERO

STOP_BOUND = 3  # requests a regular workspace's agent may make before it must have stopped polling
SEVERITY = {"PASS": 0, "DEGRADED": 1, "UNKNOWN": 2, "FAIL": 3}


@dataclass
class Facts:
    reinits: int = 0
    reinits_in_claim_window: int = 0
    reinits_after_quiet: int | None = None
    decoded_workspace_ids: list[str] = field(default_factory=list)
    decoded_owner_ids: list[str] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)  # per reinit in the claim window: "ws/O", "0/0", ...
    reinit_requests: int = 0
    statuses: list[int] = field(default_factory=list)
    polling_stopped: bool = False
    stop_reason: str | None = None
    errors: int = 0
    claim_completed: bool = False
    claim_lost: bool | None = None
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _id_role(decoded: str, real: str | None, real_name: str) -> str:
    """How a decoded id relates to the real one: its role name, "0" (zero UUID) or "other"."""
    if decoded == str(ZERO):
        return "0"
    return real_name if decoded == real else "other"


def facts(events: Iterable[Event], *, agents: set[str], workspaces: set[str], agent_has_owner: bool) -> Facts:
    """The facts of one cell from its events (any order; sorted by monotonic time here)."""
    evs = sorted((e for e in events if e.get("agent") in agents or e.get("ws") in workspaces or
                  (e.get("ev") == "harness.mark" and "ws" not in e)), key=lambda e: e.get("m", 0.0))
    f = Facts()
    owners: dict[str, str] = {}
    completed_at: float | None = None
    quiet_at: float | None = None
    stopped = False
    for e in evs:
        ev = e["ev"]
        if ev == "control.claimed":
            owners[e["ws"]] = e["owner"]
        elif ev == "build.completed" and e.get("stage") == "CLAIM" and e.get("status") == "succeeded":
            f.claim_completed = True
            completed_at = completed_at if completed_at is not None else e["m"]
        elif ev == "harness.mark" and e.get("label") == "quiet" and quiet_at is None:
            quiet_at = e["m"]
        elif ev == "agent.request":
            f.reinit_requests += 1
        elif ev == "agent.status":
            if e["status"] not in f.statuses:
                f.statuses.append(e["status"])
        elif ev == "agent.error":
            f.errors += 1
        elif ev == "agent.stopped":
            stopped, f.stop_reason = True, e.get("why")
        elif ev in ("agent.start", "agent.restart"):
            stopped, f.stop_reason = False, None
        elif ev == "agent.reinit":
            f.reinits += 1
            f.decoded_workspace_ids.append(e["decoded_ws"])
            f.decoded_owner_ids.append(e["owner"])
            in_claim = completed_at is not None and e["m"] >= completed_at and (quiet_at is None or e["m"] < quiet_at)
            if in_claim:
                f.reinits_in_claim_window += 1
                owner_role = _id_role(e["owner"], owners.get(e["ws"]), "O") if agent_has_owner else "n/a"
                f.identity.append(f"{_id_role(e['decoded_ws'], e['ws'], 'ws')}/{owner_role}")
            if quiet_at is not None and e["m"] >= quiet_at:
                f.reinits_after_quiet = (f.reinits_after_quiet or 0) + 1
    f.statuses.sort()
    f.polling_stopped = stopped
    if quiet_at is not None and f.reinits_after_quiet is None:
        f.reinits_after_quiet = 0
    if f.claim_completed:
        f.claim_lost = f.reinits_in_claim_window == 0
        first = next((e for e in evs if e["ev"] == "agent.reinit" and completed_at is not None and
                      e["m"] >= completed_at and (quiet_at is None or e["m"] < quiet_at)), None)
        if first is not None and "t" in first and completed_at is not None:
            f.latency_ms = round((first["m"] - completed_at) * 1000, 1)
    return f


# -- the contract ---------------------------------------------------------------------------------------
@dataclass
class CheckResult:
    name: str
    verdict: str  # PASS | DEGRADED | FAIL | UNKNOWN
    count: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_once(f: Facts) -> CheckResult:
    n = f.reinits_in_claim_window
    if not f.claim_completed:
        return CheckResult("ONCE", "FAIL", 0, "the claim build never completed successfully")
    if n == 1:
        return CheckResult("ONCE", "PASS", 1, "reinitialised exactly once for the claim")
    return CheckResult("ONCE", "FAIL", n, "never reinitialised for the claim" if n == 0 else f"reinitialised {n} times "
                       "for one claim")


def check_durable(f: Facts) -> CheckResult:
    if f.claim_lost is None:
        return CheckResult("DURABLE", "FAIL", None, "no successful claim to deliver")
    if f.claim_lost:
        return CheckResult("DURABLE", "FAIL", 0, "the claim was lost: no reinit after the claim build completed")
    return CheckResult("DURABLE", "PASS", f.reinits_in_claim_window, "the claim reached the agent after reconnecting")


def check_quiet(f: Facts) -> CheckResult:
    n = f.reinits_after_quiet
    if n is None:
        return CheckResult("QUIET", "UNKNOWN", None, "the story set no quiet mark")
    if n == 0:
        return CheckResult("QUIET", "PASS", 0, "no further reinit")
    return CheckResult("QUIET", "FAIL", n, f"{n} spurious reinit{'s' if n > 1 else ''} after the claim was consumed")


def check_stop(f: Facts) -> CheckResult:
    if f.polling_stopped and f.reinit_requests <= STOP_BOUND:
        return CheckResult("STOP", "PASS", f.reinit_requests, f"stopped polling after {f.reinit_requests} request(s)")
    if f.polling_stopped:
        return CheckResult("STOP", "FAIL", f.reinit_requests, f"stopped only after {f.reinit_requests} requests "
                           f"(bound {STOP_BOUND})")
    return CheckResult("STOP", "FAIL", f.reinit_requests, f"still polling /reinit after {f.reinit_requests} "
                       "request(s): it never stops")


def check_identity(f: Facts) -> CheckResult:
    if not f.identity:
        return CheckResult("IDENTITY", "PASS", 0, "no reinit to identify")
    wrong = [i for i in f.identity if "other" in i]
    zero = [i for i in f.identity if "0" in i.split("/")]
    if wrong:
        return CheckResult("IDENTITY", "FAIL", len(wrong), f"decoded a wrong workspace or owner: {', '.join(wrong)}")
    if zero:
        return CheckResult("IDENTITY", "DEGRADED", len(zero), f"decoded zero ids (cosmetic): {', '.join(zero)}")
    return CheckResult("IDENTITY", "PASS", len(f.identity), "decoded the real workspace and owner")


CHECKERS: dict[str, Callable[[Facts], CheckResult]] = {
    "ONCE": check_once, "DURABLE": check_durable, "QUIET": check_quiet, "STOP": check_stop,
    "IDENTITY": check_identity,
}


def judge(f: Facts, contract: Iterable[str]) -> tuple[str, list[CheckResult]]:
    """Run each named checker; the verdict is the worst result."""
    results = []
    for name in contract:
        try:
            results.append(CHECKERS[name](f))
        except Exception as e:  # a broken checker must not hide the others
            results.append(CheckResult(name, "UNKNOWN", None, f"checker crashed: {e!r}: "
                                       f"{traceback.format_exc(limit=2).splitlines()[-1]}"))
    verdict = max((r.verdict for r in results), key=SEVERITY.__getitem__, default="PASS")
    return verdict, results


COMPARED = ("reinits_in_claim_window", "reinits_after_quiet", "polling_stopped", "claim_lost", "identity")


def differences(live: Facts, predicted: Facts) -> list[str]:
    """What the live run showed that the model did not predict (timing-free facts only)."""
    out = [f"{name}: live {getattr(live, name)!r}, predicted {getattr(predicted, name)!r}"
           for name in COMPARED if getattr(live, name) != getattr(predicted, name)]
    live_errors = sorted(s for s in live.statuses if s != 200)
    predicted_errors = sorted(s for s in predicted.statuses if s != 200)
    if live_errors != predicted_errors:
        out.append(f"non-200 statuses: live {live_errors}, predicted {predicted_errors}")
    return out
