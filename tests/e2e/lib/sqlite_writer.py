# SPDX-License-Identifier: MIT
# e2e workload: python3 writing an sqlite3 database in transactions that
# hold its locks most of the time (a POSIX write lock and read locks on the
# file: a migration is likely to catch them held).  One line per step:
# "N HOST ok|BAD" (BAD: the rows are not what was committed).
# Between two transactions sqlite holds no lock (a fifth of the time), so an
# exclusive flock on the database is held all along: a checkpoint always
# finds a lock on the file that the destination cannot take while the frozen
# source holds it, whenever it comes.  Not a POSIX lock: sqlite's return to
# no lock is an F_UNLCK of the whole file, which would drop it too.
import fcntl, os, socket, sqlite3, sys, time

out = open(sys.argv[1], "a", buffering=1)
db = sqlite3.connect(sys.argv[2], isolation_level=None, timeout=5)
held = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o644)  # never closed: that would drop sqlite's locks
fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY, host TEXT)")
i = db.execute("SELECT COUNT(*) FROM t").fetchone()[0]
while True:
    i += 1
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, socket.gethostname()))
        time.sleep(0.08)            # inside the transaction: locks held
        db.execute("COMMIT")
        n = db.execute("SELECT COUNT(*), MAX(i) FROM t").fetchone()
        ok = n[0] == i and n[1] == i
    except sqlite3.Error as e:
        out.write("%d %s BAD %s\n" % (i, socket.gethostname(), e))
        time.sleep(0.1)
        continue
    out.write("%d %s %s\n" % (i, socket.gethostname(), "ok" if ok else "BAD"))
    time.sleep(0.02)
