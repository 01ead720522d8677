"""The wallet app: the suite in a browser, for people with an ordinary wallet.

    server.py     FastAPI: server-rendered pages (one Lens read per page section) and the
                  `/api/plan/...` endpoints that turn a form into the transactions a wallet
                  signs, or into the refusal in words when the chain would refuse
    rpc.py        the JSON-RPC connection, counting the calls each page makes
    views.py      what each page shows, read through `gpushares.client.lens`
    actions.py    the forms: pydantic requests -> `gpushares.client` plans
    charts.py     inline SVG line charts (no JavaScript chart library)
    static/       wallet.js (EIP-1193 `window.ethereum`), proof.js (inclusion proofs), app.css
    templates/    Jinja2 pages

Nothing here holds a key: the user's wallet signs everything, and every page also works
read-only with no wallet connected. Run it with `make app`.
"""
