// Custodia: checking the tamper-evident logs in the browser, with Web Crypto only.
// Shared by the console and the privacy center: signed checkpoints
// (c2sp.org/tlog-checkpoint, Ed25519), RFC 9162 inclusion and consistency proofs.
// Every function either returns what it proved or throws / returns null; none trusts a root the
// server states alongside a proof.
'use strict';

window.CustodiaProof = (() => {
  function b64(text) {
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function unhex(text) {
    if (typeof text !== 'string' || !/^([0-9a-f]{2})*$/.test(text)) throw new Error('hex');
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  function equal(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  const node = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

  // RFC 9162 §2.1.1: the hash of a leaf's bytes.
  function leafHash(bytes) {
    return sha256(concat(new Uint8Array([0]), bytes));
  }

  // The signed checkpoint: a body of three lines (origin, size, base64 root), a blank line, then
  // "— <name> <base64(key id ‖ signature)>" lines. `verifierKey` is "<name>+<key id hex>+<base64>".
  // Returns { origin, size, root, signatures } or throws.
  async function verifyCheckpoint(text, verifierKey) {
    // The base64 may itself hold '+', so split at the first two.
    const key0 = String(verifierKey);
    const first = key0.indexOf('+');
    const second = key0.indexOf('+', first + 1);
    if (first < 0 || second < 0) throw new Error('key');
    const name = key0.slice(0, first);
    const keyIdHex = key0.slice(first + 1, second);
    const key = b64(key0.slice(second + 1) || '');
    if (!name || key.length !== 33 || key[0] !== 1) throw new Error('key');
    const pub = key.slice(1);
    const id = (await sha256(concat(new TextEncoder().encode(name + '\n'), new Uint8Array([1]), pub))).slice(0, 4);
    if (hex(id) !== keyIdHex) throw new Error('key id');
    const split = text.indexOf('\n\n');
    if (split < 0) throw new Error('note');
    const body = text.slice(0, split + 1);
    const lines = body.split('\n');
    if (lines.length !== 4 || lines[3] !== '' || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error('body');
    const signatureLines = text.slice(split + 2).split('\n').filter((l) => l.startsWith('\u2014 '));
    const prefix = '\u2014 ' + name + ' ';
    const line = signatureLines.find((l) => l.startsWith(prefix));
    if (!line) throw new Error('no signature');
    const sig = b64(line.slice(prefix.length));
    if (sig.length !== 68 || !equal(sig.slice(0, 4), id)) throw new Error('signature');
    const cryptoKey = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    const ok = await crypto.subtle.verify({ name: 'Ed25519' }, cryptoKey, sig.slice(4), new TextEncoder().encode(body));
    if (!ok) throw new Error('bad signature');
    return { origin: lines[0], size: Number(lines[1]), root: b64(lines[2]), signatures: signatureLines.length };
  }

  // RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or null.
  async function rootFromProof(leaf, index, size, proof) {
    if (index >= size) return null;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await node(p, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await node(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `second` leaves with root
  // `secondRoot` extends the tree of `first` leaves with root `firstRoot`.
  async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
    if (first < 1 || first > second) return false;
    if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
    let path = proof.slice();
    if ((first & (first - 1)) === 0) path = [firstRoot, ...path];
    if (path.length === 0) return false;
    let fn = first - 1;
    let sn = second - 1;
    while (fn % 2 === 1) {
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await node(c, fr);
        sr = await node(c, sr);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        sr = await node(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(fr, firstRoot) && equal(sr, secondRoot);
  }

  return { b64, hex, unhex, concat, sha256, equal, leafHash, verifyCheckpoint, rootFromProof, verifyConsistency };
})();
