"""Workspaces, builds and agent tokens in PostgreSQL, shared by every replica on the database.

Tables live in their own schema, ``harness``, so an existing database given with --pg-dsn is not
touched elsewhere. Replicas that start at the same moment create the schema under one advisory lock:
``CREATE ... IF NOT EXISTS`` alone races on the catalog.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from harness.protocol import Build, WorkspaceState
from harness.protocol.ids import PREBUILDS_SYSTEM_USER

SCHEMA_LOCK = 0x6861726E  # "harn": pg_advisory_xact_lock key for schema creation

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS harness;
CREATE TABLE IF NOT EXISTS harness.workspaces (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS harness.builds (
    workspace_id uuid NOT NULL REFERENCES harness.workspaces(id),
    number int NOT NULL,
    initiator_id uuid NOT NULL,
    job_status text NOT NULL CHECK (job_status IN ('pending', 'running', 'succeeded', 'failed')),
    job_error text NOT NULL DEFAULT '',
    stage text NOT NULL CHECK (stage IN ('NONE', 'CREATE', 'CLAIM')),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (workspace_id, number)
);
CREATE TABLE IF NOT EXISTS harness.agent_tokens (
    token uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES harness.workspaces(id)
);
"""


class StoreError(Exception):
    """A control request that does not fit the workspace's state (the caller's mistake): HTTP 409."""


@dataclass(frozen=True)
class AgentWorkspace:
    """What the agent-token middleware and the handler's first lookup give: the workspace and its owner."""

    id: uuid.UUID
    owner: uuid.UUID


def _build(row: dict) -> Build:
    return Build(row["number"], row["initiator_id"], row["job_status"], row["stage"], row["job_error"])


class Store:
    def __init__(self, dsn: str, *, max_connections: int = 8) -> None:
        self.pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_connections,
                                        kwargs={"autocommit": True, "row_factory": dict_row}, open=False)

    async def open(self) -> Store:
        await self.pool.open(wait=True, timeout=30)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            await conn.execute(SCHEMA)
        return self

    async def close(self) -> None:
        await self.pool.close()

    # -- what /reinit reads --------------------------------------------------------------------------
    async def token_workspace(self, token: uuid.UUID) -> uuid.UUID | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "select workspace_id from harness.agent_tokens where token = %s", (token,))).fetchone()
        return row["workspace_id"] if row else None

    async def agent_workspace(self, workspace_id: uuid.UUID) -> AgentWorkspace | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "select id, owner_id from harness.workspaces where id = %s and not deleted",
                (workspace_id,))).fetchone()
        return AgentWorkspace(row["id"], row["owner_id"]) if row else None

    async def builds(self, workspace_id: uuid.UUID) -> tuple[Build, Build] | None:
        """(first build, latest build)."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "(select * from harness.builds where workspace_id = %(ws)s order by number asc limit 1) union all "
                "(select * from harness.builds where workspace_id = %(ws)s order by number desc limit 1)",
                {"ws": workspace_id})).fetchall()
        if not rows:
            return None
        return _build(rows[0]), _build(rows[-1])

    async def workspace_state(self, workspace: AgentWorkspace) -> WorkspaceState | None:
        builds = await self.builds(workspace.id)
        if builds is None:
            return None
        return WorkspaceState(workspace.id, workspace.owner, *builds)

    # -- what the control API changes ----------------------------------------------------------------
    async def create_workspace(self, *, prebuild: bool, owner: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
        """A prebuild (owned by the system user, build 1 by it) or a regular workspace; (id, agent token)."""
        ws, token = uuid.uuid4(), uuid.uuid4()
        owner = PREBUILDS_SYSTEM_USER if prebuild else owner
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("insert into harness.workspaces (id, owner_id) values (%s, %s)", (ws, owner))
            await conn.execute(
                "insert into harness.builds (workspace_id, number, initiator_id, job_status, stage, completed_at) "
                "values (%s, 1, %s, 'succeeded', 'CREATE', now())", (ws, owner))
            await conn.execute("insert into harness.agent_tokens (token, workspace_id) values (%s, %s)", (token, ws))
        return ws, token

    async def claim(self, workspace_id: uuid.UUID, user: uuid.UUID, *, create_build: bool) -> int | None:
        """Owner := user and (normally) a pending CLAIM build by the user, in one transaction."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(
                "update harness.workspaces set owner_id = %s where id = %s and owner_id = %s and not deleted "
                "returning id", (user, workspace_id, PREBUILDS_SYSTEM_USER))).fetchone()
            if row is None:
                raise StoreError(f"workspace {workspace_id} is not an unclaimed prebuild")
            return await self._insert_build(conn, workspace_id, user, "CLAIM") if create_build else None

    async def start_build(self, workspace_id: uuid.UUID, initiator: uuid.UUID, stage: str) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            return await self._insert_build(conn, workspace_id, initiator, stage)

    async def _insert_build(self, conn: psycopg.AsyncConnection, ws: uuid.UUID, initiator: uuid.UUID,
                            stage: str) -> int:
        row = await (await conn.execute(
            "insert into harness.builds (workspace_id, number, initiator_id, job_status, stage) "
            "select %(ws)s, coalesce(max(number), 0) + 1, %(by)s, 'pending', %(stage)s "
            "from harness.builds where workspace_id = %(ws)s returning number",
            {"ws": ws, "by": initiator, "stage": stage})).fetchone()
        return row["number"]

    async def complete_build(self, workspace_id: uuid.UUID, number: int | None, *, succeeded: bool,
                             error: str = "") -> Build:
        """Finish a build's job (``number=None``: the latest). The caller publishes after this commits."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(
                "update harness.builds set job_status = %(status)s, job_error = %(error)s, completed_at = now() "
                "where workspace_id = %(ws)s and number = coalesce(%(n)s, "
                "  (select max(number) from harness.builds where workspace_id = %(ws)s)) "
                "and job_status in ('pending', 'running') returning *",
                {"status": "succeeded" if succeeded else "failed", "error": error, "ws": workspace_id,
                 "n": number})).fetchone()
        if row is None:
            raise StoreError(f"workspace {workspace_id} has no pending build {number or '(latest)'}")
        return _build(row)

    async def delete_workspace(self, workspace_id: uuid.UUID) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("update harness.workspaces set deleted = true where id = %s", (workspace_id,))

    async def describe(self, workspace_id: uuid.UUID) -> dict | None:
        async with self.pool.connection() as conn:
            ws = await (await conn.execute("select * from harness.workspaces where id = %s",
                                           (workspace_id,))).fetchone()
            if ws is None:
                return None
            builds = await (await conn.execute(
                "select number, initiator_id, job_status, job_error, stage from harness.builds "
                "where workspace_id = %s order by number", (workspace_id,))).fetchall()
        return {"id": str(ws["id"]), "owner_id": str(ws["owner_id"]), "deleted": ws["deleted"],
                "is_prebuild": ws["owner_id"] == PREBUILDS_SYSTEM_USER,
                "builds": [{**b, "initiator_id": str(b["initiator_id"])} for b in builds]}
