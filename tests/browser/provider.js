// A test-only EIP-1193 wallet for the browser tests (tests/browser/harness.py injects it
// with `add_init_script`, so it is in place before any page script runs, after every
// navigation). It is not MetaMask: it never asks anyone, it answers the account and chain
// questions itself and sends everything else to the anvil JSON-RPC URL it was given (anvil
// answers CORS, and its dev accounts are unlocked, so anvil itself sends the transactions
// and signs eth_signTypedData_v4).
//
// Configuration: `window.__walletConfig` = {rpcUrl, account, chainId, connected, reject},
// set by the harness just before this script; it is read at each request, so the harness
// can change it (switch the account, reject a method) for the page and its reloads.
// Every request is recorded in `window.__walletLog` ({method, params, result | error}) and
// reported to the test process through `window.__walletRecord` when that binding exists.
(() => {
  "use strict";
  const config = window.__walletConfig;
  if (!config) throw new Error("provider.js: window.__walletConfig is not set");
  // The site's permission outlives a reload at once, as a real wallet's does (the test
  // process learns of it later, through __walletRecord).
  const GRANTED = "__testWalletGranted";
  try {
    if (window.sessionStorage.getItem(GRANTED) === "1") config.connected = true;
  } catch (err) {
    // a document without storage (about:blank): the config alone decides
  }

  const log = [];
  const listeners = new Map();
  let nextId = 1;

  const hexChainId = () => "0x" + Number(config.chainId).toString(16);

  class ProviderRpcError extends Error {
    constructor(code, message, data) {
      super(message);
      this.name = "ProviderRpcError";
      this.code = code;
      if (data !== undefined) this.data = data;
    }
  }

  function emit(event, ...args) {
    for (const handler of listeners.get(event) || []) {
      try {
        handler(...args);
      } catch (err) {
        console.error("wallet listener for", event, "threw", err);
      }
    }
  }

  async function forward(method, params) {
    const response = await fetch(config.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
    });
    if (!response.ok) {
      throw new ProviderRpcError(-32603, `node answered HTTP ${response.status} to ${method}`);
    }
    const body = await response.json();
    if (body.error) throw new ProviderRpcError(body.error.code, body.error.message, body.error.data);
    return body.result;
  }

  function sameAddress(a, b) {
    return typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();
  }

  async function answer(method, params) {
    if ((config.reject || []).includes(method)) {
      throw new ProviderRpcError(4001, "User rejected the request.");
    }
    switch (method) {
      case "eth_requestAccounts":
        if (!config.connected) {
          config.connected = true;
          try {
            window.sessionStorage.setItem(GRANTED, "1");
          } catch (err) {
            // no storage: the test process still records the grant
          }
          emit("connect", { chainId: hexChainId() });
        }
        return [config.account];
      case "eth_accounts":
        return config.connected ? [config.account] : [];
      case "eth_chainId":
        return hexChainId();
      case "net_version":
        return String(config.chainId);
      case "wallet_switchEthereumChain": {
        const wanted = params && params[0] && params[0].chainId;
        if (wanted !== undefined && Number(wanted) === Number(config.chainId)) return null;
        throw new ProviderRpcError(4902, `Unrecognized chain ID ${wanted}: this wallet knows only ${hexChainId()}.`);
      }
      case "eth_sendTransaction": {
        if (!config.connected) throw new ProviderRpcError(4100, "The wallet is not connected: call eth_requestAccounts first.");
        const tx = Object.assign({}, params && params[0]);
        if (tx.from === undefined) tx.from = config.account;
        if (!sameAddress(tx.from, config.account)) {
          throw new ProviderRpcError(4100, `The wallet's account is ${config.account}, not ${tx.from}.`);
        }
        return forward(method, [tx]);
      }
      case "eth_signTypedData_v4":
      case "personal_sign":
      case "eth_sign": {
        if (!config.connected) throw new ProviderRpcError(4100, "The wallet is not connected: call eth_requestAccounts first.");
        // eth_signTypedData_v4 and eth_sign: [address, data]; personal_sign: [data, address]
        const signer = method === "personal_sign" ? params[1] : params[0];
        if (!sameAddress(signer, config.account)) {
          throw new ProviderRpcError(4100, `The wallet's account is ${config.account}, not ${signer}.`);
        }
        return forward(method, params);
      }
      default:
        return forward(method, params === undefined ? [] : params);
    }
  }

  async function request(args) {
    if (!args || typeof args.method !== "string") {
      throw new ProviderRpcError(-32600, "request() takes {method, params}");
    }
    const entry = { method: args.method, params: args.params === undefined ? [] : args.params };
    log.push(entry);
    try {
      entry.result = await answer(args.method, args.params);
      return entry.result;
    } catch (err) {
      entry.error = { code: err.code === undefined ? -32603 : err.code, message: String(err.message) };
      throw err;
    } finally {
      if (typeof window.__walletRecord === "function") {
        window.__walletRecord(JSON.parse(JSON.stringify(entry))).catch(() => {});
      }
    }
  }

  const ethereum = {
    isMetaMask: false,
    isTestWallet: true,
    request,
    on(event, handler) {
      if (!listeners.has(event)) listeners.set(event, []);
      listeners.get(event).push(handler);
      return ethereum;
    },
    removeListener(event, handler) {
      const handlers = listeners.get(event) || [];
      const at = handlers.indexOf(handler);
      if (at >= 0) handlers.splice(at, 1);
      return ethereum;
    },
    // For the harness only (switch_account in harness.py): what a user switching accounts
    // in the wallet's own window does.
    __switchAccount(address) {
      config.account = address;
      if (config.connected) emit("accountsChanged", [address]);
    },
  };

  Object.defineProperty(window, "__walletLog", { value: log, configurable: true });
  Object.defineProperty(window, "ethereum", { value: ethereum, configurable: true });
  window.dispatchEvent(new Event("ethereum#initialized"));

  // EIP-6963: announce the same provider to pages that discover wallets that way.
  const info = Object.freeze({
    uuid: "00000000-0000-4000-8000-000000000001",
    name: "Test wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E",
    rdns: "test.wallet",
  });
  const announce = () => window.dispatchEvent(
    new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider: ethereum }) }),
  );
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
