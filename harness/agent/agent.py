"""One simulated workspace agent: Coder's reinit loop of a given release, over real HTTP. PROTOCOL.md §5.

A ``SimAgent`` is a *logical agent process*: ``lastOwnerID`` and the running agent's generation live
as long as it does; ``restart()`` starts a fresh one (state lost), as a VM reboot would. Each life runs
in its own thread:

    wait per the retry schedule → GET /reinit (?wait=true if the release sends it)
    non-200: read the body (codersdk.ReadBodyAsError reads it all); 409 stops a V2/V3 agent for good,
             anything else is retried
    200: read with Coder's strict reader: skip pings; ``error`` events, unknown event types, bad
         bytes, EOF and undecodable JSON are errors (retried); the first data event is decoded with
         the release's codec, the connection closed, and the event handed to the release's rule:
         REINIT (generation += 1, reconnect at once) or DUPLICATE (stop polling, keep the agent).

Everything it does goes into its EventLog; those events are the facts the oracle reads.
"""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass

import requests

from harness.agent import http
from harness.events import EventLog
from harness.protocol import (
    END_OF_STREAM,
    AgentAction,
    AuthStyle,
    Backoff,
    ClaimEvent,
    GoJSONError,
    Release,
    SSEEvent,
    SSEProtocolError,
    StrictReader,
)
from harness.protocol.ids import REINIT_PATH, TOKEN_COOKIE, TOKEN_HEADER, ZERO
from harness.protocol.retry import CEIL_S, FLOOR_S

CONNECT_TIMEOUT_S = 10.0  # a dial that hangs this long is an error like any other


class StreamFailed(Exception):
    """This attempt failed; the loop retries (the server's or the network's fault)."""


@dataclass
class AgentState:
    life: int = 0
    generation: int = 0  # reinits performed, over every life
    last_owner: uuid.UUID = ZERO
    polling: bool = False
    requests: int = 0
    failures: int = 0  # attempts that failed and were retried
    last_failure: str = ""
    stopped_because: str = ""


