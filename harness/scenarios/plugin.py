"""pytest wiring for the scenarios: options, fixtures, hooks. The work lives in plain objects.

Active only when the scenarios are collected (``--matrix`` given, or ``harness.scenarios`` among the
arguments); otherwise it stays out of the way. The controller process (the only one without xdist)
reads the matrix, plans the cells, starts PostgreSQL unless a DSN is given, and records results;
xdist workers inherit the DSN and run folder through the environment, each with its own Stage.
Each scenario test is parametrised by its cells; ``pytest_pyfunc_call`` runs the story through
``harness.runner.run_cell`` and turns the verdict into a test outcome: PASS/DEGRADED pass, a FAIL or
SURPRISE accepted by the ledger is an xfail with the ledger's reason, anything else fails.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import __version__, interrupts
from harness.errors import HarnessError, UsageError
from harness.matrix import Matrix
from harness.matrix import load as load_matrix
from harness.pg.locate import DSN_ENV, located_and_checked
from harness.plan import Cell, cells
from harness.results import RunRecorder
from harness.scenarios import catalogue
from harness.settings import Settings, matrix_path, ready_report_dir
from harness.settings import resolve as resolve_settings

RUN_DIR_ENV = "HARNESS_RUN_DIR"
VIA_HARNESS_RUN = "HARNESS_VIA_RUN"  # set by `harness run`, which prints the summary itself


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "rolling-upgrade compatibility harness")
    g.addoption("--matrix", help="matrix file (default: $HARNESS_MATRIX or ./matrix.yaml)")
    g.addoption("--harness-seed", type=int, help="run seed (default: $HARNESS_SEED, then the matrix)")
    g.addoption("--harness-time-scale", type=float, help="scale Coder's timings (default: 1)")
    g.addoption("--harness-quiet-ms", type=int, help="how long a settled cell is watched (default: 300)")
    g.addoption("--harness-cell", action="append", help="run only this cell id (repeatable)")
    g.addoption("--harness-scenario", action="append", help="run only this scenario (repeatable)")
    g.addoption("--harness-report-dir", help="where run folders go (default: ./reports)")
    g.addoption("--harness-run-dir", help="the run folder to use (default: a new one under the report dir)")


def _active(config: pytest.Config) -> bool:
    args = " ".join(str(a) for a in config.invocation_params.args)
    return bool(config.getoption("matrix")) or "harness.scenarios" in args or "harness/scenarios" in args


def pytest_configure(config: pytest.Config) -> None:
    if _active(config):
        interrupts.install()  # also under plain pytest, and in each xdist worker
        config.pluginmanager.register(HarnessSession(config), "harness-session")


def _session(config: pytest.Config) -> HarnessSession:
    return config.pluginmanager.get_plugin("harness-session")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def harness_stage(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """This worker's stage: replicas by tag behind a fault proxy, logs under the run folder."""
    from harness.stage import Stage

    session = _session(pytestconfig)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with Stage(os.environ[DSN_ENV], session.run_dir / "logs" / worker, time_scale=session.settings.time_scale) as stage:
        yield stage


@pytest.fixture
def cell() -> Cell:
    raise pytest.UsageError("scenario tests run through the harness plugin's cell parametrisation")


@pytest.fixture
def world(cell: Cell, harness_stage):  # type: ignore[no-untyped-def]
    """The stage this cell's live world is built on (the runner builds the world when the story runs)."""
    return harness_stage


