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
  let purposes = [];
  let allPurposes = [];
  let dashboard = null;
  let customer = null;
  let caseFile = null;
  let operations = null;

  const $ = (id) => document.getElementById(id);

  // ---- text and elements (assets/shared/page.js) -----------------------------------------

  const { tr, has, el, locale, formatTime, formatDate, setError } = window.CustodiaPage;

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
    // Two columns fit a phone as they are; wider tables become one block per row there.
    const stack = headings.length > 2 ? 'stack' : null;
    return el('div', { class: 'scroll' }, el('table', { class: stack }, el('caption', { class: 'sr-only' }, caption), el('thead', {}, head), el('tbody', {}, ...body)));
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
    customer = null;
    dashboard = null;
    operations = null;
    for (const id of ['new-key', 'retention-report', 'policies', 'root-key', 'keys-table']) $(id).replaceChildren();
    for (const id of ['retention-card', 'rootkey-card', 'keys-card']) $(id).hidden = true;
    $('kpis').replaceChildren();
    purposes = [];
    allPurposes = [];
    $('l-purpose').replaceChildren();
    $('l-value').value = '';
    $('customer-panel').replaceChildren();
    $('customer-panel').hidden = true;
    $('lookup-hits').replaceChildren();
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
      tab.hidden = !tab.getAttribute('data-op').split(' ').some(may);
      tab.setAttribute('aria-current', tab.getAttribute('data-view') === view ? 'page' : 'false');
    }
  }

  function showView(name, focus) {
    view = name;
    for (const id of ['signin', 'requests', 'customer', 'ledgers', 'dashboard', 'operations']) $('view-' + id).hidden = id !== name;
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
    $('requests-summary').textContent = tr(shown.length === 1 ? 'requests_summary_one' : 'requests_summary', { n: shown.length, overdue });
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
    if (!caseFile || caseFile.id !== id) caseFile = { id, request };
    caseFile.request = request;
    renderRequestFacts(request);
    $('case-form').hidden = !may('dsr_queue');
    setError('case-error', '');
    renderCase();
    loadPurposes();
    const detail = $('request-detail');
    detail.hidden = false;
    detail.focus();
  }

  function renderRequestFacts(request) {
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
      // The result first, then the rest as the server sent it.
      const facts = Object.entries(request.outcome)
        .sort(([a], [b]) => (b === 'result') - (a === 'result'));
      for (const [name, value] of facts) add(...outcomeFact(name, value));
    }
  }

  // One fact of a request's outcome in the reader's language: the names and words the server
  // uses are in the catalogue (`outcome_<name>`, `outcome_<name>_<word>`); anything newer is
  // shown as sent.
  function outcomeFact(name, value) {
    const label = has('outcome_' + name)
      ? tr('outcome_' + name)
      : tr('outcome_label', { name: name.replace(/_/g, ' ') });
    let text;
    if (name === 'erasure' && value && typeof value === 'object') {
      text = tr('erased_line', { seq: value.receipt_seq, kept: (value.kept || []).length });
    } else if (typeof value === 'string') {
      text = has('outcome_' + name + '_' + value) ? tr('outcome_' + name + '_' + value) : value;
    } else if (typeof value === 'boolean') {
      text = tr(value ? 'yes' : 'no');
    } else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) {
      text = value.length ? value.join(', ') : tr('none');
    } else {
      text = JSON.stringify(value);
    }
    return [label, text];
  }

  // The case file: a read for the chosen purpose, logged by the server like any other.
  async function openCase(event, reveal) {
    if (event) event.preventDefault();
    if (!caseFile) return;
    setError('case-error', '');
    const purpose = $('c-purpose').value;
    const result = await api('/v1/dsr/' + encodeURIComponent(caseFile.id) + '/case?purpose=' + encodeURIComponent(purpose));
    if (!result.ok) {
      if (result.status !== 401) setError('case-error', problemText(result));
      return;
    }
    caseFile.body = result.body;
    caseFile.purpose = purpose;
    caseFile.revealed = Boolean(reveal);
    caseFile.request = result.body.request;
    caseFile.checks = await checkHistory({ entries: result.body.timeline, checkpoint: result.body.checkpoint }, result.body.public_key);
    renderRequestFacts(result.body.request);
    renderCase();
    const heading = $('case-heading');
    if (heading) heading.focus();
  }

  const EVENT_KINDS = ['dsr.received', 'dsr.verified', 'dsr.awaiting_compliance', 'dsr.extended', 'dsr.completed', 'dsr.rejected'];

  function renderCase() {
    const panel = $('case-panel');
    panel.replaceChildren();
    const body = caseFile && caseFile.body;
    if (!body) return;
    panel.append(el('h3', { id: 'case-heading', tabindex: '-1' }, tr('case_heading')));
    panel.append(el('p', { class: 'fine' }, tr('read_for', { purpose: purposeName(caseFile.purpose) })));
    if (body.private_part_destroyed) {
      panel.append(el('p', { class: 'notice' }, tr('case_destroyed')));
    } else {
      const facts = el('dl', { class: 'facts', id: 'case-facts' });
      const add = (label, value) => facts.append(el('dt', {}, label), el('dd', {}, value));
      const who = body.requester || {};
      const shown = (v) => (caseFile.revealed ? String(v) : mask(v));
      if (who.email) add(tr('by_email'), shown(who.email));
      if (who.user_id) add(tr('by_user_id'), shown(who.user_id));
      add(tr('case_customer'), who.subject_id ? el('span', { class: 'mono' }, who.subject_id) : tr('case_no_customer'));
      if (body.note) add(tr('case_note'), el('span', { 'data-case': 'note' }, body.note));
      if (body.requested_traits) {
        const rows = flattenTraits(body.requested_traits, '', []).map(([k, v]) => k + ' → ' + (v === '' ? tr('case_removed') : v));
        add(tr('case_requested'), el('ul', { class: 'hits' }, ...rows.map((r) => el('li', {}, r))));
      }
      const reveal = el('button', { type: 'button', id: 'case-reveal' }, caseFile.revealed ? tr('hide') : tr('reveal'));
      reveal.addEventListener('click', () => {
        if (caseFile.revealed) {
          caseFile.revealed = false;
          renderCase();
          return;
        }
        // A fresh read, so that the reveal is its own entry in the access log.
        openCase(null, true);
      });
      panel.append(facts, el('div', { class: 'actions' }, reveal));
    }
    const checks = caseFile.checks || { entries: [] };
    const rows = (body.timeline || []).map((e, i) => [
      String(e.seq),
      formatTime(e.time),
      EVENT_KINDS.includes(e.kind) ? tr('event_' + e.kind.slice(4)) : e.kind,
      e.reason ? el('span', { 'data-case': 'reason' }, e.reason) : '',
      { mono: true, text: String((e.attributes && e.attributes.decided_by) || '') },
      checks.entries[i]
        ? el('span', { class: 'badge ok', 'data-verified': 'true' }, tr('verified'))
        : el('span', { class: 'badge bad', 'data-verified': 'false' }, tr('not_verified')),
    ]);
    panel.append(el('h3', {}, tr('case_timeline')),
      el('p', { class: 'fine' }, checks.checkpoint ? tr('history_checkpoint', { size: checks.checkpoint.size }) : tr('reason_signature')),
      table(tr('case_timeline'), [tr('col_position'), tr('col_time'), tr('col_kind'), tr('col_reason'), tr('col_key'), tr('col_proof')], rows));
    if (may('dsr_queue')) panel.append(decisionForm(body));
  }

  // What a person may decide on this request now (the server checks again).
  function decisionsFor(request) {
    if (!isOpen(request) || request.type === 'consent' || request.status === 'pending_verification') return [];
    const out = [];
    if (request.status === 'awaiting_compliance' || request.status === 'verified' || request.status === 'in_progress') out.push('carry_out');
    const extended = (request.notices || []).filter((n) => n.kind === 'extended').length;
    const firstMonth = new Date(request.received_at);
    firstMonth.setMonth(firstMonth.getMonth() + 1);
    if (extended < 2 && Date.now() < firstMonth.getTime()) out.push('extend');
    out.push('reject');
    return out;
  }

  function decisionForm(body) {
    const request = body.request;
    const choices = decisionsFor(request);
    const box = el('section', { class: 'card', id: 'decide' }, el('h3', {}, tr('decide_title')));
    if (!choices.length) {
      box.append(el('p', { class: 'fine' }, tr(request.status === 'pending_verification' ? 'decide_unverified' : 'decide_none')));
      return box;
    }
    const form = el('form', { id: 'decide-form', novalidate: true });
    const action = el('select', { id: 'd-action' }, ...choices.map((c) => el('option', { value: c }, tr('action_' + c))));
    form.append(el('div', { class: 'field' }, el('label', { for: 'd-action' }, tr('decide_action')), action));
    const extended = (request.notices || []).filter((n) => n.kind === 'extended').length;
    const months = el('select', { id: 'd-months' }, ...[1, 2].filter((m) => m + extended <= 2).map((m) => el('option', { value: String(m) }, tr(m === 1 ? 'months_one' : 'months_two'))));
    const monthsField = el('div', { class: 'field', id: 'd-months-field' }, el('label', { for: 'd-months' }, tr('decide_months')), months);
    form.append(monthsField);
    const traits = el('fieldset', { id: 'd-traits', class: 'traits' }, el('legend', {}, tr('decide_traits')), el('p', { class: 'fine' }, tr('decide_traits_hint')));
    const rows = el('div', { class: 'trait-rows' });
    let n = 0;
    const addRow = (name, value) => {
      n += 1;
      const nameId = 'd-trait-name-' + n;
      const valueId = 'd-trait-value-' + n;
      rows.append(el('div', { class: 'trait-row' },
        el('div', { class: 'field' }, el('label', { for: nameId }, tr('decide_trait_name')), el('input', { type: 'text', id: nameId, 'data-trait': 'name', value: name, maxlength: 128, autocomplete: 'off', spellcheck: 'false' })),
        el('div', { class: 'field' }, el('label', { for: valueId }, tr('decide_trait_value')), el('input', { type: 'text', id: valueId, 'data-trait': 'value', value, maxlength: 512, autocomplete: 'off' }))));
    };
    const proposed = body.requested_traits && typeof body.requested_traits === 'object' ? body.requested_traits : {};
    for (const [name, value] of Object.entries(proposed)) addRow(name, value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value));
    if (!n) addRow('', '');
    const more = el('button', { type: 'button', id: 'd-add-trait' }, tr('decide_add_trait'));
    more.addEventListener('click', () => {
      addRow('', '');
      rows.lastChild.querySelector('input').focus();
    });
    traits.append(rows, more);
    form.append(traits);
    const reason = el('textarea', { id: 'd-reason', rows: 3, maxlength: 2000, 'aria-describedby': 'd-reason-hint' });
    form.append(el('div', { class: 'field' }, el('label', { for: 'd-reason' }, tr('decide_reason')), reason, el('p', { class: 'fine', id: 'd-reason-hint' }, tr('decide_reason_hint'))));
    form.append(el('p', { class: 'error', id: 'decide-error', role: 'alert', hidden: true }));
    form.append(el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', id: 'd-submit' }, tr('decide_submit'))));
    const sync = () => {
      monthsField.hidden = action.value !== 'extend';
      traits.hidden = !(action.value === 'carry_out' && request.type === 'rectification');
    };
    action.addEventListener('change', sync);
    sync();
    form.addEventListener('submit', (event) => decide(event, request));
    box.append(form);
    return box;
  }

  // The corrected traits from the rows: an empty value removes the trait; a value that was JSON
  // (a number, an object) is sent as such.
  function traitsFromRows() {
    const out = {};
    for (const row of document.querySelectorAll('#d-traits .trait-row')) {
      const name = row.querySelector('[data-trait="name"]').value.trim();
      const raw = row.querySelector('[data-trait="value"]').value;
      if (!name) continue;
      if (raw.trim() === '') {
        out[name] = null;
        continue;
      }
      let value = raw;
      if (/^[\[{]/.test(raw.trim()) || /^-?\d+(\.\d+)?$/.test(raw.trim()) || raw.trim() === 'true' || raw.trim() === 'false') {
        try {
          value = JSON.parse(raw);
        } catch (_) {
          value = raw;
        }
      }
      out[name] = value;
    }
    return out;
  }

  async function decide(event, request) {
    event.preventDefault();
    setError('decide-error', '');
    const action = $('d-action').value;
    const reason = $('d-reason').value.trim();
    if (!reason) {
      setError('decide-error', tr('decide_reason_missing'));
      $('d-reason').focus();
      return;
    }
    const body = { reason };
    if (action === 'extend') body.months = Number($('d-months').value);
    if (action === 'carry_out' && request.type === 'rectification') {
      body.traits = traitsFromRows();
      if (!Object.keys(body.traits).length) {
        setError('decide-error', tr('decide_traits_missing'));
        return;
      }
    }
    if (!window.confirm(tr('confirm_' + action))) return;
    const path = '/v1/dsr/' + encodeURIComponent(request.request_id) + '/' + action.replace('_', '-');
    const result = await send('POST', path, body);
    if (!result.ok) {
      if (result.status !== 401) setError('decide-error', problemText(result));
      return;
    }
    await loadRequests();
    const fresh = requests.find((r) => r.request_id === request.request_id);
    if (fresh) caseFile.request = fresh;
    await openCase(null, caseFile.revealed);
    panelNotice(tr('decided_' + action));
  }

  function panelNotice(text) {
    const panel = $('case-panel');
    const line = el('p', { class: 'result ok', role: 'status', id: 'decided' }, text);
    panel.prepend(line);
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

  // ---- a customer ---------------------------------------------------------------------------

  // The purposes this key's role may name, with their names, for the look-up's purpose list.
  async function loadPurposes() {
    if (purposes.length) return;
    const result = await api('/v1/purposes');
    if (!result.ok) return;
    const allowed = new Set(me ? me.purposes : []);
    allPurposes = result.body.purposes || [];
    purposes = allPurposes.filter((p) => allowed.has(p.id));
    renderPurposeChoices();
  }

  function localName(item) {
    const t = item && item.translations && item.translations[lang];
    return String((t && t.name) || item.name || item.id);
  }

  function purposeName(id) {
    return localName(allPurposes.find((p) => p.id === id) || { id });
  }

  function renderPurposeChoices() {
    for (const id of ['l-purpose', 'c-purpose']) {
      const select = $(id);
      const chosen = select.value || (id === 'c-purpose' ? 'customer_support' : '');
      select.replaceChildren(...purposes.map((p) => el('option', { value: p.id }, localName(p))));
      if (chosen && purposes.some((p) => p.id === chosen)) select.value = chosen;
    }
  }

  // A value shown masked until "reveal": enough to recognise, not to read.
  function mask(value) {
    const text = String(value);
    if (text.includes('@')) {
      const [local, domain] = text.split('@');
      const dot = domain.lastIndexOf('.');
      return local.slice(0, 1) + '•••@' + domain.slice(0, 1) + '•••' + (dot > 0 ? domain.slice(dot) : '');
    }
    if (/^[+\d][\d\s().-]{5,}$/.test(text)) return '••• ' + text.replace(/\D/g, '').slice(-2);
    return text.length <= 1 ? '•' : text.slice(0, 1) + '•••';
  }

  function flattenTraits(value, prefix, out) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) flattenTraits(v, prefix ? prefix + '.' + k : k, out);
    } else {
      out.push([prefix, Array.isArray(value) ? value.join(', ') : value === null || value === undefined ? '' : String(value)]);
    }
    return out;
  }

  async function lookUp(event) {
    if (event) event.preventDefault();
    setError('lookup-error', '');
    $('lookup-hits').replaceChildren();
    const kind = $('l-kind').value;
    const value = $('l-value').value.trim();
    const purpose = $('l-purpose').value;
    if (!value) {
      setError('lookup-error', tr('error_lookup_value'));
      $('l-value').focus();
      return;
    }
    if (!purpose) {
      setError('lookup-error', tr('error_lookup_purpose'));
      $('l-purpose').focus();
      return;
    }
    const query = new URLSearchParams({ purpose });
    let ids = [];
    if (kind === 'search') {
      query.set('q', value);
      query.set('limit', '20');
      const result = await api('/v1/search?' + query);
      if (!result.ok) return result.status === 401 || setError('lookup-error', problemText(result));
      ids = (result.body.hits || []).map((h) => h.subject_id);
    } else {
      query.set(kind, value);
      const result = await api('/v1/subjects?' + query);
      if (!result.ok) return result.status === 401 || setError('lookup-error', problemText(result));
      ids = (result.body.subjects || []).map((s) => s.subject_id);
    }
    if (!ids.length) {
      $('lookup-hits').replaceChildren(el('p', { class: 'notice' }, tr('no_customer')));
      $('customer-panel').hidden = true;
      return;
    }
    if (ids.length === 1) {
      openCustomer(ids[0], purpose);
      return;
    }
    const list = el('ul', { class: 'hits' });
    for (const id of ids) {
      const button = el('button', { type: 'button', class: 'link', 'data-subject': id }, id);
      button.addEventListener('click', () => openCustomer(id, purpose));
      list.append(el('li', {}, button));
    }
    $('lookup-hits').replaceChildren(el('p', {}, tr('customers_found', { n: ids.length })), list);
  }

  async function openCustomer(id, purpose) {
    customer = { id, purpose, revealed: false };
    await refreshCustomer();
    const panel = $('customer-panel');
    panel.hidden = false;
    const heading = panel.querySelector('h2');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  }

  // Reads everything the panel shows; the profile read is logged under the chosen purpose.
  async function refreshCustomer() {
    if (!customer) return;
    const id = encodeURIComponent(customer.id);
    const purpose = encodeURIComponent(customer.purpose);
    const [profile, consents, history, flags, access, key, merges] = await Promise.all([
      api('/v1/subjects/' + id + '?purpose=' + purpose),
      may('consent_read') ? api('/v1/subjects/' + id + '/consents') : null,
      may('consent_read') ? api('/v1/subjects/' + id + '/consents/history') : null,
      may('dsr_queue') ? api('/v1/subjects/' + id + '/flags') : null,
      may('audit') ? api('/v1/audit/access?subject_id=' + id + '&limit=50') : null,
      may('ledger') ? api('/v1/ledger/public-key') : null,
      may('audit') ? api('/v1/audit/merges?subject_id=' + id) : null,
    ]);
    if (!me) return;
    customer.profile = profile;
    customer.consents = consents;
    customer.flags = flags;
    customer.access = access;
    customer.history = history;
    customer.merges = merges;
    customer.checks = history && history.ok && key && key.ok ? await checkHistory(history.body, key.body.verifier_key) : null;
    renderCustomer();
  }

  // Each consent entry: its bytes hash to its leaf, its proof leads to the signed root.
  async function checkHistory(history, verifierKey) {
    let checkpoint;
    try {
      checkpoint = await P.verifyCheckpoint(history.checkpoint || '', verifierKey);
    } catch (_) {
      return { checkpoint: null, entries: (history.entries || []).map(() => false) };
    }
    const entries = [];
    for (const entry of history.entries || []) {
      try {
        const leaf = await P.leafHash(P.b64(entry.bytes_b64));
        const proof = entry.inclusion_proof || {};
        const root = P.hex(leaf) === entry.leaf_hash && proof.tree_size === checkpoint.size
          ? await P.rootFromProof(leaf, entry.seq, checkpoint.size, (proof.hashes || []).map(P.unhex))
          : null;
        entries.push(Boolean(root && P.equal(root, checkpoint.root)));
      } catch (_) {
        entries.push(false);
      }
    }
    return { checkpoint, entries };
  }

  function section(titleKey, ...children) {
    return el('section', { class: 'card', 'data-section': titleKey }, el('h3', {}, tr(titleKey)), ...children);
  }

  function renderCustomer() {
    const panel = $('customer-panel');
    panel.replaceChildren();
    if (!customer) return;
    panel.append(el('h2', {}, tr('customer_heading', { id: customer.id.slice(0, 8) })));
    const profile = customer.profile;
    if (!profile || !profile.ok) {
      panel.append(el('p', { class: 'error' }, profile ? problemText(profile) : tr('error_network')));
    } else {
      const rows = flattenTraits(profile.body.traits || {}, '', []).map(([key, value]) => [key, customer.revealed ? value : mask(value)]);
      if (profile.body.user_id) rows.unshift([tr('by_user_id'), customer.revealed ? String(profile.body.user_id) : mask(profile.body.user_id)]);
      const reveal = el('button', { type: 'button', id: 'reveal' }, customer.revealed ? tr('hide') : tr('reveal'));
      reveal.addEventListener('click', async () => {
        if (customer.revealed) {
          customer.revealed = false;
          renderCustomer();
          return;
        }
        // A fresh read for the reveal, so that it is its own entry in the access log.
        const fresh = await api('/v1/subjects/' + encodeURIComponent(customer.id) + '?purpose=' + encodeURIComponent(customer.purpose));
        if (!fresh.ok) return;
        customer.profile = fresh;
        customer.revealed = true;
        // The reveal is in the access log now: show it there too.
        if (may('audit')) customer.access = await api('/v1/audit/access?subject_id=' + encodeURIComponent(customer.id) + '&limit=50');
        renderCustomer();
        const again = $('reveal');
        if (again) again.focus();
      });
      panel.append(section('section_profile',
        el('p', { class: 'fine' }, tr('read_for', { purpose: purposeName(customer.purpose) })),
        table(tr('section_profile'), [tr('col_field'), tr('col_value')], rows),
        reveal));
    }

    if (customer.consents && customer.consents.ok) {
      const rows = (customer.consents.body.purposes || []).map((c) => {
        const policy = allPurposes.find((p) => p.id === c.purpose);
        // Only consent-based purposes ask for consent; for the others say which basis applies.
        const state = policy && !policy.requires_consent && c.state === 'not_set'
          ? tr('consent_not_needed', { basis: tr('basis_' + policy.lawful_basis) })
          : tr('consent_' + c.state);
        return [purposeName(c.purpose), state, c.since ? formatTime(c.since) : ''];
      });
      panel.append(section('section_consents', table(tr('section_consents'), [tr('col_purpose'), tr('col_state'), tr('col_since')], rows)));
    }

    if (customer.history && customer.history.ok) {
      const entries = customer.history.body.entries || [];
      const checks = customer.checks || { entries: [] };
      const rows = entries.map((e, i) => [
        String(e.seq),
        formatTime(e.time),
        e.kind,
        e.purpose ? purposeName(e.purpose) : '',
        String((e.source && e.source.channel) || ''),
        checks.entries[i]
          ? el('span', { class: 'badge ok', 'data-verified': 'true' }, tr('verified'))
          : el('span', { class: 'badge bad', 'data-verified': 'false' }, tr('not_verified')),
        { mono: true, text: String(e.leaf_hash || '').slice(0, 16) + '…' },
      ]);
      const note = checks.checkpoint
        ? tr('history_checkpoint', { size: checks.checkpoint.size })
        : tr('reason_signature');
      panel.append(section('section_history',
        el('p', { class: 'fine' }, note),
        rows.length ? table(tr('section_history'), [tr('col_position'), tr('col_time'), tr('col_kind'), tr('col_purpose'), tr('col_channel'), tr('col_proof'), tr('col_leaf')], rows) : el('p', {}, tr('no_entries'))));
    }

    if (customer.flags && customer.flags.ok) {
      const f = customer.flags.body;
      const facts = el('dl', { class: 'facts' });
      for (const name of ['restricted', 'objected', 'legal_hold']) {
        facts.append(el('dt', {}, tr('flag_' + name)), el('dd', { 'data-flag': name }, f[name] ? tr('yes') : tr('no')));
      }
      const hold = el('button', { type: 'button', id: 'toggle-hold' }, f.legal_hold ? tr('lift_hold') : tr('place_hold'));
      hold.addEventListener('click', () => changeHold(!f.legal_hold));
      const erase = el('button', { type: 'button', id: 'erase', class: 'danger' }, tr('erase'));
      erase.addEventListener('click', eraseCustomer);
      panel.append(section('section_flags', facts, el('div', { class: 'actions' }, hold, erase), el('p', { class: 'error', id: 'flags-error', role: 'alert', hidden: true })));
    }

    if (customer.merges && customer.merges.ok) {
      const rows = (customer.merges.body.merges || []).map((m) => [
        formatTime(m.at),
        { mono: true, text: m.merged },
        { mono: true, text: m.into },
        String(m.n_events_moved),
      ]);
      panel.append(section('section_merges',
        el('p', { class: 'fine' }, tr('merges_intro')),
        rows.length ? table(tr('section_merges'), [tr('col_time'), tr('col_merged'), tr('col_into'), tr('col_moved')], rows) : el('p', { id: 'no-merges' }, tr('no_merges'))));
    }

    if (customer.access && customer.access.ok) {
      const rows = (customer.access.body.entries || []).map((e) => [
        formatTime(e.time),
        String((e.attributes && e.attributes.role) || ''),
        { mono: true, text: String((e.attributes && e.attributes.key_id) || '') },
        e.purpose || '',
        String((e.attributes && e.attributes.what) || ''),
        String((e.attributes && e.attributes.result) || ''),
      ]);
      panel.append(section('section_access',
        rows.length ? table(tr('section_access'), [tr('col_time'), tr('col_role'), tr('col_key'), tr('col_purpose'), tr('col_what'), tr('col_result')], rows) : el('p', {}, tr('no_entries'))));
    }
  }

  async function changeHold(on) {
    if (!window.confirm(on ? tr('confirm_place_hold') : tr('confirm_lift_hold'))) return;
    const result = await send('PUT', '/v1/subjects/' + encodeURIComponent(customer.id) + '/flags', { legal_hold: on });
    if (!result.ok) {
      if (result.status !== 401) setError('flags-error', problemText(result));
      return;
    }
    await refreshCustomer();
    const button = $('toggle-hold');
    if (button) button.focus();
  }

  // First what the erasure would do, from the server (the same sorting the erasure makes), then
  // the erasure itself once the officer confirms.
  async function eraseCustomer() {
    setError('flags-error', '');
    const preview = await api('/v1/subjects/' + encodeURIComponent(customer.id) + '/erasure');
    if (!preview.ok) {
      if (preview.status !== 401) setError('flags-error', problemText(preview));
      return;
    }
    const p = preview.body;
    // The categories' names, in the page's language, from the policies in force.
    const policies = await api('/v1/policies');
    const categories = policies.ok ? policies.body.categories || [] : [];
    const categoryLabel = (id) => localName(categories.find((c) => c.id === id) || { id });
    if (p.legal_hold) {
      setError('flags-error', tr('erase_refused_hold'));
      $('erase').focus();
      return;
    }
    const box = el('div', { class: 'notice', id: 'erase-preview', tabindex: '-1' });
    box.append(el('p', {}, el('strong', {}, tr('erase_preview_title'))));
    box.append(el('ul', { class: 'hits' }, ...(p.erased || []).map((e) => el('li', {},
      e.what === 'profile' ? tr('erase_profile') : tr('erase_events', { n: e.records, category: categoryLabel(e.category) })))));
    if ((p.kept || []).length) {
      box.append(el('p', {}, tr('erase_kept_title')));
      box.append(table(tr('erase_kept_title'), [tr('col_category'), tr('col_records'), tr('col_why'), tr('col_until')],
        p.kept.map((k) => {
          const c = categories.find((x) => x.id === k.category);
          const t = c && c.translations && c.translations[lang];
          return [categoryLabel(k.category), String(k.records), (t && t.legal_hold_reason) || k.reason, formatDate(k.until)];
        })));
    } else {
      box.append(el('p', {}, tr('erase_nothing_kept')));
    }
    const go = el('button', { type: 'button', class: 'danger', id: 'erase-confirm' }, tr('erase_now'));
    const cancel = el('button', { type: 'button', id: 'erase-cancel' }, tr('cancel'));
    cancel.addEventListener('click', () => {
      box.remove();
      $('erase').focus();
    });
    go.addEventListener('click', doErase);
    box.append(el('div', { class: 'actions' }, go, cancel));
    const old = $('erase-preview');
    if (old) old.remove();
    $('flags-error').before(box);
    box.focus();
  }

  async function doErase() {
    if (!window.confirm(tr('confirm_erase'))) return;
    const result = await send('POST', '/v1/subjects/' + encodeURIComponent(customer.id) + '/erasure', {});
    if (!result.ok) {
      if (result.status !== 401) setError('flags-error', problemText(result));
      const button = $('erase');
      if (button) button.focus();
      return;
    }
    const outcome = result.body;
    customer = null;
    const panel = $('customer-panel');
    panel.replaceChildren(
      el('h2', { tabindex: '-1' }, tr('erased_title')),
      el('p', { class: 'result ok' }, tr('erased_line', { seq: outcome.receipt_seq, kept: (outcome.kept || []).length })),
    );
    panel.querySelector('h2').focus();
  }

  // A write with the signed-in key; JSON in, JSON or problem out.
  async function send(method, path, body) {
    let answer;
    try {
      answer = await fetch(path, {
        method,
        headers: { Authorization: 'Bearer ' + key(), 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (_) {
      return { ok: false, status: 0, problem: null };
    }
    if (answer.status === 401) {
      signOut('session_ended');
      return { ok: false, status: 401, problem: null };
    }
    let json = null;
    try {
      json = await answer.json();
    } catch (_) {
      json = null;
    }
    return answer.ok ? { ok: true, status: answer.status, body: json } : { ok: false, status: answer.status, problem: json };
  }

  // ---- loyalty dashboard -----------------------------------------------------------------------

  const RFM = ['champions', 'loyal', 'potential_loyalist', 'new', 'promising', 'need_attention', 'about_to_sleep', 'at_risk', 'cannot_lose_them', 'hibernating', 'lost'];
  const JOURNEY = ['awareness', 'consideration', 'purchase', 'retention', 'advocacy'];
  const RATES = ['repeat_purchase_rate', 'retention_rate', 'churn_rate'];

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  function defaultPeriod() {
    const to = new Date();
    const from = new Date(to.getTime());
    from.setUTCFullYear(from.getUTCFullYear() - 1);
    if (!$('p-from').value) $('p-from').value = isoDay(from);
    if (!$('p-to').value) $('p-to').value = isoDay(to);
  }

  async function loadDashboard(event) {
    if (event) event.preventDefault();
    setError('period-error', '');
    defaultPeriod();
    const from = new Date($('p-from').value + 'T00:00:00Z');
    const to = new Date($('p-to').value + 'T00:00:00Z');
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || from >= to) {
      setError('period-error', tr('error_period'));
      $('p-from').focus();
      return;
    }
    // The end day is included: the period runs to the next midnight. One call answers the
    // period, the one before it and the series for the trend chart.
    const end = new Date(to.getTime() + DAY);
    const days = (end.getTime() - from.getTime()) / DAY;
    const series = days <= 31 ? 'day' : days <= 183 ? 'week' : 'month';
    const query = '?from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(end.toISOString())
      + ($('p-compare').checked ? '&compare=previous' : '') + '&series=' + series;
    const [now, segments] = await Promise.all([
      api('/v1/analytics/kpis' + query),
      api('/v1/analytics/segments'),
    ]);
    if (!me) return;
    if (!now.ok) {
      if (now.status !== 401) setError('period-error', problemText(now));
      return;
    }
    dashboard = {
      from: from.toISOString(),
      to: to.toISOString(),
      now: now.body,
      before: now.body.previous || null,
      series: now.body.series || null,
      segments: segments.ok ? segments.body : null,
    };
    renderDashboard();
  }

  function number(value, digits) {
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits === undefined ? 2 : digits }).format(value);
  }

  function money(value, currency) {
    try {
      return new Intl.NumberFormat(locale(), { style: 'currency', currency }).format(value);
    } catch (_) {
      return number(value) + ' ' + currency;
    }
  }

  function percent(value) {
    return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 }).format(value);
  }

  // One KPI's text (or null when suppressed or missing) from an answer.
  function kpiText(answer, name) {
    if (!answer) return null;
    if ((answer.suppressed || []).includes(name)) return null;
    const value = answer[name];
    if (value === null || value === undefined) return null;
    if (RATES.includes(name)) return percent(value);
    if (name === 'nps') return number(value, 1);
    if (name === 'purchase_frequency') return number(value, 2);
    if (typeof value === 'object' && value.by_currency) {
      const parts = Object.entries(value.by_currency).map(([currency, amount]) => money(amount, currency));
      return parts.length ? parts.join(' · ') : null;
    }
    return number(value, 0);
  }

  function renderDashboard() {
    const box = $('kpis');
    box.replaceChildren();
    if (!dashboard) return;
    const { now, before, segments } = dashboard;
    $('dashboard-summary').textContent = tr('dashboard_summary', {
      from: formatDate(dashboard.from),
      to: formatDate(dashboard.to),
      excluded: number(now.excluded_for_consent, 0),
      k: now.k_anonymity,
    });
    for (const name of ['customers', 'repeat_purchase_rate', 'retention_rate', 'churn_rate', 'purchase_frequency', 'average_order_value', 'customer_lifetime_value', 'nps']) {
      const text = kpiText(now, name);
      const card = el('section', { class: 'card kpi', 'data-kpi': name, 'data-suppressed': String(text === null) });
      card.append(el('h2', {}, tr('kpi_' + name)));
      card.append(el('p', { class: 'figure' }, text === null ? tr('suppressed') : text));
      if (before) {
        const earlier = kpiText(before, name);
        card.append(el('p', { class: 'fine', 'data-previous': '' }, tr('previous_period', { value: earlier === null ? tr('suppressed') : earlier })));
      }
      card.append(el('p', { class: 'fine' }, tr('excluded_line', { n: number(now.excluded_for_consent, 0) })));
      box.append(card);
    }
    renderTrend();
    renderFunnel(segments);
    renderRfm(segments);
  }

  const TREND = ['customers', 'repeat_purchase_rate', 'retention_rate', 'churn_rate', 'purchase_frequency', 'nps'];

  // One figure over the period, one point per day, week or month, drawn in SVG; a suppressed
  // point is a gap in the line, marked and said in the table under the chart.
  function renderTrend() {
    const select = $('t-kpi');
    const chosen = select.value || 'customers';
    select.replaceChildren(...TREND.map((name) => el('option', { value: name }, tr('kpi_' + name))));
    select.value = chosen;
    const box = $('trend');
    box.replaceChildren();
    const series = dashboard && dashboard.series;
    if (!series || !(series.points || []).length) return;
    const name = select.value;
    const points = series.points.map((p) => ({
      at: p.period && p.period.from,
      value: (p.suppressed || []).includes(name) || typeof p[name] !== 'number' ? null : p[name],
      text: kpiText(p, name),
    }));
    const values = points.map((p) => p.value).filter((v) => v !== null);
    const top = RATES.includes(name) ? 1 : Math.max(1, ...values);
    const bottom = name === 'nps' ? Math.min(0, ...values) : 0;
    const svgNs = 'http://www.w3.org/2000/svg';
    const [w, h, left, pad] = [600, 200, 48, 16];
    const svg = document.createElementNS(svgNs, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('class', 'trend');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', tr('trend_aria', { kpi: tr('kpi_' + name), interval: tr('interval_' + series.interval) }));
    const x = (i) => left + (points.length === 1 ? (w - left - pad) / 2 : (i * (w - left - pad)) / (points.length - 1));
    const y = (v) => h - pad - ((v - bottom) / (top - bottom || 1)) * (h - 2 * pad);
    const line = (x1, y1, x2, y2, cls) => {
      const l = document.createElementNS(svgNs, 'line');
      for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, String(v));
      l.setAttribute('class', cls);
      return l;
    };
    svg.append(line(left, h - pad, w - pad, h - pad, 'axis'), line(left, pad, left, h - pad, 'axis'));
    for (const [v, cls] of [[top, 'tick'], [bottom, 'tick']]) {
      const t = document.createElementNS(svgNs, 'text');
      t.setAttribute('x', String(left - 6));
      t.setAttribute('y', String(y(v) + 4));
      t.setAttribute('text-anchor', 'end');
      t.setAttribute('class', cls);
      t.textContent = RATES.includes(name) ? percent(v) : number(v, 0);
      svg.append(t);
    }
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        const path = document.createElementNS(svgNs, 'polyline');
        path.setAttribute('points', run.map(([a, b]) => a + ',' + b).join(' '));
        path.setAttribute('class', 'line');
        svg.append(path);
      }
      run = [];
    };
    points.forEach((p, i) => {
      if (p.value === null) {
        flush();
        const mark = document.createElementNS(svgNs, 'circle');
        mark.setAttribute('cx', String(x(i)));
        mark.setAttribute('cy', String(h - pad));
        mark.setAttribute('r', '3');
        mark.setAttribute('class', 'gap');
        svg.append(mark);
        return;
      }
      run.push([x(i), y(p.value)]);
      const dot = document.createElementNS(svgNs, 'circle');
      dot.setAttribute('cx', String(x(i)));
      dot.setAttribute('cy', String(y(p.value)));
      dot.setAttribute('r', '3');
      dot.setAttribute('class', 'dot');
      svg.append(dot);
    });
    flush();
    const suppressedPoints = points.filter((p) => p.value === null).length;
    box.append(svg,
      el('p', { class: 'fine' }, tr('trend_note', { n: points.length, interval: tr('interval_' + series.interval), suppressed: suppressedPoints })),
      table(tr('trend_title'), [tr('col_from'), tr('kpi_' + name)], points.map((p) => [formatDate(p.at), el('span', { 'data-suppressed': String(p.value === null) }, p.text === null ? tr('suppressed') : p.text)])));
  }

  // The journey as horizontal bars drawn in SVG, with the conversion from each stage to the next.
  function renderFunnel(segments) {
    const box = $('funnel');
    box.replaceChildren();
    if (!segments) return;
    const counts = JOURNEY.map((stage) => segments.journey ? segments.journey[stage] : null);
    const max = Math.max(1, ...counts.filter((c) => typeof c === 'number'));
    const svgNs = 'http://www.w3.org/2000/svg';
    const rowHeight = 34;
    const svg = document.createElementNS(svgNs, 'svg');
    svg.setAttribute('viewBox', '0 0 600 ' + rowHeight * JOURNEY.length);
    svg.setAttribute('class', 'funnel');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-labelledby', 'funnel-title');
    JOURNEY.forEach((stage, i) => {
      const count = counts[i];
      const width = typeof count === 'number' ? Math.max(4, Math.round((count / max) * 300)) : 0;
      const bar = document.createElementNS(svgNs, 'rect');
      bar.setAttribute('x', '200');
      bar.setAttribute('y', String(i * rowHeight + 6));
      bar.setAttribute('width', String(width));
      bar.setAttribute('height', String(rowHeight - 12));
      bar.setAttribute('rx', '3');
      bar.setAttribute('class', 'bar');
      const label = document.createElementNS(svgNs, 'text');
      label.setAttribute('x', '0');
      label.setAttribute('y', String(i * rowHeight + rowHeight / 2 + 5));
      label.textContent = tr('stage_' + stage);
      const value = document.createElementNS(svgNs, 'text');
      value.setAttribute('x', String(200 + width + 8));
      value.setAttribute('y', String(i * rowHeight + rowHeight / 2 + 5));
      value.textContent = typeof count === 'number' ? number(count, 0) : tr('suppressed');
      svg.append(bar, label, value);
    });
    // The same figures as a table, with the server's funnel: who reached each stage (it and
    // every later one) and the conversion to the next, null where a suppressed count would leak.
    const funnel = segments.funnel || [];
    const rows = JOURNEY.map((stage, i) => {
      const count = counts[i];
      const step = funnel.find((f) => f.stage === stage) || {};
      return [
        tr('stage_' + stage),
        el('span', { 'data-stage': stage, 'data-suppressed': String(typeof count !== 'number') }, typeof count === 'number' ? number(count, 0) : tr('suppressed')),
        typeof step.reached === 'number' ? number(step.reached, 0) : '',
        typeof step.conversion_to_next === 'number' ? percent(step.conversion_to_next) : '',
      ];
    });
    box.append(svg, table(tr('funnel_title'), [tr('col_stage'), tr('col_customers'), tr('col_reached'), tr('col_conversion')], rows));
  }

  function renderRfm(segments) {
    const box = $('rfm');
    box.replaceChildren();
    if (!segments) return;
    for (const segment of RFM) {
      const count = segments.rfm ? segments.rfm[segment] : null;
      const suppressed = typeof count !== 'number';
      box.append(
        el('div', { class: 'cell' + (suppressed ? ' suppressed' : ''), 'data-segment': segment, 'data-suppressed': String(suppressed) },
          el('span', { class: 'name' }, tr('rfm_' + segment)),
          el('span', { class: 'count' }, suppressed ? tr('suppressed') : number(count, 0))),
      );
    }
    box.append(el('p', { class: 'fine' }, tr('excluded_line', { n: number(segments.excluded_for_consent, 0) })));
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
    const witnesses = await api(base + '/witnesses');
    const result = { key: keyAnswer.body, note: noteAnswer.body, checkedAt: new Date(), witnesses: witnesses.ok ? witnesses.body : null };
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
        if (result.witnesses) card.append(witnessList(result.witnesses));
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

  // Who else holds this log's checkpoints, and the newest each holds: a rewritten log would have
  // to fool them too.
  function witnessList(answer) {
    const box = el('div', { class: 'witnesses', 'data-witnesses': String((answer.witnesses || []).length) });
    box.append(el('h3', {}, tr('witnesses_title')));
    if (answer.checkpoint_signed_at) {
      const minutes = Math.max(0, Math.round((Date.now() - new Date(answer.checkpoint_signed_at).getTime()) / 60000));
      box.append(el('p', { 'data-checkpoint-age': String(minutes) }, tr('checkpoint_signed', { when: formatTime(answer.checkpoint_signed_at), age: minutes })));
    }
    box.append(el('p', { class: 'fine' }, tr('checkpoint_every', { n: answer.checkpoint_interval_seconds })));
    if (!(answer.witnesses || []).length) {
      box.append(el('p', { class: 'notice' }, tr('witnesses_none')));
      return box;
    }
    box.append(el('ul', { class: 'hits' }, ...answer.witnesses.map((w) => el('li', { 'data-witness': w.kind },
      el('strong', {}, tr('witness_' + w.kind)), ' ', el('span', { class: 'mono' }, w.kind === 'dir' ? '' : w.target), ' — ',
      typeof w.last_tree_size === 'number'
        ? tr('witness_holds', { size: w.last_tree_size.toLocaleString(locale()), when: formatTime(w.last_at) })
        : tr(w.kind === 'dir' ? 'witness_empty' : 'witness_not_since_start')))));
    return box;
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

  // ---- operations -----------------------------------------------------------------------------

  async function loadOperations() {
    const [policies, rootKey, keys] = await Promise.all([
      api('/v1/policies'),
      may('manage_keys') ? api('/v1/admin/root-key') : null,
      may('manage_keys') ? api('/v1/admin/keys') : null,
    ]);
    if (!me) return;
    operations = Object.assign(operations || {}, { policies, rootKey, keys });
    renderOperations();
  }

  function list(items) {
    return (items || []).join(', ');
  }

  function renderOperations() {
    if (!operations) return;
    const box = $('policies');
    box.replaceChildren();
    const policies = operations.policies;
    setError('policies-error', policies && !policies.ok ? problemText(policies) : '');
    if (policies && policies.ok) {
      const p = policies.body;
      box.append(el('p', { class: 'fine' }, tr('policies_version', { version: p.policy_version }), ' ', el('span', { class: 'mono' }, String(p.policy_hash || '').slice(0, 16) + '…')));
      box.append(el('h3', {}, tr('policies_purposes')), table(tr('policies_purposes'),
        [tr('col_purpose'), tr('col_basis'), tr('col_categories'), tr('col_retention'), tr('col_recipients')],
        (p.purposes || []).map((x) => [
          localName(x),
          tr('basis_' + x.lawful_basis) + (x.consent_expiry_days ? ' · ' + tr('consent_expires', { n: x.consent_expiry_days }) : ''),
          list((x.categories || []).map((c) => categoryLabel(p, c))),
          tr('days_n', { n: x.retention_days }),
          list(x.recipients) || tr('recipients_none'),
        ])));
      box.append(el('h3', {}, tr('policies_categories')), table(tr('policies_categories'),
        [tr('col_category'), tr('col_retention'), tr('col_legal_hold')],
        (p.categories || []).map((c) => [
          localName(c),
          tr('days_n', { n: c.retention_days }),
          c.legal_hold ? tr('legal_hold_line', { purpose: purposeLabel(p, c.legal_hold.purpose), reason: c.legal_hold.reason }) : tr('no'),
        ])));
      box.append(el('h3', {}, tr('policies_roles')), table(tr('policies_roles'),
        [tr('col_role'), tr('col_description'), tr('col_operations'), tr('col_purposes')],
        (p.roles || []).map((r) => [
          el('strong', {}, r.name),
          r.description,
          list(r.operations),
          list((r.purposes || []).map((id) => purposeLabel(p, id))),
        ])));
      const roles = $('k-role');
      const chosen = roles.value;
      roles.replaceChildren(...(p.roles || []).map((r) => el('option', { value: r.name }, r.name)));
      if (chosen) roles.value = chosen;
    }
    $('retention-card').hidden = !may('dsr_queue');
    renderReport();
    $('rootkey-card').hidden = !may('manage_keys');
    const root = $('root-key');
    root.replaceChildren();
    const rootKey = operations.rootKey;
    if (rootKey && rootKey.ok) {
      const k = rootKey.body;
      root.append(el('p', { class: 'result ' + (k.rotation_due ? 'bad' : 'ok'), 'data-rotation-due': String(k.rotation_due) },
        tr(k.rotation_due ? 'rootkey_due' : 'rootkey_ok', { age: k.age_days, interval: k.rotation_interval_days })));
      if (k.rotation_due) root.append(el('p', { class: 'fine' }, tr('rootkey_how')));
    } else if (rootKey) {
      root.append(el('p', { class: 'error' }, problemText(rootKey)));
    }
    $('keys-card').hidden = !may('manage_keys');
    renderKeys();
  }

  function categoryLabel(p, id) {
    return localName((p.categories || []).find((c) => c.id === id) || { id });
  }

  function purposeLabel(p, id) {
    return localName((p.purposes || []).find((x) => x.id === id) || { id });
  }

  function renderReport() {
    const box = $('retention-report');
    box.replaceChildren();
    const report = operations && operations.report;
    if (!report) return;
    const facts = el('dl', { class: 'facts', id: 'retention-facts' });
    const add = (label, value) => facts.append(el('dt', {}, tr(label)), el('dd', {}, String(value)));
    add('report_swept_at', report.swept_at ? formatTime(report.swept_at) : '');
    add('report_scanned', report.subjects_scanned);
    add('report_on_hold', report.subjects_on_hold);
    add('report_profiles', report.profiles_erased);
    const perCategory = (map) => Object.entries(map || {}).map(([c, n]) => c + ': ' + n).join(', ') || '0';
    add('report_events', perCategory(report.events_removed));
    add('report_traits', perCategory(report.traits_removed));
    add('report_requests', report.requests_expired);
    add('report_ledger', report.ledger_entries);
    box.append(el('p', { class: 'result ok', role: 'status' }, tr('report_done')), facts);
  }

  async function runRetention() {
    setError('retention-error', '');
    if (!window.confirm(tr('confirm_retention'))) return;
    const button = $('run-retention');
    button.disabled = true;
    const result = await send('POST', '/v1/admin/retention/run', {});
    button.disabled = false;
    if (!result.ok) {
      if (result.status !== 401) setError('retention-error', problemText(result));
      return;
    }
    operations.report = result.body;
    renderReport();
  }

  function renderKeys() {
    const box = $('keys-table');
    box.replaceChildren();
    const keys = operations && operations.keys;
    if (!keys) return;
    if (!keys.ok) {
      box.append(el('p', { class: 'error' }, problemText(keys)));
      return;
    }
    const rows = (keys.body.keys || []).map((k) => {
      let action = '';
      if (k.this_key) action = el('span', { class: 'fine' }, tr('key_this'));
      else if (!k.revoked) {
        action = el('button', { type: 'button', class: 'danger', 'data-revoke': k.key_id }, tr('revoke'));
        action.setAttribute('aria-label', tr('revoke_key', { id: k.key_id }));
      }
      return [
        { mono: true, text: k.key_id },
        k.role,
        formatTime(k.created_at),
        k.last_used_at ? formatTime(k.last_used_at) : tr('never'),
        k.revoked ? el('span', { class: 'badge bad' }, k.revoked_at ? tr('revoked_on', { when: formatTime(k.revoked_at) }) : tr('revoked')) : el('span', { class: 'badge ok' }, tr('active')),
        action,
      ];
    });
    box.append(table(tr('keys_title'), [tr('col_key'), tr('col_role'), tr('col_created'), tr('col_last_used'), tr('col_state'), tr('col_action')], rows));
    for (const button of box.querySelectorAll('button[data-revoke]')) {
      button.addEventListener('click', () => revokeKey(button.getAttribute('data-revoke')));
    }
  }

  async function revokeKey(id) {
    setError('keys-error', '');
    if (!window.confirm(tr('confirm_revoke', { id }))) return;
    const result = await send('DELETE', '/v1/admin/keys/' + encodeURIComponent(id));
    if (!result.ok) {
      if (result.status !== 401) setError('keys-error', problemText(result));
      return;
    }
    operations.keys = await api('/v1/admin/keys');
    renderKeys();
    $('keys-title').focus();
  }

  // The texts of the notice of a key just created, in the current language; the notice itself,
  // with the secret in its field, stays as it is.
  let newKeyFacts = null;
  function renderNewKeyTexts() {
    const notice = $('new-key');
    const created = notice.querySelector('[data-part=created]');
    if (!newKeyFacts || !created) return;
    created.textContent = tr('key_created', newKeyFacts);
    notice.querySelector('label[for=new-key-value]').textContent = tr('key_secret');
    notice.querySelector('[data-part=once]').textContent = tr('key_once');
  }

  async function createKey(event) {
    event.preventDefault();
    setError('keys-error', '');
    const role = $('k-role').value;
    const result = await send('POST', '/v1/admin/keys', { role });
    if (!result.ok) {
      if (result.status !== 401) setError('keys-error', problemText(result));
      return;
    }
    // The secret is in this answer only: shown once, never kept by the page (only in its field).
    const shown = el('input', { type: 'text', id: 'new-key-value', readonly: true, value: result.body.api_key, spellcheck: 'false', autocomplete: 'off' });
    newKeyFacts = { role: result.body.role, id: result.body.key_id };
    $('new-key').replaceChildren(el('div', { class: 'notice', role: 'status' },
      el('p', {}, el('strong', { 'data-part': 'created' })),
      el('div', { class: 'field' }, el('label', { for: 'new-key-value' }), shown),
      el('p', { class: 'fine', 'data-part': 'once' })));
    renderNewKeyTexts();
    shown.focus();
    shown.select();
    operations.keys = await api('/v1/admin/keys');
    renderKeys();
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
    window.CustodiaPage.use(catalogue, lang, 'medium');
    applyStatic();
    renderChrome();
    if (view === 'requests' && requests.length) renderRequests();
    if (view === 'ledgers') renderLogs();
    if (purposes.length) renderPurposeChoices();
    if (customer) renderCustomer();
    if (caseFile && caseFile.request && !$('request-detail').hidden) renderRequestFacts(caseFile.request);
    if (caseFile && caseFile.body) renderCase();
    if (dashboard) renderDashboard();
    if (operations) renderOperations();
    renderNewKeyTexts();
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
    $('case-form').addEventListener('submit', openCase);
    $('detail-close').addEventListener('click', () => {
      $('request-detail').hidden = true;
      $('requests-table').querySelector('button') && $('requests-table').querySelector('button').focus();
    });
    $('browse-form').addEventListener('submit', browse);
    $('run-retention').addEventListener('click', runRetention);
    $('key-form').addEventListener('submit', createKey);
    $('lookup-form').addEventListener('submit', lookUp);
    $('period-form').addEventListener('submit', loadDashboard);
    $('t-kpi').addEventListener('change', renderTrend);
    for (const tab of document.querySelectorAll('.tab')) {
      tab.addEventListener('click', () => {
        const name = tab.getAttribute('data-view');
        showView(name);
        if (name === 'requests') loadRequests();
        if (name === 'customer') loadPurposes();
        if (name === 'ledgers') loadLedgers();
        if (name === 'dashboard') loadDashboard();
        if (name === 'operations') loadOperations();
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
