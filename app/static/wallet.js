// The app's wallet code: EIP-1193 (`window.ethereum`), no library.
//
// Connect: eth_requestAccounts, then the app's chain (wallet_switchEthereumChain, adding
// it when the wallet does not know it); the address goes into the `account` cookie so the
// server renders the wallet's own sections. Forms marked `data-action` ask the server for
// a plan (`/api/plan/<action>`): a refusal is shown in words and nothing is sent; otherwise
// the notes and the transactions are shown, and only "Sign and send" asks the wallet,
// one transaction after the other, each awaited until mined.
"use strict";

const body = document.body;
const CHAIN_ID = "0x" + Number(body.dataset.chainId).toString(16);
const RPC_URL = body.dataset.rpcUrl;
const CHAIN_NAME = body.dataset.chainName;

function provider() {
  return window.ethereum || null;
}

function setAccount(address) {
  if (address) {
    document.cookie = `account=${address}; path=/; SameSite=Strict`;
  } else {
    document.cookie = "account=; path=/; max-age=0; SameSite=Strict";
  }
}

function currentAccount() {
  const match = document.cookie.match(/(?:^|; )account=(0x[0-9a-fA-F]{40})/);
  return match ? match[1] : null;
}

const STATES = ["ok", "refused", "busy", "done"];

function mark(target, kind) {
  target.classList.remove(...STATES);
  if (kind) target.classList.add(kind);
}

function say(target, text, kind) {
  target.textContent = text;
  mark(target, kind);
}

async function ensureChain(eth) {
  const current = await eth.request({ method: "eth_chainId" });
  if (current === CHAIN_ID) return;
  try {
    await eth.request({ method: "wallet_switchEthereumChain", params: [{ chainId: CHAIN_ID }] });
  } catch (err) {
    if (err && err.code === 4902) {
      await eth.request({
        method: "wallet_addEthereumChain",
        params: [{ chainId: CHAIN_ID, chainName: CHAIN_NAME, rpcUrls: [RPC_URL],
                   nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }],
      });
    } else {
      throw err;
    }
  }
}

async function connect() {
  const eth = provider();
  const status = document.getElementById("wallet-status");
  if (!eth) {
    say(status, "No browser wallet found: install one (MetaMask, Rabby) to act; every page " +
        "reads without one.", "refused");
    return;
  }
  try {
    const accounts = await eth.request({ method: "eth_requestAccounts" });
    await ensureChain(eth);
    setAccount(accounts[0]);
    window.location.reload();
  } catch (err) {
    say(status, "The wallet did not connect: " + errorText(err), "refused");
  }
}

function disconnect() {
  setAccount(null);
  window.location.reload();
}

function errorText(err) {
  if (!err) return "unknown error";
  if (err.code === 4001) return "you rejected the request in the wallet (nothing was sent).";
  return err.message || String(err);
}

function fieldsOf(form) {
  const out = {};
  for (const el of form.elements) {
    // data-local: read by the page itself (the attestation), not sent as a field
    if (!el.name || el.type === "submit" || el.type === "file" || el.dataset.local !== undefined) {
      continue;
    }
    if (el.type === "checkbox") {
      out[el.name] = el.checked;
    } else if (el.type === "radio") {
      if (el.checked) out[el.name] = el.value;
    } else if (el.dataset.type === "int") {
      out[el.name] = parseInt(el.value, 10);
    } else {
      out[el.name] = el.value.trim() === "" && el.dataset.optional ? null : el.value;
    }
  }
  return out;
}