def new_run_dir(report_dir: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return report_dir / f"{stamp}-{secrets.token_hex(3)}"


class HarnessSession:
    """Per pytest process: the matrix, the plan, settings, and (controller) the recorder and PostgreSQL."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.scenarios = catalogue()
        try:
            self.matrix: Matrix = load_matrix(matrix_path(config.getoption("matrix")),
                                              known_scenarios=list(self.scenarios))
            self.settings: Settings = resolve_settings(
                self.matrix, seed=config.getoption("harness_seed"), time_scale=config.getoption("harness_time_scale"),
                quiet_ms=config.getoption("harness_quiet_ms"), report_dir=config.getoption("harness_report_dir"))
            self.plan: list[Cell] = cells(self.matrix, list(self.scenarios),
                                          only_scenarios=config.getoption("harness_scenario"),
                                          only_cells=config.getoption("harness_cell"))
        except UsageError as e:
            raise pytest.UsageError(str(e)) from None
        self.by_scenario: dict[str, list[Cell]] = {}
        for c in self.plan:
            self.by_scenario.setdefault(c.scenario, []).append(c)
        self.recorder: RunRecorder | None = None
        self._pg = None
        self._done = 0
        self.total = len(self.plan)
        if not self.worker:
            self._start_controller()
        self.run_dir = Path(os.environ[RUN_DIR_ENV])

    # -- controller ---------------------------------------------------------------------------------------
    def _start_controller(self) -> None:
        run_dir = Path(self.config.getoption("harness_run_dir") or new_run_dir(self.settings.report_dir))
        os.environ[RUN_DIR_ENV] = str(run_dir)
        try:
            ready_report_dir(self.settings.report_dir)
            source = located_and_checked()
        except UsageError as e:
            raise pytest.UsageError(str(e)) from None
        else:
            from harness.pg.embedded import EmbeddedPostgres

            self._pg = EmbeddedPostgres(source).start()
            os.environ[DSN_ENV] = self._pg.dsn
        m, s = self.matrix, self.settings
        meta = {
            "harness_version": __version__, "matrix": str(m.path), "matrix_sha256": m.sha256, "seed": s.seed,
            "time_scale": s.time_scale, "quiet_ms": s.quiet_ms, "settings_from": s.sources, "candidate": m.candidate,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "postgres": source.describe(), "workers": self.config.getoption("numprocesses", None) or 0,
            "cells_planned": len(self.plan), "cell_order": [c.id for c in self.plan],
            "matrix_cells": len(cells(m, list(self.scenarios))),  # a smaller plan cannot call a ledger line stale
            "cells_chosen": bool(self.config.getoption("harness_cell")),  # --cell: a repro, kept out of history
            "scenarios": {n: {"title": sc.title, "contract": list(sc.contract), "doc": sc.doc}
                          for n, sc in self.scenarios.items() if n in self.by_scenario},
            "ledger": [{"line": e.line, "match": e.describe(), "reason": e.reason, "ticket": e.ticket,
                        "expires": e.expires.isoformat(), "live": e.live(dt.date.today())} for e in m.ledger],
            "argv": sys.argv,
        }
        from harness.report import render_run

        self.recorder = RunRecorder(run_dir, meta, on_write=render_run)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.settings
        return [f"harness: {len(self.plan)} cells from {self.matrix.path} · seed {s.seed} ({s.sources['seed']}) · "
                f"time scale {s.time_scale:g} ({s.sources['time_scale']}) · run folder {self.run_dir}"]

    @pytest.hookimpl(tryfirst=True)  # before xdist's, which writes its status line
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not os.environ.get(VIA_HARNESS_RUN):
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if hasattr(tr, "_report_keyboardinterrupt"):
            # `harness run` says "interrupted" itself: no pytest banner pointing at --full-trace, not its option
            tr._report_keyboardinterrupt = lambda: None  # type: ignore[union-attr]
        dist = self.config.pluginmanager.get_plugin("terminaldistreporter")
        if dist is not None:  # "bringing up nodes..." (twice when piped): the header and progress lines say it
            dist.ensure_show_status = dist.rewrite = lambda *a, **k: None

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self._pg is not None:
            self._pg.stop()

    # -- collection -----------------------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        name = metafunc.function.__name__.removeprefix("test_")
        if "cell" in metafunc.fixturenames and name in self.scenarios and self.by_scenario.get(name):
            plan = self.by_scenario[name]
            metafunc.parametrize("cell", plan, ids=[c.pairing for c in plan])

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # scenarios with no cell in the plan are not part of this run: drop them quietly
        items[:] = [i for i in items if getattr(i, "callspec", None) is not None
                    or "cell" not in getattr(i, "fixturenames", ())]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """What actually runs (after -k, --deselect, …) is the plan the run is complete against."""
        self._selected([i.nodeid for i in session.items])

    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self._selected(ids)  # under xdist the controller collects nothing itself

    def _selected(self, nodeids: list[str]) -> None:
        if self.recorder is None or self.recorder.meta.get("selected"):
            return
        wanted = {f"test_{c.scenario}[{c.pairing}]": c.id for c in self.plan}
        chosen = [wanted[n.rsplit("::", 1)[-1]] for n in nodeids if n.rsplit("::", 1)[-1] in wanted]
        self.recorder.meta.update(selected=True, cells_planned=len(chosen), cell_order=chosen)
        self.total = len(chosen)

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):  # type: ignore[no-untyped-def]
        if report.when == "call" and any(k == "harness_cell" for k, _ in report.user_properties):
            return ("xfailed" if hasattr(report, "wasxfail") else report.outcome), "", ""  # our own line instead
        return None

    # -- running ------------------------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        if "cell" not in pyfuncitem.funcargs:
            return None
        from harness.runner import run_cell

        cell: Cell = pyfuncitem.funcargs["cell"]
        result = run_cell(pyfuncitem.funcargs["world"], cell, self.scenarios[cell.scenario], self.matrix, self.settings)
        pyfuncitem.user_properties.append(("harness_cell", result))
        if result["error"]:
            raise HarnessError(f"cell {cell.id} could not run", details=result["error"])
        if result["accepted"]:
            ledger = result["ledger"]
            pytest.xfail(f"accepted by matrix ledger line {ledger['line']} ({ledger['ticket']}): {ledger['reason']}")
        if result["verdict"] == "FAIL" or result["surprise"]:
            from harness.report.words import paragraph

            pytest.fail(paragraph(result), pytrace=False)
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.recorder is None:
            return
        result = next((v for k, v in report.user_properties if k == "harness_cell"), None)
        if result is None and report.failed and report.when == "setup":
            result = self._setup_error(report)
        if result is None or (report.when == "teardown" and report.passed):
            return
        self.recorder.add(result)
        self._done += 1
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            status = result["verdict"] + (" SURPRISE" if result["surprise"] else "") + (
                " (accepted)" if result["accepted"] else "")
            tr.write_line(f"[{self._done:>4}/{self.total}] {status:<17}  {result['id']}  "
                          f"predicted {result['predicted']['verdict']}  {result['duration_s']:.1f}s")

    def _setup_error(self, report: pytest.TestReport) -> dict[str, Any] | None:
        from harness.runner import repro

        cell = next((c for c in self.plan if report.nodeid.endswith(f"[{c.pairing}]") and
                     f"test_{c.scenario}[" in report.nodeid), None)
        if cell is None:
            return None
        releases = cell.releases(self.matrix)
        return {"id": cell.id, "scenario": cell.scenario, "title": self.scenarios[cell.scenario].title,
                "pairing": cell.pairing, "versions": cell.tags,
                "variants": {r: rel.variant.name for r, rel in releases.items()}, "facts": {}, "checks": [],
                "verdict": "ERROR", "predicted": {"verdict": "?", "facts": {}, "checks": []}, "surprise": False,
                "differences": [], "ledger": None, "accepted": False,
                "candidate_involved": self.matrix.candidate is None or cell.involves(self.matrix.candidate),
                "repro": repro(cell, self.matrix, self.settings), "error": str(report.longrepr)[-3000:],
                "duration_s": report.duration, "timeline": []}

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.recorder is None:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or interrupts.received()
        self.recorder.meta["interrupted"] = interrupted
        self.recorder.write(finished=not interrupted)

    def pytest_terminal_summary(self, terminalreporter) -> None:  # type: ignore[no-untyped-def]
        """The gate and where the report is — unless `harness run`, which prints its own, drives pytest."""
        if self.recorder is None or os.environ.get(VIA_HARNESS_RUN) or not self.recorder.run_dir.joinpath(
                "results.json").exists():
            return
        import json

        from harness.commands.run import summary_lines

        results = json.loads((self.recorder.run_dir / "results.json").read_text())
        for line in summary_lines(results, self.recorder.run_dir):
            terminalreporter.write_line(line)
