"""`make app`: a local chain in the demo's state, the oracle quorum and the wallet app, all
on 127.0.0.1, until Ctrl-C.

    python -m app [--port 8545x]

Prints the app's URL, the chain to add to a browser wallet and the test accounts to import
(anvil's well-known development keys: never use them anywhere else)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from eth_account import Account

from app.serve import run_foreground
from app.server import Settings
from gpushares.appworld import running_world
from gpushares.devnode import CHAIN_ID, PROJECT_ROOT, dev_key


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="the app's port on 127.0.0.1")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gpu-shares-app-"))
    # SIGTERM stops everything as Ctrl-C does (the context managers stop the quorum and anvil).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print("Building the demo's world on a local anvil (about a minute)…", flush=True)
        with running_world(workdir) as world:
            oracle = world.cluster.url(world.cluster.names[0])
            settings = Settings(rpc_url=world.node.url, deployments=world.deployments_path,
                                oracle_url=oracle)
            print(f"\nThe wallet app:  http://127.0.0.1:{args.port}/")
            print(f"Chain to add to your wallet: RPC {world.node.url}, chain id {CHAIN_ID}, "
                  "currency ETH")
            print(f"Oracle node: {oracle}")
            print("Operator scripts against this chain (`ape run keeper`, `ape run spv "
                  "subscriptions fulfil --account TEST::1 --spv 1 --deposit ADDR`, ...) after:\n"
                  f"  export GPU_SHARES_DEPLOYMENTS_DIR={world.deployments_path.parent} "
                  f"APE_FOUNDRY_HOST={world.url}")
            print("\nTest accounts to import (anvil's public development keys; they hold "
                  "test funds on this local chain only):")
            for name, index in world.indices.items():
                key = dev_key(index)
                print(f"  {name:<9} {Account.from_key(key).address}  key 0x{key.hex()}")
            print("\nCtrl-C stops the app, the oracle nodes and the chain.", flush=True)
            run_foreground(settings, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(PROJECT_ROOT)
    main()
