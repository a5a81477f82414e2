"""Start an embedded PostgreSQL, print its postmaster pid and dir, then wait to be killed."""

import time

from harness.pg.embedded import EmbeddedPostgres

pg = EmbeddedPostgres().start()
print(pg.proc.pid, pg.root, flush=True)
time.sleep(600)
