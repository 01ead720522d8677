// Inclusion proofs of the oracle's attestation log, checked in the page (RFC 9162
// section 2.1.3.2, SHA-256 with RFC 6962 prefixes, as oracle/merkle.py):
//   1. the entry's leaf hash is SHA-256(0x00 || leaf);
//   2. the proof from the oracle node leads from that hash to a root;
//   3. that root is the checkpoint the OracleHub holds on-chain, read through the wallet's
//      own node when a wallet is present (else the one the app server read).
// Nothing here trusts the oracle node or the app server for the verdict.
"use strict";

const CHECKPOINT_SELECTOR = "0xc2c4c5c1"; // OracleHub.checkpoint() -> (uint64 size, bytes32 root)

function hexToBytes(hex) {
  const clean = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`not hex: ${hex}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

async function rootFromProof(leafHash, index, size, proof) {
  if (index >= size) throw new Error(`index ${index} is outside a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) throw new Error("the proof is too long");
    if (fn & 1 || fn === sn) {
      r = await sha256(NODE, p, r);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = await sha256(NODE, r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn !== 0) throw new Error("the proof is too short");
  return r;
}

const APP_CHAIN = "0x" + Number(document.body.dataset.chainId).toString(16);

async function onchainCheckpoint(section) {
  const eth = window.ethereum;
  const walletChain = eth ? await eth.request({ method: "eth_chainId" }).catch(() => null) : null;
  if (eth && walletChain !== null && parseInt(walletChain, 16) !== parseInt(APP_CHAIN, 16)) {
    // Another chain's contract at the hub's address could answer anything.
    return { size: Number(section.dataset.checkpointSize), root: section.dataset.checkpointRoot,
             source: `as the app server read it: your wallet is on chain ${parseInt(walletChain, 16)}, ` +
                     `not this app's chain ${parseInt(APP_CHAIN, 16)}` };
  }
  if (eth && walletChain !== null) {
    const out = await eth.request({
      method: "eth_call", params: [{ to: section.dataset.hub, data: CHECKPOINT_SELECTOR }, "latest"],
    });
    const raw = out.startsWith("0x") ? out.slice(2) : out;
    return { size: parseInt(raw.slice(0, 64), 16), root: "0x" + raw.slice(64, 128),
             source: "read through your wallet's node" };
  }
  return { size: Number(section.dataset.checkpointSize), root: section.dataset.checkpointRoot,
           source: "as the app server read it (connect a wallet to read it yourself)" };
}

async function verify(button) {
  const section = document.getElementById("proofs");
  const out = document.getElementById(`proof-${button.dataset.index}`);
  out.className = "status busy";
  out.textContent = "Checking…";
  try {
    const checkpoint = await onchainCheckpoint(section);
    const index = Number(button.dataset.index);
    const res = await fetch(`/api/oracle/attestations/${index}?size=${checkpoint.size}`);
    const entry = await res.json();
    if (!res.ok) throw new Error(entry.detail && entry.detail.message || JSON.stringify(entry));
    const leafHash = await sha256(LEAF, hexToBytes(entry.leaf));
    if (bytesToHex(leafHash) !== entry.leaf_hash.toLowerCase()) {
      throw new Error(`the leaf does not hash to ${entry.leaf_hash}`);
    }
    const proof = entry.inclusion_proof.map(hexToBytes);
    const root = bytesToHex(await rootFromProof(leafHash, index, checkpoint.size, proof));
    if (root !== checkpoint.root.toLowerCase()) {
      throw new Error(`the proof leads to ${root}, not to the on-chain root ${checkpoint.root}`);
    }
    const said = whatTheEntrySays(entry.leaf, index, section.dataset.hub);
    const listed = compareWithListing(button, said);
    if (listed) throw new Error(listed);
    out.className = "status done";
    out.textContent = `Verified: entry ${index} (${said.summary}) is in the log of ` +
      `${checkpoint.size} entries whose root ${root.slice(0, 18)}… the OracleHub holds ` +
      `(${checkpoint.source}); ${proof.length} proof hashes, computed in this page.`;
  } catch (err) {
    out.className = "status refused";
    out.textContent = "NOT verified: " + (err.message || String(err));
  }
}

// What the proven leaf itself says (oracle/entries.py: one JSON object naming its own
// index, chain and hub), checked against where it claims to be.
function whatTheEntrySays(leafHex, index, hub) {
  let leaf;
  try {
    leaf = JSON.parse(new TextDecoder().decode(hexToBytes(leafHex)));
  } catch (err) {
    throw new Error("the entry is not a JSON attestation");
  }
  if (Number(leaf.index) !== index) throw new Error(`the entry names itself ${leaf.index}, not ${index}`);
  if (Number(leaf.chainId) !== parseInt(APP_CHAIN, 16)) {
    throw new Error(`the entry is for chain ${leaf.chainId}, not this app's`);
  }
  if (String(leaf.hub).toLowerCase() !== String(hub).toLowerCase()) {
    throw new Error(`the entry is for hub ${leaf.hub}, not ${hub}`);
  }
  const signers = (leaf.signers || []).map((s) => String(s).toLowerCase()).sort();
  const feedId = leaf.report && leaf.report.feedId ? String(leaf.report.feedId).toLowerCase() : "";
  const parts = [leaf.kind];
  if (feedId) parts.push(`feed ${feedId.slice(0, 10)}…`);
  if (leaf.report && leaf.report.value !== undefined) parts.push(`value ${leaf.report.value}`);
  parts.push(`signed by ${signers.length}`);
  return { kind: leaf.kind, feedId, signers, summary: parts.join(", ") };
}

// The node's listing (kind, feed, signers shown in the row) must be what the leaf says.
function compareWithListing(button, said) {
  const listedSigners = (button.dataset.signers || "").split(",").filter(Boolean)
    .map((s) => s.toLowerCase()).sort();
  const problems = [];
  if (button.dataset.kind !== said.kind) {
    problems.push(`kind "${button.dataset.kind}" (the entry says "${said.kind}")`);
  }
  if ((button.dataset.feedId || "").toLowerCase() !== said.feedId) {
    problems.push(`feed ${button.dataset.feedId || "none"} (the entry says ${said.feedId || "none"})`);
  }
  if (listedSigners.join(",") !== said.signers.join(",")) {
    problems.push(`signers ${listedSigners.join(" ")} (the entry says ${said.signers.join(" ")})`);
  }
  return problems.length ? "the oracle node lists this entry with " + problems.join("; ") : null;
}

for (const button of document.querySelectorAll("button[data-verify]")) {
  button.addEventListener("click", () => verify(button));
}