async function postJson(url, payload) {
  const res = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  const data = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(typeof data.detail === "string" ? data.detail
                                                              : JSON.stringify(data.detail));
  return data;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function showRefusal(box, plan) {
  box.replaceChildren();
  mark(box, "refused");
  box.appendChild(el("p", "Refused, nothing sent: " + plan.refusal, "refusal"));
  if (plan.code !== null && plan.code !== undefined) {
    box.appendChild(el("p", `ERC-1404 restriction code ${plan.code}`, "code"));
  }
  if (plan.law && plan.law.length) {
    const list = el("ul", undefined, "law");
    for (const line of plan.law) list.appendChild(el("li", line.trim()));
    box.appendChild(list);
  }
}

async function waitMined(eth, hash) {
  for (let i = 0; i < 600; i++) {
    const receipt = await eth.request({ method: "eth_getTransactionReceipt", params: [hash] });
    if (receipt) return receipt;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`transaction ${hash} was not mined after 150 s`);
}

// Before anything is signed: the wallet must be on this app's chain (switched if it can
// be) and still hold the account the plan was made for.
async function readyToSign(eth, account) {
  try {
    await ensureChain(eth);
  } catch (err) {
    return `your wallet is not on this app's chain (${parseInt(CHAIN_ID, 16)}) and did not ` +
           `switch: ${errorText(err)}`;
  }
  if (await eth.request({ method: "eth_chainId" }) !== CHAIN_ID) {
    return `your wallet is not on this app's chain (${parseInt(CHAIN_ID, 16)})`;
  }
  const accounts = await eth.request({ method: "eth_accounts" });
  if (!accounts.length || accounts[0].toLowerCase() !== account.toLowerCase()) {
    return `your wallet now holds ${accounts[0] || "no account"}, not ${account} that this ` +
           "was checked for: reload the page";
  }
  return null;
}

async function signAndSend(box, plan, account) {
  const eth = provider();
  const log = el("ol", undefined, "sent");
  box.appendChild(log);
  const problem = await readyToSign(eth, account);
  if (problem) {
    log.appendChild(el("li", "Nothing sent: " + problem + ".", "refused"));
    return false;
  }
  for (const tx of plan.txs) {
    const item = el("li", `Asking your wallet to sign: ${tx.what}…`);
    log.appendChild(item);
    let hash;
    const fields = { from: account, to: tx.to, data: tx.data, value: tx.value };
    try {
      // Estimated now (after the steps before it were mined), with the margin the
      // project's own client uses: interest and funding accrue between the estimate and
      // the block, so an exact estimate can run out of gas.
      const estimate = BigInt(await eth.request({ method: "eth_estimateGas", params: [fields] }));
      fields.gas = "0x" + ((estimate * 12n) / 10n + 20000n).toString(16);
    } catch (err) {
      item.textContent = `${tx.what}: not sent, the chain would refuse it now: ${errorText(err)}`;
      item.className = "refused";
      return false;
    }
    try {
      hash = await eth.request({ method: "eth_sendTransaction", params: [fields] });
    } catch (err) {
      item.textContent = `${tx.what}: not sent, ${errorText(err)}`;
      item.className = "refused";
      return false;
    }
    item.textContent = `${tx.what}: sent ${hash}, waiting to be mined…`;
    const receipt = await waitMined(eth, hash);
    if (receipt.status !== "0x1") {
      item.textContent = `${tx.what}: reverted on-chain (${hash}); later steps not sent.`;
      item.className = "refused";
      return false;
    }
    item.textContent = `${tx.what}: done in block ${parseInt(receipt.blockNumber, 16)}.`;
    item.className = "done";
  }
  return true;
}

async function review(form) {
  const box = form.querySelector(".review");
  const account = currentAccount();
  if (!account || !provider()) {
    say(box, "Connect a wallet first: acting needs your signature.", "refused");
    return;
  }
  say(box, "Checking with the chain…", "busy");
  let plan;
  try {
    const payload = { account, ...fieldsOf(form) };
    if (form.dataset.attestation !== undefined) {
      payload.attestation = await readAttestation(form);
    }
    plan = await postJson(`/api/plan/${form.dataset.action}`, payload);
  } catch (err) {
    say(box, "Cannot do that: " + errorText(err), "refused");
    return;
  }
  if (plan.refusal) {
    showRefusal(box, plan);
    return;
  }
  box.replaceChildren();
  mark(box, "ok");
  box.appendChild(el("p", `Ready: ${plan.what}.`));
  if (plan.notes.length) {
    const notes = el("ul", undefined, "notes");
    for (const note of plan.notes) notes.appendChild(el("li", note));
    box.appendChild(notes);
  }
  const steps = el("ol", undefined, "steps");
  for (const tx of plan.txs) steps.appendChild(el("li", tx.what));
  box.appendChild(el("p", `Your wallet will ask you to sign ${plan.txs.length} ` +
                          `transaction${plan.txs.length === 1 ? "" : "s"}:`));
  box.appendChild(steps);
  const go = el("button", "Sign and send", "primary");
  go.type = "button";
  go.addEventListener("click", async () => {
    go.disabled = true;
    const ok = await signAndSend(box, plan, account);
    if (ok) {
      box.appendChild(el("p", "Done. Refreshing…", "done"));
      setTimeout(() => window.location.reload(), 400);
    } else {
      // Steps already mined stay done (an approval, say): check again for what is left.
      box.appendChild(el("p", "Stopped. Steps marked done above are on-chain; check the form " +
                              "again to plan what is left."));
    }
  });
  box.appendChild(go);
}

async function readAttestation(form) {
  const file = form.querySelector("input[type=file]");
  const text = form.querySelector("textarea[name=attestation_text]");
  let raw = text ? text.value.trim() : "";
  if (file && file.files.length) raw = await file.files[0].text();
  if (!raw) throw new Error("choose the attestation file your KYC provider sent you");
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new Error("the attestation is not JSON: " + err.message);
  }
}

