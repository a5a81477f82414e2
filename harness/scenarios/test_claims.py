"""Scenarios about one claim: delivered live, across a dropped stream, racing the durable check."""

from harness.protocol.model import World
from harness.scenarios import contract


@contract("ONCE", "IDENTITY")
def test_live_claim(world: World) -> None:
    """A claim completes while the agent's stream is up: one reinit, for the claiming owner.

    The agent holds its stream on the stream replica; the claim build completes on the publisher
    replica, which publishes in its own format; every later connection goes to the reconnect replica.
    """
    ws = world.prebuild()
    world.start_agent(ws)
    world.claim(ws)
    world.complete(ws)
    world.settle()


@contract("DURABLE", "ONCE", "IDENTITY")
def test_claim_while_stream_down(world: World) -> None:
    """The claim's event is lost in flight (stream cut at the data frame); the agent reconnects.

    The bug #23108 fixed: the proxy cuts the agent's stream as the claim's data frame starts to arrive,
    so the agent never sees it, and reconnects to the reconnect replica. A release with the durable
    check seeds the claim then; one without has lost it.
    """
    ws = world.prebuild()
    agent = world.start_agent(ws)
    world.claim(ws)
    world.cut(agent, at="next_data")
    world.complete(ws)
    world.settle()


@contract("ONCE", "IDENTITY")
def test_claim_build_running_on_reconnect(world: World) -> None:
    """The stream drops while the claim build runs; the agent is back before it completes.

    The reconnect replica's durable check sees a pending claim build and keeps waiting on pubsub;
    the completion's event must then reach the agent once.
    """
    ws = world.prebuild()
    agent = world.start_agent(ws)
    world.claim(ws)
    world.cut(agent)
    world.await_decision(agent)
    world.complete(ws)
    world.settle()


@contract("QUIET", "STOP")
def test_failed_claim_build(world: World) -> None:
    """The claim build fails: no reinit, and an agent that reconnects should learn it and stop polling.

    Nothing is published for a failed build. The stream is then cut so the agent asks again: a durable
    release answers 409 "Claim build failed permanently." and a V2+ agent stops polling for good.
    """
    ws = world.prebuild()
    agent = world.start_agent(ws)
    world.mark("quiet")
    world.claim(ws)
    world.complete(ws, ok=False, error="terraform apply: quota exceeded")
    world.cut(agent)
    world.settle()


@contract("STOP", "QUIET")
def test_regular_workspace(world: World) -> None:
    """An agent of a workspace that was never a prebuild must stop polling /reinit and never reinit.

    A durable release answers its wait=true request with 409 and a V2+ agent stops there; anything else
    holds a stream open or retries for as long as the workspace lives.
    """
    ws = world.regular_workspace()
    world.mark("quiet")
    world.start_agent(ws)
    world.settle()


HOLD_MS = 60_000  # "until released": longer than any wait of a cell, so only the release ends it


@contract("ONCE", "IDENTITY")
def test_subscribe_check_race(world: World) -> None:
    """The claim is published while the reconnect replica's durable check is delayed: not lost.

    The agent reconnects while the claim build runs; the replica subscribes, then its durable check is
    held; the claim build completes and its publish reaches the subscription; only then is the check
    released, and it sees the build succeeded. Subscribing before checking means the event is caught
    either by the subscription or by the check — exactly once (a release that checked first would have
    missed the publish and seen the build pending, and the claim would be lost).
    """
    ws = world.prebuild()
    agent = world.start_agent(ws)
    world.claim(ws)
    world.delay_check("reconnect", HOLD_MS)
    world.cut(agent)
    world.await_checked(agent)
    world.complete(ws)
    world.await_heard(agent)
    world.delay_check("reconnect", 0)
    world.settle()


@contract("ONCE", "QUIET")
def test_duplicate_publish(world: World) -> None:
    """The same claim is published again after it was consumed: no second reinit.

    A retried job completion or a second replica finishing the same job publishes the claim twice.
    An agent still listening gets it again; only owner dedupe (V2+ agents) or a stopped poller ignores it.
    """
    ws = world.prebuild()
    world.start_agent(ws)
    world.claim(ws)
    world.complete(ws)
    world.settle()
    world.mark("quiet")
    world.republish(ws)
    world.settle()
