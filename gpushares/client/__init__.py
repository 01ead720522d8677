"""The client layer: everything the operator scripts, the web app and the tests do with
the suite, as importable Python, over any chain.

    chain.py       `Chain` (the interface), `Contract`/`Function` (ABI-bound reads and
                   transaction plans), `Tx`, `Plan`, `Receipt`, `Refused`, `Reverted`
    boa_chain.py   titanoboa, in-process (the tests)
    web3_chain.py  any JSON-RPC node (anvil, the benchmark, the web app)
    ape_chain.py   ape's provider and accounts (the scripts)
    context.py     `Client`: a chain plus its deployments file, and the suite's contracts
    suite.py       the one place that deploys the suite and wires its roles
    units.py       amounts and percentages in and out, addresses; `BadInput`
    kyc.py, spv.py, jurisdictions.py, oracle.py, pool.py, perp.py, hedge.py, keeper.py
                   one module per area, for people: read state as pydantic models, plan
                   actions as `Plan`s

Conventions every area module follows:

- Reads return pydantic models (or Records) built from the chain; "now" is always the
  chain's (`client.chain.now()`), never this machine's clock.
- An action is `plan_<verb>(client, <signer address>, ...) -> Plan`: the transactions
  to send in order (an approval first if one is missing) and, when the chain would
  refuse, `Plan.refusal` with the contract's own message from `gpushares.reasons` (or,
  for what no contract checks, a sentence that says what to do). Nothing is sent by a
  plan; `Chain.send(tx, sender)` sends.
- Input that cannot be used at all (not an address, a 7th decimal of a 6-decimal
  amount, an unknown market number) raises `BadInput` naming the field.
- Arithmetic that mirrors a contract (health, fills, funding) lives in the mirrors
  (`gpushares.lending`, `gpushares.perp`) and is tested against the contracts.
"""
