"""Scenarios where something happens after (or around) the claim: restarts, later builds, crashes, pubsub loss."""

from harness.protocol.model import World
from harness.scenarios import contract


def _consumed_claim(world: World):  # type: ignore[no-untyped-def]
    ws = world.prebuild()
    agent = world.start_agent(ws)
    world.claim(ws)
    world.complete(ws)
    world.settle()
    world.mark("quiet")
    return ws, agent


@contract("ONCE", "QUIET")
def test_agent_restart_after_claim(world: World) -> None:
    """The agent's VM reboots after the claim was consumed: the new process must not reinit again.

    A restarted agent has forgotten the owner it handled (lastOwnerID is 0). A durable release seeds the
    claim again to anyone asking with wait=true while the latest build is the claim build (§7).
    """
    _, agent = _consumed_claim(world)
    world.restart_agent(agent)
    world.settle()


@contract("ONCE", "QUIET")
def test_user_build_then_agent_restart(world: World) -> None:
    """After the claim the owner runs another build, then the agent restarts: no reinit.

    V3 (#26548) answers 409 "already handled by an earlier build"; V2 seeds the old claim from any
    successful latest build, however old the claim.
    """
    ws, agent = _consumed_claim(world)
    world.user_build(ws)
    world.restart_agent(agent)
    world.settle()


@contract("ONCE", "QUIET")
def test_replica_sigkill_after_claim(world: World) -> None:
    """The replica holding the agent's stream is SIGKILLed after the claim; the agent reconnects: no reinit.

    By then the agent's stream is on the reconnect replica. It is killed and started again; the agent
    retries on its back-off schedule until it is back.
    """
    _consumed_claim(world)
    world.kill_replica("reconnect")
    world.settle()


@contract("DURABLE", "ONCE")
def test_listener_gap(world: World) -> None:
    """The stream replica's pubsub listener is killed and the claim published before it reconnects.

    PostgreSQL delivers a NOTIFY only to sessions listening at that moment; the listener re-LISTENs
    after its 1 s back-off and what came in between is gone, silently (§3). The agent's stream stays
    open and quiet, so no release notices: the claim is lost until the agent reconnects for some reason.
    """
    ws = world.prebuild()
    world.start_agent(ws)
    world.claim(ws)
    world.kill_listener("stream")
    world.complete(ws)
    world.listener_back("stream")
    world.settle()
