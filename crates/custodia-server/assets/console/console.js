// Custodia compliance console: the officer's screens, served by the binary at /console.
//
// Rules this file keeps (docs/security.md, "The compliance console"):
// - the API key lives in this tab's sessionStorage only: never a cookie, never in a URL; signing
//   out forgets it, and any 401 returns to the sign-in screen;
// - every value from the server is inserted as text (textContent, createTextNode), never as HTML;
// - it talks only to its own origin (the CSP allows nothing else);
// - a log is shown as verified only after this page has checked, with Web Crypto (proof.js), the
//   checkpoint's Ed25519 signature and the consistency proof from the checkpoint it saw before.
'use strict';

(() => {
  const LANGS = ['en', 'fr'];
  const KEY_STORE = 'custodia.console.key';
  const SEEN_PREFIX = 'custodia.console.seen.';
  const LOGS = {
    ledger: { base: '/v1/ledger', name: 'log_ledger' },
    audit: { base: '/v1/audit/access', name: 'log_audit' },
  };
  const DAY = 86400000;
  const P = window.CustodiaProof;

  let lang = LANGS.includes(document.documentElement.lang) ? document.documentElement.lang : 'en';
  let catalogue = {};
  let me = null;
  let view = null;
  let requests = [];
  let shown = [];
  let logResults = {};
  let browsed = null;

  const $ = (id) => document.getElementById(id);

  // ---- text and elements --------------------------------------------------------------------

  function tr(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(catalogue, key) ? catalogue[key] : key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  // Builds an element; children are nodes or strings (inserted as text).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function locale() {
    return lang === 'fr' ? 'fr-FR' : 'en-GB';
  }

  function formatTime(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(date);
  }

  function formatDate(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium' }).format(date);
  }

  function setError(id, text) {
    const node = $(id);
    node.textContent = text || '';
    node.hidden = !text;
  }

  // A table; each cell also names its column (data-label) for the stacked layout of small screens.
  function table(caption, headings, rows) {
    const head = el('tr', {}, ...headings.map((h) => el('th', { scope: 'col' }, h)));
    const body = rows.map((row) =>
      el('tr', {}, ...row.map((cell, i) => {
        const attrs = { 'data-label': headings[i] };
        if (cell && cell.mono) return el('td', Object.assign(attrs, { class: 'mono' }), cell.text);
        return el('td', attrs, cell);
      })),
    );
    return el('div', { class: 'scroll' }, el('table', { class: 'stack' }, el('caption', { class: 'sr-only' }, caption), el('thead', {}, head), el('tbody', {}, ...body)));
  }

  // ---- the API ------------------------------------------------------------------------------

  function key() {
    try {
      return window.sessionStorage.getItem(KEY_STORE);
    } catch (_) {
      return null;
    }
  }

  // One call with the signed-in key. A 401 ends the session; other answers are returned.
  async function api(path, as) {
    let answer;
    try {
      answer = await fetch(path, {
        headers: { Authorization: 'Bearer ' + key(), Accept: as === 'text' ? 'text/plain' : 'application/json' },
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (_) {
      return { ok: false, status: 0, problem: null };
    }
    if (answer.status === 401 && me) {
      signOut('session_ended');
      return { ok: false, status: 401, problem: null };
    }
    if (!answer.ok) {
      let problem = null;
      try {
        problem = await answer.json();
      } catch (_) {
        problem = null;
      }
      return { ok: false, status: answer.status, problem };
    }
    return { ok: true, status: answer.status, body: as === 'text' ? await answer.text() : await answer.json() };
  }

  function problemText(result) {
    if (result.status === 0) return tr('error_network');
    if (result.status === 403) return tr('error_forbidden');
    const detail = result.problem && (result.problem.detail || result.problem.title);
    return detail ? tr('error_server', { detail }) : tr('error_status', { status: result.status });
  }

  function may(op) {
    return Boolean(me && me.operations.includes(op));
  }

  // ---- sign-in ------------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    setError('signin-error', '');
    const input = $('api-key');
    const value = input.value.trim();
    if (!value) {
      setError('signin-error', tr('error_key_missing'));
      input.focus();
      return;
    }
    try {
      window.sessionStorage.setItem(KEY_STORE, value);
    } catch (_) {
      setError('signin-error', tr('error_storage'));
      return;
    }
    const result = await api('/v1/me');
    if (!result.ok) {
      forget();
      setError('signin-error', result.status === 401 ? tr('error_key_unknown') : problemText(result));
      input.focus();
      return;
    }
    if (!result.body.operations.includes('dsr_queue') && !result.body.operations.includes('ledger')) {
      forget();
      setError('signin-error', tr('error_role', { role: result.body.role }));
      input.focus();
      return;
    }
    input.value = '';
    me = result.body;
    enter();
  }

  function forget() {
    me = null;
    try {
      window.sessionStorage.removeItem(KEY_STORE);
    } catch (_) {
      // Nothing stored.
    }
  }

  function signOut(reason) {
    forget();
    requests = [];
    shown = [];
    logResults = {};
    browsed = null;
    $('requests-table').replaceChildren();
    $('logs').replaceChildren();
    $('browse-table').replaceChildren();
    $('request-detail').hidden = true;
    renderChrome();
    showView('signin');
    setError('signin-error', reason ? tr(reason) : '');
  }

  function renderChrome() {
    const who = $('whoami');
    who.replaceChildren();
    if (me) {
      who.append(tr('signed_in_as') + ' ', el('strong', {}, me.role), ' · ', el('span', { class: 'mono' }, me.key_id));
    }
    who.hidden = !me;
    $('sign-out').hidden = !me;
    $('tabs').hidden = !me;
    for (const tab of document.querySelectorAll('.tab')) {
      tab.hidden = !may(tab.getAttribute('data-op'));
      tab.setAttribute('aria-current', tab.getAttribute('data-view') === view ? 'page' : 'false');
    }
  }

  function showView(name, focus) {
    view = name;
    for (const id of ['signin', 'requests', 'ledgers']) $('view-' + id).hidden = id !== name;
    renderChrome();
    if (focus !== false) {
      const heading = $('view-' + name).querySelector('h1');
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
    if (name === 'signin') $('api-key').focus();
  }

  function enter() {
    if (may('dsr_queue')) {
      showView('requests');
      loadRequests();
    } else {
      showView('ledgers');
      loadLedgers();
    }
  }

  // ---- requests -----------------------------------------------------------------------------

  // Whole days from now to the deadline, rounded towards the deadline (0 on its last day).
  function daysLeft(deadline) {
    return Math.floor((new Date(deadline).getTime() - Date.now()) / DAY);
  }

  function isOpen(request) {
    return request.status !== 'completed' && request.status !== 'rejected';
  }

  async function loadRequests(event) {
    if (event) event.preventDefault();
    setError('requests-error', '');
    const status = $('f-status').value;
    const query = new URLSearchParams();
    if (status) query.set('status', status);
    if ($('f-overdue').checked) query.set('overdue', 'true');
    const result = await api('/v1/dsr' + (query.toString() ? '?' + query : ''));
    if (!result.ok) {
      if (result.status !== 401) setError('requests-error', problemText(result));
      return;
    }
    requests = result.body.requests || [];
    renderRequests();
  }

  function filtered() {
    const type = $('f-type').value;
    const from = $('f-from').value;
    const to = $('f-to').value;
    return requests.filter((r) => {
      const day = String(r.received_at || '').slice(0, 10);
      return (!type || r.type === type) && (!from || day >= from) && (!to || day <= to);
    });
  }

  function daysCell(request) {
    if (!isOpen(request)) return el('span', { class: 'days done' }, tr('days_closed'));
    const days = daysLeft(request.deadline);
    if (request.overdue || days < 0) {
      return el('span', { class: 'days late', 'data-overdue': 'true' }, tr('days_overdue', { n: Math.max(1, -days) }));
    }
    return el('span', { class: 'days' }, days === 1 ? tr('days_left_one') : tr('days_left', { n: days }));
  }

  function renderRequests() {
    shown = filtered();
    const overdue = shown.filter((r) => r.overdue).length;
    $('requests-summary').textContent = tr('requests_summary', { n: shown.length, overdue });
    const rows = shown.map((r) => {
      const open = el('button', { type: 'button', class: 'link', 'data-request': r.request_id }, r.request_id.slice(0, 8));
      open.setAttribute('aria-label', tr('open_request', { id: r.request_id.slice(0, 8) }));
      return [open, tr('type_' + r.type), tr('status_' + r.status), formatTime(r.received_at), formatDate(r.deadline), daysCell(r)];
    });
    const box = $('requests-table');
    box.replaceChildren(
      shown.length
        ? table(tr('requests_title'), [tr('col_request'), tr('col_type'), tr('col_status'), tr('col_received'), tr('col_deadline'), tr('col_days')], rows)
        : el('p', { class: 'notice' }, tr('no_requests')),
    );
    for (const button of box.querySelectorAll('button[data-request]')) {
      button.addEventListener('click', () => openRequest(button.getAttribute('data-request')));
    }
  }

  function openRequest(id) {
    const request = requests.find((r) => r.request_id === id);
    if (!request) return;
    $('detail-title').textContent = tr('detail_title', { type: tr('type_' + request.type) });
    const facts = $('detail-facts');
    facts.replaceChildren();
    const add = (label, value) => facts.append(el('dt', {}, label), el('dd', {}, value));
    add(tr('col_request'), el('span', { class: 'mono' }, request.request_id));
    add(tr('col_status'), tr('status_' + request.status));
    add(tr('col_received'), formatTime(request.received_at));
    add(tr('col_deadline'), formatTime(request.deadline));
    add(tr('col_days'), daysCell(request));
    if (request.completed_at) add(tr('col_completed'), formatTime(request.completed_at));
    if (request.outcome && typeof request.outcome === 'object') {
      for (const [name, value] of Object.entries(request.outcome)) {
        add(tr('outcome_label', { name: name.replace(/_/g, ' ') }), typeof value === 'string' ? value : JSON.stringify(value));
      }
    }
    const detail = $('request-detail');
    detail.hidden = false;
    detail.focus();
  }

  function csvField(value) {
    const text = value === null || value === undefined ? '' : String(value);
    // A leading =, +, - or @ would be a formula to a spreadsheet: quote it as text.
    const safe = /^[=+\-@\t\r]/.test(text) ? "'" + text : text;
    return /[",\r\n]/.test(safe) ? '"' + safe.replace(/"/g, '""') + '"' : safe;
  }

  function downloadCsv() {
    const columns = ['request_id', 'type', 'status', 'received_at', 'deadline', 'days_left', 'overdue', 'completed_at'];
    const lines = [columns.join(',')];
    for (const r of shown) {
      const days = isOpen(r) ? daysLeft(r.deadline) : '';
      lines.push([r.request_id, r.type, r.status, r.received_at, r.deadline, days, r.overdue, r.completed_at].map(csvField).join(','));
    }
    const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' });
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: 'custodia-requests.csv', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---- ledgers ------------------------------------------------------------------------------

  function seen(log) {
    try {
      const raw = window.localStorage.getItem(SEEN_PREFIX + (me ? me.tenant : '') + '.' + log);
      const value = raw ? JSON.parse(raw) : null;
      return value && Number.isInteger(value.size) && typeof value.root === 'string' ? value : null;
    } catch (_) {
      return null;
    }
  }

  function remember(log, checkpoint) {
    try {
      window.localStorage.setItem(
        SEEN_PREFIX + (me ? me.tenant : '') + '.' + log,
        JSON.stringify({ size: checkpoint.size, root: P.hex(checkpoint.root), at: new Date().toISOString() }),
      );
    } catch (_) {
      // Without storage the next check starts afresh.
    }
  }

  // Fetches the log's key and signed checkpoint, checks the signature, and checks consistency
  // with the checkpoint this browser saw last. Returns what it proved, or why not.
  async function checkLog(log) {
    const base = LOGS[log].base;
    const keyAnswer = await api(base + '/public-key');
    if (!keyAnswer.ok) return { error: problemText(keyAnswer) };
    const noteAnswer = await api(base + '/checkpoint', 'text');
    if (!noteAnswer.ok) return { error: problemText(noteAnswer) };
    const result = { key: keyAnswer.body, note: noteAnswer.body, checkedAt: new Date() };
    try {
      result.checkpoint = await P.verifyCheckpoint(noteAnswer.body, keyAnswer.body.verifier_key);
    } catch (_) {
      result.verified = false;
      result.reason = 'reason_signature';
      return result;
    }
    const before = seen(log);
    result.before = before;
    if (!before) {
      result.verified = true;
      result.reason = 'reason_first';
    } else if (before.size > result.checkpoint.size) {
      result.verified = false;
      result.reason = 'reason_shrunk';
    } else if (before.size === 0 || before.size === result.checkpoint.size) {
      result.verified = before.size === 0 || before.root === P.hex(result.checkpoint.root);
      result.reason = result.verified ? 'reason_same' : 'reason_fork';
    } else {
      const proof = await api(base + '/proof/consistency?from=' + before.size + '&to=' + result.checkpoint.size);
      if (!proof.ok) return Object.assign(result, { verified: false, reason: 'reason_no_proof' });
      let ok = false;
      try {
        ok = await P.verifyConsistency(before.size, result.checkpoint.size, P.unhex(before.root), result.checkpoint.root, (proof.body.hashes || []).map(P.unhex));
      } catch (_) {
        ok = false;
      }
      result.verified = ok;
      result.reason = ok ? 'reason_consistent' : 'reason_fork';
    }
    if (result.verified) remember(log, result.checkpoint);
    return result;
  }

  async function loadLedgers() {
    const box = $('logs');
    for (const log of Object.keys(LOGS)) {
      if (!logResults[log]) logResults[log] = { pending: true };
    }
    renderLogs();
    for (const log of Object.keys(LOGS)) {
      logResults[log] = await checkLog(log);
      if (!me) return;
      renderLogs();
    }
    box.setAttribute('aria-busy', 'false');
  }

  function renderLogs() {
    const box = $('logs');
    box.replaceChildren();
    for (const [log, info] of Object.entries(LOGS)) {
      const result = logResults[log] || {};
      const card = el('section', { class: 'card', 'data-log': log, 'aria-labelledby': 'log-' + log });
      card.append(el('h2', { id: 'log-' + log }, tr(info.name)));
      if (result.pending) {
        card.append(el('p', {}, tr('checking')));
      } else if (result.error) {
        card.append(el('p', { class: 'error' }, result.error));
      } else {
        const verdict = result.verified ? 'ok' : 'bad';
        card.append(
          el('p', { class: 'result ' + verdict, 'data-verified': String(Boolean(result.verified)) },
            (result.verified ? tr('verified') : tr('not_verified')) + ' — ' + tr(result.reason, {
              size: result.before ? result.before.size : '',
              when: result.before && result.before.at ? formatTime(result.before.at) : '',
            })),
        );
        const facts = el('dl', { class: 'facts' });
        const add = (label, value, mono) => facts.append(el('dt', {}, label), el('dd', mono ? { class: 'mono' } : {}, value));
        if (result.checkpoint) {
          add(tr('log_size'), tr('entries_n', { n: result.checkpoint.size.toLocaleString(locale()) }));
          add(tr('log_root'), P.hex(result.checkpoint.root), true);
          add(tr('log_origin'), result.checkpoint.origin, true);
          add(tr('log_signatures'), String(result.checkpoint.signatures));
        }
        add(tr('log_key'), result.key.verifier_key, true);
        add(tr('log_checked_at'), formatTime(result.checkedAt.toISOString()));
        card.append(facts);
      }
      const again = el('button', { type: 'button', 'data-verify': log }, tr('verify_now'));
      again.addEventListener('click', async () => {
        again.disabled = true;
        logResults[log] = { pending: true };
        renderLogs();
        logResults[log] = await checkLog(log);
        renderLogs();
        const button = document.querySelector('button[data-verify="' + log + '"]');
        if (button) button.focus();
      });
      card.append(again);
      box.append(card);
    }
  }

  async function browse(event) {
    if (event) event.preventDefault();
    setError('browse-error', '');
    const log = $('b-log').value;
    const raw = $('b-from').value.trim();
    if (!/^[0-9]+$/.test(raw)) {
      setError('browse-error', tr('error_position'));
      $('b-from').focus();
      return;
    }
    const base = LOGS[log].base;
    const result = await api(base + '/entries?from=' + raw + '&limit=20');
    if (!result.ok) {
      if (result.status !== 401) setError('browse-error', problemText(result));
      return;
    }
    const entries = result.body.entries || [];
    // Each entry's bytes are hashed here and proven included in the signed checkpoint.
    const checked = logResults[log] && logResults[log].verified ? logResults[log] : await checkLog(log);
    const rows = [];
    for (const entry of entries) {
      rows.push([String(entry.seq), formatTime(entry.time), entry.kind, entry.purpose || '', { mono: true, text: (entry.subject || '').slice(0, 16) }, await entryVerdict(base, entry, checked)]);
    }
    browsed = { log, rows: rows.length };
    $('browse-table').replaceChildren(
      rows.length
        ? table(tr('browse_title'), [tr('col_position'), tr('col_time'), tr('col_kind'), tr('col_purpose'), tr('col_subject'), tr('col_proof')], rows)
        : el('p', { class: 'notice' }, tr('no_entries')),
    );
  }

  async function entryVerdict(base, entry, checked) {
    const bad = (why) => el('span', { class: 'badge bad', 'data-verified': 'false' }, tr('not_verified') + ' (' + tr(why) + ')');
    if (!checked || !checked.verified || !checked.checkpoint) return bad('reason_signature');
    if (entry.seq >= checked.checkpoint.size) return el('span', { class: 'badge' }, tr('after_checkpoint'));
    try {
      const leaf = await P.leafHash(P.b64(entry.bytes_b64));
      if (P.hex(leaf) !== entry.leaf_hash) return bad('reason_leaf');
      const proof = await api(base + '/proof/inclusion?seq=' + entry.seq + '&tree_size=' + checked.checkpoint.size);
      if (!proof.ok) return bad('reason_no_proof');
      const root = await P.rootFromProof(leaf, entry.seq, checked.checkpoint.size, (proof.body.hashes || []).map(P.unhex));
      if (!root || !P.equal(root, checked.checkpoint.root)) return bad('reason_inclusion');
      return el('span', { class: 'badge ok', 'data-verified': 'true' }, tr('verified'));
    } catch (_) {
      return bad('reason_inclusion');
    }
  }

  // ---- language and start -------------------------------------------------------------------

  function applyStatic() {
    document.documentElement.lang = lang;
    for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = tr(node.getAttribute('data-i18n'));
    document.title = tr('page_title');
    for (const button of document.querySelectorAll('.lang')) {
      button.setAttribute('aria-pressed', button.getAttribute('data-lang') === lang ? 'true' : 'false');
    }
  }

  async function loadCatalogue(next) {
    const answer = await fetch('/console/i18n/' + next + '.json', { credentials: 'omit' });
    if (!answer.ok) return;
    catalogue = await answer.json();
    lang = next;
    applyStatic();
    renderChrome();
    if (view === 'requests' && requests.length) renderRequests();
    if (view === 'ledgers') renderLogs();
    if (browsed) browse();
  }

  async function start() {
    await loadCatalogue(lang);
    for (const button of document.querySelectorAll('.lang')) {
      button.addEventListener('click', () => loadCatalogue(button.getAttribute('data-lang')));
    }
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signOut('signed_out'));
    $('filters').addEventListener('submit', loadRequests);
    for (const id of ['f-type', 'f-from', 'f-to']) $(id).addEventListener('change', renderRequests);
    $('download-csv').addEventListener('click', downloadCsv);
    $('detail-close').addEventListener('click', () => {
      $('request-detail').hidden = true;
      $('requests-table').querySelector('button') && $('requests-table').querySelector('button').focus();
    });
    $('browse-form').addEventListener('submit', browse);
    for (const tab of document.querySelectorAll('.tab')) {
      tab.addEventListener('click', () => {
        const name = tab.getAttribute('data-view');
        showView(name);
        if (name === 'requests') loadRequests();
        if (name === 'ledgers') loadLedgers();
      });
    }
    if (key()) {
      const result = await api('/v1/me');
      if (result.ok) {
        me = result.body;
        enter();
        document.body.dataset.ready = 'true';
        return;
      }
      forget();
    }
    showView('signin', false);
    document.body.dataset.ready = 'true';
  }

  start();
})();