async function kycSign(form) {
  const box = form.querySelector(".review");
  const account = currentAccount();
  if (!account || !provider()) {
    say(box, "Connect the KYC provider's wallet first.", "refused");
    return;
  }
  try {
    say(box, "Preparing the attestation…", "busy");
    const asked = await postJson("/api/kyc/typed-data", { account, ...fieldsOf(form) });
    if (asked.refusal) {
      showRefusal(box, asked);
      return;
    }
    say(box, "Asking your wallet to sign the attestation (EIP-712)…", "busy");
    const signature = await provider().request({
      method: "eth_signTypedData_v4", params: [account, JSON.stringify(asked.typed_data)],
    });
    const signed = await postJson("/api/kyc/attestation",
                                  { attestation: asked.attestation, signature, signer: account });
    const text = JSON.stringify(signed, null, 2);
    box.replaceChildren();
    mark(box, "ok");
    box.appendChild(el("p", `Signed for ${signed.attestation.investor}: send this file to ` +
                            "the investor, who submits it from their own wallet."));
    const link = el("a", "Download the attestation");
    link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    link.download = `eligibility-${signed.attestation.investor}.json`;
    box.appendChild(link);
    const pre = el("pre", text, "attestation");
    pre.id = "signed-attestation";
    box.appendChild(pre);
  } catch (err) {
    say(box, "Not signed: " + errorText(err), "refused");
  }
}

// The cookie only says whose sections the server rendered: the wallet decides. On load,
// follow the wallet's account (or its disconnection) before anything is planned.
async function reconcile() {
  const eth = provider();
  const cookie = currentAccount();
  if (!eth || !cookie) return true;
  let accounts;
  try {
    accounts = await eth.request({ method: "eth_accounts" });
  } catch (err) {
    return true;
  }
  const held = accounts && accounts.length ? accounts[0] : null;
  if (held && held.toLowerCase() === cookie.toLowerCase()) return true;
  setAccount(held);
  window.location.reload();
  return false;
}

function init() {
  const connectButton = document.getElementById("connect");
  if (connectButton) connectButton.addEventListener("click", connect);
  const disconnectButton = document.getElementById("disconnect");
  if (disconnectButton) disconnectButton.addEventListener("click", disconnect);
  const eth = provider();
  if (eth && eth.on) {
    eth.on("accountsChanged", (accounts) => {
      setAccount(accounts && accounts.length ? accounts[0] : null);
      window.location.reload();
    });
  }
  for (const form of document.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      review(form);
    });
  }
  for (const form of document.querySelectorAll("form[data-kyc-sign]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      kycSign(form);
    });
  }
}

reconcile().then((current) => {
  if (current) init();
});
