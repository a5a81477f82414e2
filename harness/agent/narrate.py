"""Agent events as plain lines for people (``harness agent`` prints these as they happen)."""

from __future__ import annotations

from harness.events import Event


def line(e: Event) -> str | None:
    """One short sentence per event worth showing; None for the rest."""
    ev = e.get("ev", "")
    conn = e.get("conn", "")
    if ev == "agent.start":
        return f"start an agent of {e['tag']} ({e['variant']} rules), logical process #{e['life']}"
    if ev == "agent.request":
        return f"→ GET /reinit{'?wait=true' if e['wait'] else ''}   [{conn}]"
    if ev == "agent.status":
        return f"← HTTP {e['status']}{', stream open: waiting for events' if e['status'] == 200 else ''}"
    if ev == "agent.event":
        return (f"★ event: workspace {e['decoded_ws']}, owner {e['owner']}, reason {e['reason'][:80]!r}")
    if ev == "agent.reinit":
        return f"⟳ reinitialise the agent (generation {e['generation']}); reconnect at once"
    if ev == "agent.duplicate":
        return f"= duplicate: owner {e['owner']} was already handled"
    if ev == "agent.stopped":
        return f"■ polling stopped ({e['why']}): {e.get('detail', '')[:160]}; the current agent keeps running"
    if ev == "agent.error":
        return f"✗ {e['error'][:200]} — retry in {e['next_wait_s'] * 1000:.1f} ms"
    if ev == "agent.restart":
        return f"↻ agent process restarted (logical process #{e['life']}): lastOwnerID forgotten"
    return None