class SimAgent:
    def __init__(self, agent_id: str, *, url: str, token: str, release: Release, log: EventLog,
                 time_scale: float = 1.0, workspace: str = "") -> None:
        if release.variant.agent is None:
            raise ValueError(f"{release.tag} ({release.variant.name}) has no reinit loop to simulate")
        self.id, self.url, self.token, self.release = agent_id, url.rstrip("/"), token, release
        self.rule = release.variant.agent
        self.log, self.time_scale, self.workspace = log, time_scale, workspace
        self.state = AgentState()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._stop_reason = "shutdown"

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> SimAgent:
        """Start a logical agent process (a fresh one: lastOwnerID = 0)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError(f"agent {self.id} is already running")
            self.state.life += 1
            self.state.last_owner = ZERO
            self.state.polling = True
            self.state.stopped_because = ""
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._life, args=(self.state.life, self._stop),
                                            name=f"agent-{self.id}", daemon=True)
        self.log.emit("agent.start", agent=self.id, ws=self.workspace, life=self.state.life, tag=self.release.tag,
                      variant=self.release.variant.name)
        self._thread.start()
        return self

    def interrupt(self, why: str = "shutdown") -> None:
        """Tell the logical process to end and wake any blocked read; ``join()`` waits for it."""
        with self._lock:
            self._stop_reason = why
            self._stop.set()
            http.shutdown(self._sock)

    def join(self, timeout_s: float = 30.0) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def stop(self, why: str = "shutdown") -> None:
        """End the logical process and wait for its thread. Idempotent."""
        self.interrupt(why)
        self.join()

    def restart(self) -> SimAgent:
        """A reboot: the running process dies with its state, a new one starts polling."""
        self.stop("restart")
        self.log.emit("agent.restart", agent=self.id, ws=self.workspace, life=self.state.life + 1)
        return self.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop --------------------------------------------------------------------------------------
    def _life(self, life: int, stop: threading.Event) -> None:
        http.on_socket(self._remember_socket)
        session = http.session(f"coder-agent-sim/{self.release.tag}")
        backoff = Backoff(floor=FLOOR_S * self.time_scale, ceil=CEIL_S * self.time_scale)
        seq = 0
        try:
            while True:
                wait = backoff.before_attempt()
                if stop.wait(wait) if wait > 0 else stop.is_set():
                    break
                seq += 1
                conn = f"{self.id}#{life}.{seq}"
                try:
                    event = self._attempt(session, conn, stop)
                except StreamFailed as e:
                    if stop.is_set():
                        break
                    with self._lock:
                        self.state.failures += 1
                        self.state.last_failure = str(e)
                    self.log.emit("agent.error", agent=self.id, ws=self.workspace, conn=conn, error=str(e),
                                  next_wait_s=round(backoff.peek(), 4))
                    continue
                if event is None:  # told to stop polling (409)
                    return
                if not self._handle(conn, event):
                    return
                backoff.reset()
        finally:
            session.close()
            http.on_socket(None)
            with self._lock:
                self.state.polling = False
            self.log.emit("agent.exit", agent=self.id, ws=self.workspace, life=life,
                          why=self.state.stopped_because or self._stop_reason)

    def _remember_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self._stop.is_set():
                http.shutdown(sock)

    def _request_headers(self, conn: str) -> dict[str, str]:
        headers = {"X-Harness-Agent": self.id, "X-Harness-Conn": conn}
        if self.release.auth is AuthStyle.HEADER:
            headers[TOKEN_HEADER] = self.token
        else:
            headers["Cookie"] = f"{TOKEN_COOKIE}={self.token}"
        return headers

    def _attempt(self, session: requests.Session, conn: str, stop: threading.Event) -> ClaimEvent | None:
        url = self.url + REINIT_PATH + ("?wait=true" if self.rule.sends_wait else "")
        with self._lock:
            self.state.requests += 1
        self.log.emit("agent.request", agent=self.id, ws=self.workspace, conn=conn, wait=self.rule.sends_wait)
        try:
            resp = session.get(url, headers=self._request_headers(conn), stream=True,
                               timeout=(CONNECT_TIMEOUT_S, None), allow_redirects=False)
        except requests.RequestException as e:
            raise StreamFailed(f"request failed: {_short(e)}") from None
        with resp:
            self.log.emit("agent.status", agent=self.id, ws=self.workspace, conn=conn, status=resp.status_code)
            if resp.status_code != 200:
                try:
                    body = resp.content  # ReadBodyAsError reads it all, however long the server streams
                except (requests.RequestException, OSError) as e:
                    raise StreamFailed(f"HTTP {resp.status_code}; reading the body failed: {_short(e)}") from None
                text = body[:300].decode("utf-8", "replace").strip()
                if self.rule.stops_on(resp.status_code):
                    self._stopped(conn, f"{resp.status_code}", detail=text)
                    return None
                raise StreamFailed(f"HTTP {resp.status_code}: {text}")
            return self._read_first_event(resp, conn, stop)

    def _read_first_event(self, resp: requests.Response, conn: str, stop: threading.Event) -> ClaimEvent:
        reader = StrictReader()
        chunks = resp.iter_content(chunk_size=None)
        try:
            while True:
                ev = reader.next_event()
                if isinstance(ev, SSEEvent):
                    if ev.type == "ping":
                        continue
                    if ev.type == "error":
                        raise StreamFailed(f"server sent an error event: {ev.data[:200]!r}")
                    try:
                        event = self.rule.codec.decode(ev.data)
                    except GoJSONError as e:
                        raise StreamFailed(f"decode data event: {e}") from None
                    self.log.emit("agent.event", agent=self.id, ws=self.workspace, conn=conn,
                                  decoded_ws=str(event.workspace_id), owner=str(event.owner_id), reason=event.reason,
                                  raw=ev.data.decode("utf-8", "replace")[:500])
                    return event
                if ev is END_OF_STREAM:
                    raise StreamFailed("stream ended (EOF)")
                chunk = next(chunks, b"")
                if not chunk and stop.is_set():
                    raise StreamFailed("stopped")
                reader.feed(chunk)
        except SSEProtocolError as e:
            raise StreamFailed(f"bad SSE: {e}") from None
        except (requests.RequestException, OSError) as e:
            raise StreamFailed(f"stream broke: {_short(e)}") from None

    def _handle(self, conn: str, event: ClaimEvent) -> bool:
        """Apply the release's rule; False when polling stops."""
        with self._lock:
            action, self.state.last_owner = self.rule.on_event(self.state.last_owner, event)
            if action is AgentAction.REINIT:
                self.state.generation += 1
                generation = self.state.generation
        if action is AgentAction.DUPLICATE:
            self.log.emit("agent.duplicate", agent=self.id, ws=self.workspace, conn=conn, owner=str(event.owner_id))
            self._stopped(conn, "duplicate", detail=f"owner {event.owner_id} already handled")
            return False
        self.log.emit("agent.reinit", agent=self.id, ws=self.workspace, conn=conn, generation=generation,
                      owner=str(event.owner_id), decoded_ws=str(event.workspace_id), life=self.state.life)
        return True

    def _stopped(self, conn: str, why: str, *, detail: str) -> None:
        with self._lock:
            self.state.polling = False
            self.state.stopped_because = why
        self.log.emit("agent.stopped", agent=self.id, ws=self.workspace, conn=conn, why=why, detail=detail)


def _short(e: BaseException) -> str:
    """The root cause in a line: "connection refused" rather than urllib3's pool and retry wrapping."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:  # requests → urllib3 → the socket's OSError
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()[:200]
        nested = [a for a in cause.args if isinstance(a, BaseException)]
        reason = getattr(cause, "reason", None)
        cause = nested[0] if nested else reason if isinstance(reason, BaseException) else cause.__cause__ or \
            cause.__context__
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
