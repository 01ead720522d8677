"""A parent that starts what the demo starts (anvil and oracle node processes), prints
their process ids, and waits to be killed: `tests/test_processes.py` kills it."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from gpushares.devnode import AnvilNode, dev_key
from gpushares.oracle_cluster import OracleCluster


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, AnvilNode() as node, OracleCluster(
        Path(tmp), rpc=node.url, hub="0x" + "11" * 20, keys=[dev_key(20), dev_key(21)],
        publisher_keys=[dev_key(7), dev_key(8)],
    ) as cluster:
        pids = [node.pid, *(p.pid for p in cluster.procs.values())]
        print("children", *pids, flush=True)
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 600)


if __name__ == "__main__":
    main()
