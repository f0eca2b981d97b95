// Custodia privacy center: the customer's own page for their GDPR rights.
//
// Rules this file keeps (docs/security.md, "The privacy center"):
// - every value from the server is inserted as text (textContent, createTextNode), never as HTML;
// - the request id and its access token live in memory and sessionStorage, never in a URL;
// - it talks only to its own origin (the CSP allows nothing else);
// - a consent entry is shown as verified only after this page has checked, with Web Crypto, the
//   checkpoint's Ed25519 signature, the entry's inclusion proof against the signed root, and that
//   the fields it shows are the ones in the verified bytes.
'use strict';

(() => {
  const RIGHTS = ['access', 'portability', 'rectification', 'erasure', 'restriction', 'objection'];
  const ARTICLE = {
    access: '15',
    portability: '20',
    rectification: '16',
    erasure: '17',
    restriction: '18',
    objection: '21',
  };
  const LANGS = ['en', 'fr'];
  const STORE_KEY = 'custodia.privacy.request';

  let lang = LANGS.includes(document.documentElement.lang) ? document.documentElement.lang : 'en';
  let catalogue = {};
  let config = null;
  let request = loadRequest(); // {type, requestId, token?}
  let currentView = 'view-rights';
  let lastStatus = null;
  let lastExport = null;
  let lastConsents = null; // the answer of GET /v1/dsr/{id}/consents, kept up to date

  const $ = (id) => document.getElementById(id);

  // ---- text and elements (assets/shared/page.js) -----------------------------------------

  const { tr, el, formatTime, formatDate, setError } = window.CustodiaPage;

  function show(id, focus) {
    currentView = id;
    for (const view of ['view-rights', 'view-form', 'view-code', 'view-status', 'view-consent']) {
      $(view).hidden = view !== id;
    }
    if (focus !== false) {
      const heading = $(id).querySelector('h1');
      if (heading) {
        heading.setAttribute('tabindex', '-1');
        heading.focus();
      }
    }
  }

  function applyStatic() {
    document.documentElement.lang = lang;
    for (const node of document.querySelectorAll('[data-i18n]')) {
      node.textContent = tr(node.getAttribute('data-i18n'));
    }
    document.title = tr('page_title') + (config && config.shop_name ? ' · ' + config.shop_name : '');
    for (const button of document.querySelectorAll('.lang')) {
      button.setAttribute('aria-pressed', button.getAttribute('data-lang') === lang ? 'true' : 'false');
    }
    $('langs').setAttribute('aria-label', tr('language'));
  }

  async function loadCatalogue(next) {
    const answer = await fetch('/privacy/i18n/' + next + '.json', { credentials: 'omit' });
    if (!answer.ok) return;
    catalogue = await answer.json();
    lang = next;
    window.CustodiaPage.use(catalogue, lang, 'long');
    applyStatic();
    renderTiles();
    renderController();
    if (currentView === 'view-form' && request && request.type) fillForm(request.type);
    if (currentView === 'view-status') {
      if (lastStatus) renderStatus(lastStatus);
      if (lastExport) renderExport(lastExport.bundle, lastExport.checks);
    }
    if (currentView === 'view-consent' && lastConsents) renderConsents(lastConsents);
  }

  // ---- the request in this tab ----------------------------------------------------------------

  function loadRequest() {
    try {
      const raw = window.sessionStorage.getItem(STORE_KEY);
      return raw ? JSON.parse(raw) : null;
    } catch (_) {
      return null;
    }
  }

  function saveRequest() {
    try {
      if (request && request.requestId) {
        window.sessionStorage.setItem(STORE_KEY, JSON.stringify(request));
      } else {
        window.sessionStorage.removeItem(STORE_KEY);
      }
    } catch (_) {
      // sessionStorage may be off: the request then lives in memory only.
    }
  }

  function startOver() {
    request = null;
    lastStatus = null;
    lastExport = null;
    lastConsents = null;
    saveRequest();
    $('request-form').reset();
    $('code-form').reset();
    $('export-view').replaceChildren();
    syncIdentityFields();
    show('view-rights');
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  async function api(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    let answer;
    try {
      answer = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (_) {
      return { ok: false, status: 0, problem: null };
    }
    let json = null;
    try {
      json = await answer.json();
    } catch (_) {
      json = null;
    }
    return { ok: answer.ok, status: answer.status, json, problem: answer.ok ? null : json };
  }

  // The message for a refused request: the field's own text where the server named one.
  function problemText(result) {
    if (result.status === 0) return tr('error_network');
    if (result.status === 429) return tr('error_rate_limited');
    if (result.status >= 500) return tr('error_server');
    if (result.status === 401 || result.status === 404) return tr('error_request_gone');
    return tr('error_invalid');
  }

  // ---- rights -----------------------------------------------------------------------------------

  function renderTiles() {
    const list = $('tiles');
    list.replaceChildren();
    for (const right of RIGHTS) {
      const button = el('button', { type: 'button', class: 'primary', 'data-right': right }, tr('right_' + right + '_action'));
      button.addEventListener('click', () => openForm(right));
      list.append(
        el(
          'li',
          { class: 'tile' },
          el('h2', {}, tr('right_' + right + '_title')),
          el('p', {}, tr('right_' + right + '_what')),
          el('p', { class: 'article' }, tr('gdpr_article', { n: ARTICLE[right] }) + ' · ' + tr('deadline_one_month')),
          button,
        ),
      );
    }
  }

  function renderController() {
    const line = $('controller-line');
    line.replaceChildren();
    if (!config) return;
    $('shop-name').textContent = config.shop_name || '';
    const logo = $('shop-logo');
    if (config.logo_url && /^(https:\/\/|\/(?!\/))/.test(config.logo_url)) {
      logo.referrerPolicy = 'no-referrer';
      logo.src = config.logo_url;
      logo.hidden = false;
      // A logo from the shop's own site is the one thing the page loads from elsewhere; say so.
      if (/^https:/.test(config.logo_url)) $('footer-tracking').textContent = tr('footer_tracking_logo');
    }
    if (config.contact) {
      line.append(tr('controller_line', { name: config.controller || config.shop_name || '' }) + ' ');
      line.append(el('span', {}, config.contact));
    }
    if (config.supervisory_authority && config.supervisory_authority.name) {
      line.append(el('br'), tr('complaint_line', { authority: config.supervisory_authority.name }));
    }
    const link = $('policy-link');
    if (config.privacy_policy_url && /^https?:\/\//.test(config.privacy_policy_url)) {
      link.href = config.privacy_policy_url;
      link.rel = 'noreferrer';
      link.hidden = false;
    }
  }

  function openForm(type) {
    request = { type };
    fillForm(type);
    setError('form-error', '');
    setError('email-error', '');
    setError('user-error', '');
    setError('rectify-error', '');
    show('view-form');
  }

  function fillForm(type) {
    $('form-title').textContent = tr('right_' + type + '_title');
    $('form-what').textContent = tr('right_' + type + '_long');
    $('rectify-fields').hidden = type !== 'rectification';
    $('suppress-box').hidden = type !== 'erasure';
  }

  function syncIdentityFields() {
    const byEmail = $('id-email').checked;
    $('field-email').hidden = !byEmail;
    $('field-user').hidden = byEmail;
  }

  function rectifiedTraits() {
    const value = (id) => $(id).value.trim();
    const traits = {};
    if (value('r-name')) traits.name = value('r-name');
    if (value('r-email')) traits.email = value('r-email');
    if (value('r-phone')) traits.phone = value('r-phone');
    const address = {};
    if (value('r-street')) address.street = value('r-street');
    if (value('r-postal')) address.postal_code = value('r-postal');
    if (value('r-city')) address.city = value('r-city');
    if (value('r-country')) address.country = value('r-country');
    if (Object.keys(address).length) traits.address = address;
    return traits;
  }

  async function submitRequest(event) {
    event.preventDefault();
    setError('form-error', '');
    setError('email-error', '');
    setError('user-error', '');
    setError('rectify-error', '');
    const type = request && request.type;
    if (!type) return;
    const body = { type };
    if ($('id-email').checked) {
      const email = $('email').value.trim();
      if (!/^[^\s@]+@[^\s@]+$/.test(email)) {
        setError('email-error', tr('error_email'));
        $('email').focus();
        return;
      }
      body.email = email;
    } else {
      const userId = $('user_id').value.trim();
      if (!userId) {
        setError('user-error', tr('error_customer_id'));
        $('user_id').focus();
        return;
      }
      body.user_id = userId;
    }
    if (type === 'rectification') {
      const traits = rectifiedTraits();
      const note = $('r-note').value.trim();
      if (!Object.keys(traits).length && !note) {
        setError('rectify-error', tr('error_rectify_empty'));
        $('r-name').focus();
        return;
      }
      body.details = {};
      if (Object.keys(traits).length) body.details.traits = traits;
      // A note goes to a person: the server queues the request for compliance.
      if (note) body.details.note = note;
    }
    if (type === 'erasure' && $('suppress').checked) body.details = { suppress: true };
    const button = event.submitter || $('request-form').querySelector('button[type="submit"]');
    button.disabled = true;
    const result = await api('POST', '/v1/dsr', body);
    button.disabled = false;
    if (!result.ok) {
      const field = result.problem && result.problem.field;
      if (field === '/email') setError('email-error', tr('error_email'));
      else if (field === '/user_id') setError('user-error', tr('error_customer_id'));
      else if (field === '/details/note') setError('rectify-error', tr('error_note'));
      else setError('form-error', problemText(result));
      return;
    }
    request = { type, requestId: result.json.request_id };
    saveRequest();
    $('request-form').reset();
    syncIdentityFields();
    show('view-code');
  }

  async function submitCode(event) {
    event.preventDefault();
    setError('code-error', '');
    const code = $('code').value.trim();
    if (!code) {
      setError('code-error', tr('error_code_empty'));
      $('code').focus();
      return;
    }
    if (!request || !request.requestId) {
      startOver();
      return;
    }
    const button = $('code-form').querySelector('button[type="submit"]');
    button.disabled = true;
    const result = await api('POST', '/v1/dsr/' + encodeURIComponent(request.requestId) + '/verify', { code });
    button.disabled = false;
    if (!result.ok) {
      // 422: a wrong code (the server counts it); 409: locked, expired or already confirmed.
      const text = result.status === 422 || result.status === 400 ? tr('error_code_wrong') : result.status === 409 ? tr('error_locked') : problemText(result);
      setError('code-error', text);
      return;
    }
    request.token = result.json.access_token;
    saveRequest();
    $('code-form').reset();
    if (request.type === 'consent') await loadConsents();
    else await loadStatus();
  }

  // ---- status and outcome ---------------------------------------------------------------------

  async function loadStatus() {
    setError('status-error', '');
    $('export-view').replaceChildren();
    lastExport = null;
    const result = await api('GET', '/v1/dsr/' + encodeURIComponent(request.requestId), undefined, request.token);
    if (!result.ok) {
      show('view-status');
      $('status-facts').replaceChildren();
      $('outcome').replaceChildren();
      $('export-actions').hidden = true;
      setError('status-error', problemText(result));
      return;
    }
    lastStatus = result.json;
    renderStatus(lastStatus);
    show('view-status');
  }

  function statusBadge(status) {
    const kind = status === 'completed' ? 'ok' : status === 'rejected' ? 'bad' : 'wait';
    return el('span', { class: 'badge ' + kind }, tr('status_' + status));
  }

  function renderStatus(view) {
    const facts = $('status-facts');
    facts.replaceChildren();
    const add = (label, value) => {
      if (value === null || value === undefined || value === '') return;
      facts.append(el('dt', {}, tr(label)), el('dd', {}, value));
    };
    add('fact_type', tr('right_' + view.type + '_title'));
    add('fact_status', statusBadge(view.status));
    add('fact_received', formatTime(view.received_at));
    add('fact_deadline', formatDate(view.deadline));
    add('fact_completed', formatTime(view.completed_at));
    add('fact_reference', el('code', {}, view.request_id));
    renderOutcome(view);
    const exportable = (view.type === 'access' || view.type === 'portability') && view.status === 'completed';
    $('export-actions').hidden = !exportable;
  }

  function renderOutcome(view) {
    const box = $('outcome');
    box.replaceChildren();
    const outcome = view.outcome;
    if (!outcome) {
      if (view.status !== 'completed') box.append(el('p', { class: 'notice' }, tr('outcome_pending')));
      return;
    }
    box.append(el('h2', {}, tr('outcome_title')));
    const result = outcome.result;
    if (result && catalogue['result_' + result]) box.append(el('p', { class: 'notice' }, tr('result_' + result)));
    if (result === 'rejected') box.append(el('p', {}, complaintLine()));
    renderNotices(box, view.notices || []);
    if (view.type === 'erasure') renderErasure(box, outcome);
    else if (result === 'awaiting_compliance' || result === 'rejected') return;
    else renderGeneric(box, outcome, ['result', 'handled_by']);
  }

  function complaintLine() {
    const authority = config && config.supervisory_authority && config.supervisory_authority.name;
    return authority ? tr('rejected_rights', { authority }) : tr('rejected_rights_generic');
  }

  // What a person at the shop decided, in their own words (Art. 12(3)-(4)): a later deadline, a
  // refusal, or the request carried out by hand.
  function renderNotices(box, notices) {
    if (!notices.length) return;
    box.append(el('h3', {}, tr('notices_title')));
    const list = el('ul', { class: 'notices', id: 'notices' });
    for (const notice of notices) {
      const head = notice.kind === 'extended'
        ? tr('notice_extended', { date: formatDate(notice.deadline) })
        : tr('notice_' + notice.kind);
      list.append(el('li', { 'data-notice': notice.kind },
        el('p', { class: 'notice-head' }, el('strong', {}, head), ' · ', formatTime(notice.at)),
        el('blockquote', {}, String(notice.reason || ''))));
    }
    box.append(list);
  }

  // A purpose's or category's wording in the page's language, as the policies give it
  // (`translations.<lang>`), else the policies' own.
  function local(item) {
    const t = item && item.translations && item.translations[lang];
    return {
      name: String((t && t.name) || (item && (item.name || item.id)) || ''),
      description: String((t && t.description) || (item && item.description) || ''),
      recipients: (t && t.recipients) || (item && item.recipients) || [],
      legalHoldReason: (t && t.legal_hold_reason) || (item && item.legal_hold && item.legal_hold.reason) || '',
    };
  }

  // Why a category's data is kept after an erasure, in the page's language when the policies
  // translate its legal hold's reason (the receipt quotes the policies' own wording).
  function keptReason(kept) {
    const category = config && (config.categories || []).find((c) => c.id === kept.category);
    const translated = category && category.translations && category.translations[lang] && category.translations[lang].legal_hold_reason;
    return String(translated || kept.reason || '');
  }

  function categoryName(id) {
    const category = config && (config.categories || []).find((c) => c.id === id);
    if (category) return local(category).name;
    return id === 'profile' ? tr('what_profile') : String(id || '');
  }

  function renderErasure(box, outcome) {
    const erasure = outcome.erasure || {};
    const erased = Array.isArray(erasure.erased) ? erasure.erased : [];
    if (erased.length) {
      box.append(
        table(
          tr('erased_caption'),
          [tr('col_what'), tr('col_category'), tr('col_count')],
          erased.map((e) => [tr('what_' + e.what) === 'what_' + e.what ? String(e.what || '') : tr('what_' + e.what), categoryName(e.category), String(e.records ?? '')]),
        ),
      );
    }
    const kept = Array.isArray(erasure.kept) ? erasure.kept : [];
    if (kept.length) {
      box.append(
        table(
          tr('kept_caption'),
          [tr('col_category'), tr('col_count'), tr('col_why'), tr('col_until')],
          kept.map((k) => [categoryName(k.category), String(k.records ?? ''), keptReason(k), formatDate(k.until)]),
        ),
      );
    } else if (outcome.result === 'erased') {
      box.append(el('p', {}, tr('kept_nothing')));
    }
    if (erasure.suppressed) box.append(el('p', {}, tr('suppressed_line')));
    if (erasure.receipt_seq !== undefined && erasure.receipt_seq !== null) {
      box.append(el('p', { class: 'fine' }, tr('receipt_line', { seq: String(erasure.receipt_seq) })));
    }
    renderGeneric(box, outcome, ['result', 'erasure']);
  }

  // Anything else in an outcome, shown as a plain definition list.
  function renderGeneric(box, outcome, skip) {
    const rows = Object.entries(outcome).filter(([k]) => !skip.includes(k));
    if (!rows.length) return;
    const list = el('dl', { class: 'facts' });
    for (const [key, value] of rows) {
      list.append(el('dt', {}, labelFor(key)), el('dd', {}, plain(value)));
    }
    box.append(list);
  }

  function labelFor(key) {
    return Object.prototype.hasOwnProperty.call(catalogue, 'label_' + key) ? tr('label_' + key) : key.replace(/_/g, ' ');
  }

  function plain(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return /^\d{4}-\d\d-\d\dT/.test(value) ? formatTime(value) : value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (Array.isArray(value)) return value.map(plain).join(', ');
    return Object.entries(value)
      .map(([k, v]) => labelFor(k) + ': ' + plain(v))
      .join('; ');
  }

  // A table; under a heading that already says what it is, the caption is for screen readers only.
  function table(caption, headings, rows, captionShown = true) {
    const head = el('tr', {}, ...headings.map((h) => el('th', { scope: 'col' }, h)));
    // Each cell names its column too, for the stacked layout of narrow screens.
    const body = rows.map((row) => el('tr', {}, ...row.map((cell, i) => el('td', { 'data-label': headings[i] }, cell))));
    const title = el('caption', { class: captionShown ? null : 'sr-only' }, caption);
    const stack = headings.length > 2 ? 'stack' : null;
    return el('div', { class: 'scroll' }, el('table', { class: stack }, title, el('thead', {}, head), el('tbody', {}, ...body)));
  }

  // ---- the export ---------------------------------------------------------------------------

  async function showData() {
    setError('status-error', '');
    const button = $('show-data');
    button.disabled = true;
    const result = await api('GET', '/v1/dsr/' + encodeURIComponent(request.requestId) + '/export', undefined, request.token);
    button.disabled = false;
    if (!result.ok) {
      setError('status-error', problemText(result));
      return;
    }
    const bundle = result.json;
    const checks = await verifyConsents(bundle.consent_history || {});
    lastExport = { bundle, checks };
    renderExport(bundle, checks);
    const heading = $('export-view').querySelector('h2');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  }

  async function download(format) {
    setError('status-error', '');
    const path = '/v1/dsr/' + encodeURIComponent(request.requestId) + '/export' + (format === 'zip' ? '?format=zip' : '');
    let answer;
    try {
      answer = await fetch(path, {
        headers: { Authorization: 'Bearer ' + request.token },
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (_) {
      setError('status-error', tr('error_network'));
      return;
    }
    if (!answer.ok) {
      setError('status-error', problemText({ status: answer.status, problem: null }));
      return;
    }
    const blob = await answer.blob();
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: format === 'zip' ? 'my-data.zip' : 'my-data.json', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function flatten(value, prefix, out) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) flatten(v, prefix ? prefix + '.' + k : k, out);
    } else {
      out.push([prefix, Array.isArray(value) ? value.map(plain).join(', ') : plain(value)]);
    }
    return out;
  }

  // A profile field's name in the reader's language: the Segment spec's traits are in the
  // catalogue (`trait_address_city` for `address.city`); any other key is shown split into words.
  function traitLabel(key) {
    const id = 'trait_' + key.replace(/[.\s-]/g, '_');
    if (Object.prototype.hasOwnProperty.call(catalogue, id)) return tr(id);
    return key
      .split('.')
      .map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase())
      .join(' › ')
      .replace(/^./, (c) => c.toUpperCase());
  }

  function purposeName(bundle, id) {
    const purpose = (bundle.purposes || []).find((p) => p.id === id);
    return purpose ? local(purpose).name : id || '';
  }

  function renderExport(bundle, checks) {
    const view = $('export-view');
    view.replaceChildren();
    const data = bundle.data || {};
    view.append(el('h2', {}, tr('export_title')));
    view.append(el('p', { class: 'lead' }, tr('export_intro', { time: formatTime(bundle.generated_at) })));

    // Profile.
    view.append(el('h3', {}, tr('section_profile')));
    const traits = flatten(data.traits || {}, '', []).map(([key, value]) => [traitLabel(key), value]);
    if (data.user_id) traits.unshift([tr('customer_id_label'), String(data.user_id)]);
    view.append(traits.length ? table(tr('section_profile'), [tr('col_field'), tr('col_value')], traits, false) : el('p', {}, tr('nothing_here')));

    // Events: orders, reviews and answers, other activity.
    const events = (data.events || []).slice().sort((a, b) => String(b.timestamp || b.received_at).localeCompare(String(a.timestamp || a.received_at)));
    const groups = [
      ['section_orders', (e) => /order|refund|checkout|purchase/i.test(e.event || '')],
      ['section_reviews', (e) => /review|nps|survey|rating/i.test(e.event || '')],
      ['section_activity', () => true],
    ];
    const placed = new Set();
    for (const [title, test] of groups) {
      const rows = events.filter((e) => !placed.has(e) && test(e));
      rows.forEach((e) => placed.add(e));
      view.append(el('h3', {}, tr(title)));
      view.append(
        rows.length
          ? table(
              tr(title),
              [tr('col_when'), tr('col_event'), tr('col_details')],
              rows.map((e) => [formatTime(e.timestamp || e.received_at), String(e.event || ''), flatten(e.properties || {}, '', []).map(([k, v]) => k + ': ' + v).join('; ')]),
              false,
            )
          : el('p', {}, tr('nothing_here')),
      );
    }

    // Consents, each with its proof check.
    view.append(el('h3', {}, tr('section_consents')));
    const entries = (bundle.consent_history && bundle.consent_history.entries) || [];
    if (entries.length) {
      const rows = entries.map((entry, i) => {
        const check = checks[i] || { ok: false };
        const shown = check.decoded || entry;
        // data-reason says which check failed (for support and tests; not personal data).
        const badge = el('span', { class: 'badge ' + (check.ok ? 'ok' : 'bad'), 'data-verified': check.ok ? 'true' : 'false', 'data-reason': check.reason || null }, check.ok ? tr('verified') : tr('not_verified'));
        return [
          formatTime(shown.time),
          purposeName(bundle, shown.purpose),
          tr('kind_' + String(shown.kind || '').replace(/\./g, '_')) === 'kind_' + String(shown.kind || '').replace(/\./g, '_') ? String(shown.kind || '') : tr('kind_' + String(shown.kind).replace(/\./g, '_')),
          String(shown.channel || (entry.source && entry.source.channel) || ''),
          el('span', {}, badge, ' ', el('span', { class: 'fine' }, tr('ledger_position', { seq: String(entry.seq) }))),
        ];
      });
      view.append(table(tr('section_consents'), [tr('col_when'), tr('col_purpose'), tr('col_decision'), tr('col_channel'), tr('col_proof')], rows, false));
      view.append(el('p', { class: 'fine' }, tr('verify_explained'), ' ', el('code', {}, 'custodia ledger verify-proof'), ' ', tr('verify_offline')));
      if (bundle.consent_history.public_key) view.append(el('p', { class: 'fine' }, tr('ledger_key'), ' ', el('code', {}, String(bundle.consent_history.public_key))));
    } else {
      view.append(el('p', {}, tr('nothing_here')));
    }

    // Purposes, recipients, retention.
    view.append(el('h3', {}, tr('section_purposes')));
    for (const purpose of bundle.purposes || []) {
      view.append(
        el(
          'div',
          { class: 'card' },
          el('p', {}, el('strong', {}, local(purpose).name)),
          el('p', {}, local(purpose).description),
          el('p', { class: 'fine' }, tr('lawful_basis_line', { basis: tr('basis_' + purpose.lawful_basis) }) + ' · ' + tr('retention_line', { days: String(purpose.retention_days) })),
          local(purpose).recipients.length ? el('p', { class: 'fine' }, tr('recipients_line') + ' ' + local(purpose).recipients.join('; ')) : null,
        ),
      );
    }
    view.append(el('h3', {}, tr('section_retention')));
    view.append(
      table(
        tr('section_retention'),
        [tr('col_category'), tr('col_description'), tr('col_kept')],
        (bundle.categories || []).map((c) => [local(c).name, local(c).description, tr('days', { days: String(c.retention_days) })]),
        false,
      ),
    );
    // Every recipient once, in the page's language where the policies translate it.
    const recipients = [...new Set((bundle.purposes || []).flatMap((p) => local(p).recipients))].sort();
    if (recipients.length) {
      view.append(el('h3', {}, tr('section_recipients')));
      view.append(el('ul', {}, ...recipients.map((r) => el('li', {}, String(r)))));
    }
    view.append(el('h3', {}, tr('section_more')));
    const more = el('dl', { class: 'facts' });
    const addMore = (label, value) => value && more.append(el('dt', {}, tr(label)), el('dd', {}, String(value)));
    // The server's two fixed statements, in the reader's language (the English catalogue holds the
    // server's very sentences; a unit test keeps them equal).
    addMore('label_source', bundle.source && tr('export_source'));
    addMore('label_automated', bundle.automated_decision_making && tr('export_automated'));
    if (bundle.controller) addMore('label_controller', [bundle.controller.name, bundle.controller.contact].filter(Boolean).join(' · '));
    if (bundle.supervisory_authority) addMore('label_authority', [bundle.supervisory_authority.name, bundle.supervisory_authority.url].filter(Boolean).join(' · '));
    view.append(more);
    const rights = (bundle.rights_translations && bundle.rights_translations[lang]) || bundle.rights || [];
    if (rights.length) {
      view.append(el('h3', {}, tr('section_rights')));
      view.append(el('ul', {}, ...rights.map((r) => el('li', {}, String(r)))));
    }
  }

  // ---- proofs ---------------------------------------------------------------------------------

  // Web Crypto checks of checkpoints and proofs, shared with the console (assets/shared/proof.js).
  const { b64, hex, unhex, concat, sha256, equal, verifyCheckpoint, rootFromProof } = window.CustodiaProof;

  const BASES = [null, 'consent', 'contract', 'legal_obligation', 'vital_interests', 'public_task', 'legitimate_interest'];

  // Version 1 of the entry encoding (crates/custodia-ledger/src/entry.rs).
  function decodeEntry(bytes) {
    let at = 0;
    const need = (n) => {
      if (at + n > bytes.length) throw new Error('short');
    };
    const u8 = () => {
      need(1);
      return bytes[at++];
    };
    const take = (n) => {
      need(n);
      const out = bytes.slice(at, at + n);
      at += n;
      return out;
    };
    const str8 = () => new TextDecoder('utf-8', { fatal: true }).decode(take(u8()));
    const tagged = (read) => {
      const tag = u8();
      if (tag > 1) throw new Error('tag');
      return tag === 1 ? read() : null;
    };
    if (u8() !== 1) throw new Error('version');
    const micros = new DataView(take(8).buffer).getBigInt64(0);
    const tenant = str8();
    const subject = tagged(() => hex(take(16)));
    const kind = str8();
    const purpose = tagged(str8);
    const basis = u8();
    if (basis >= BASES.length) throw new Error('basis');
    const policyHash = tagged(() => hex(take(32)));
    const channel = tagged(str8);
    const app = tagged(str8);
    const gpc = u8();
    if (gpc > 2) throw new Error('gpc');
    const evidence = tagged(() => {
      const n = new DataView(take(4).buffer).getUint32(0);
      return take(n);
    });
    const count = u8();
    const attributes = {};
    for (let i = 0; i < count; i++) {
      const k = str8();
      const n = new DataView(take(2).buffer).getUint16(0);
      attributes[k] = new TextDecoder('utf-8', { fatal: true }).decode(take(n));
    }
    if (at !== bytes.length) throw new Error('trailing bytes');
    const millis = Number(micros / 1000n);
    return {
      time: new Date(millis).toISOString(),
      micros,
      tenant,
      subject,
      kind,
      purpose,
      lawful_basis: BASES[basis],
      policy_hash: policyHash,
      channel,
      app,
      gpc: gpc === 0 ? null : gpc === 2,
      evidence: evidence !== null,
      attributes,
    };
  }

  // The JSON beside the bytes must say what the bytes say.
  function sameAsShown(entry, decoded) {
    const source = entry.source || {};
    const wanted = Date.parse(entry.time);
    return (
      entry.kind === decoded.kind &&
      (entry.purpose ?? null) === decoded.purpose &&
      (entry.subject ?? null) === decoded.subject &&
      (entry.lawful_basis ?? null) === decoded.lawful_basis &&
      (entry.policy_hash ?? null) === decoded.policy_hash &&
      (source.channel ?? null) === decoded.channel &&
      (source.app ?? null) === decoded.app &&
      (source.gpc ?? null) === decoded.gpc &&
      Boolean(entry.evidence) === decoded.evidence &&
      JSON.stringify(entry.attributes || {}) === JSON.stringify(decoded.attributes) &&
      Math.floor(wanted) === Math.floor(Number(decoded.micros / 1000n))
    );
  }

  async function verifyConsents(history) {
    const entries = history.entries || [];
    let checkpoint = null;
    try {
      checkpoint = await verifyCheckpoint(String(history.checkpoint || ''), history.public_key || '');
    } catch (_) {
      checkpoint = null;
    }
    const out = [];
    for (const entry of entries) {
      try {
        if (!checkpoint) throw new Error('checkpoint');
        const bytes = b64(String(entry.bytes_b64));
        const decoded = decodeEntry(bytes);
        const leaf = await sha256(concat(new Uint8Array([0]), bytes));
        if (hex(leaf) !== entry.leaf_hash) throw new Error('leaf');
        const proof = entry.inclusion_proof || {};
        if (Number(proof.tree_size) !== checkpoint.size) throw new Error('size');
        const root = await rootFromProof(leaf, Number(entry.seq), checkpoint.size, (proof.hashes || []).map(unhex));
        if (!root || !equal(root, checkpoint.root)) throw new Error('root');
        if (!sameAsShown(entry, decoded)) throw new Error('fields');
        out.push({ ok: true, decoded });
      } catch (e) {
        out.push({ ok: false, reason: String((e && e.message) || e) });
      }
    }
    return out;
  }

  // ---- manage my consent ------------------------------------------------------------------------
  //
  // A `consent` request, proven with the code like every request; its token then lists the
  // consent-based purposes and records each switch as a ledger entry (channel privacy_center).
  // A browser sending Global Privacy Control had sale/sharing withdrawn by the server when it
  // verified; the page says so when both the browser and the server saw the signal.

  function consentPath() {
    return '/v1/dsr/' + encodeURIComponent(request.requestId) + '/consents';
  }

  function browserSendsGpc() {
    return navigator.globalPrivacyControl === true;
  }

  async function loadConsents() {
    setError('consent-error', '');
    const result = await api('GET', consentPath(), undefined, request.token);
    if (!result.ok) {
      lastConsents = null;
      $('consent-list').replaceChildren();
      $('gpc-notice').hidden = true;
      $('consent-empty').hidden = true;
      $('consent-session').textContent = '';
      show('view-consent');
      setError('consent-error', result.status === 409 ? tr('consent_session_over') : problemText(result));
      return;
    }
    lastConsents = result.json;
    renderConsents(lastConsents);
    show('view-consent');
  }

  function consentStateText(purpose) {
    if (purpose.state === 'granted') return tr('consent_on_since', { time: formatTime(purpose.since) });
    if (purpose.state === 'withdrawn' && purpose.by_gpc) return tr('consent_off_by_gpc_since', { time: formatTime(purpose.since) });
    if (purpose.state === 'withdrawn') return tr('consent_off_since', { time: formatTime(purpose.since) });
    if (purpose.state === 'expired') return tr('consent_expired');
    return tr('consent_never_asked');
  }

  // Sale/share purposes cannot be turned on while the browser sends GPC (the server refuses it).
  function lockedByGpc(answer, purpose) {
    return answer.gpc_signal && browserSendsGpc() && purpose.sale_or_share;
  }

  function renderGpcNotice(answer) {
    const gpc = answer.gpc_signal && browserSendsGpc() && answer.result !== 'no_data_held';
    const off = answer.purposes.filter((p) => p.by_gpc).map((p) => local(p).name);
    $('gpc-notice').hidden = !gpc;
    $('gpc-notice').textContent = gpc ? tr('consent_gpc_notice', { purposes: off.join(', ') || tr('consent_gpc_none') }) : '';
  }

  // Updates one purpose's switch, its On/Off label and its state line in place, so focus and the
  // polite live region stay where they are.
  function updateConsentRow(purpose) {
    const input = $('sw-' + purpose.purpose);
    const locked = lockedByGpc(lastConsents, purpose);
    input.checked = purpose.state === 'granted';
    input.disabled = locked;
    $('sl-' + purpose.purpose).textContent = tr(input.checked ? 'consent_on' : 'consent_off');
    $('ps-' + purpose.purpose).textContent = locked ? tr('consent_locked_by_gpc') : consentStateText(purpose);
  }

  function renderConsents(answer) {
    const list = $('consent-list');
    list.replaceChildren();
    const empty = answer.result === 'no_data_held';
    $('consent-empty').hidden = !empty;
    $('consent-intro').hidden = empty;
    $('consent-empty').textContent = empty ? tr('consent_no_data') : '';
    renderGpcNotice(answer);
    for (const purpose of answer.purposes) {
      const id = purpose.purpose;
      const input = el('input', {
        type: 'checkbox',
        role: 'switch',
        id: 'sw-' + id,
        'data-purpose': id,
        'aria-labelledby': 'pn-' + id,
        'aria-describedby': 'pd-' + id + ' ps-' + id,
      });
      input.addEventListener('change', () => saveConsent(purpose, input));
      list.append(
        el(
          'li',
          { class: 'purpose', 'data-purpose': id },
          el(
            'div',
            { class: 'purpose-text' },
            el('h2', { id: 'pn-' + id }, local(purpose).name),
            el('p', { id: 'pd-' + id }, local(purpose).description),
            el('p', { id: 'ps-' + id, class: 'fine saved', 'aria-live': 'polite' }),
          ),
          el('div', { class: 'switch' }, input, el('label', { for: 'sw-' + id, id: 'sl-' + id })),
        ),
      );
      updateConsentRow(purpose);
    }
    $('consent-session').textContent = empty ? '' : tr('consent_until', { time: formatTime(answer.manage_until) });
  }

  async function saveConsent(purpose, input) {
    setError('consent-error', '');
    const decision = input.checked ? 'granted' : 'withdrawn';
    input.disabled = true;
    const result = await api('POST', consentPath(), { purpose: purpose.purpose, decision }, request.token);
    if (!result.ok) {
      updateConsentRow(purpose);
      const text = result.status === 409 ? (lockedByGpc(lastConsents, purpose) ? tr('consent_gpc_refused') : tr('consent_session_over')) : problemText(result);
      setError('consent-error', text);
      return;
    }
    // The decision, then any sale/share withdrawals the GPC signal added to it.
    const entries = [result.json.entry].concat(result.json.gpc_withdrawals || []);
    for (const entry of entries) {
      const row = lastConsents.purposes.find((p) => p.purpose === entry.purpose);
      if (!row) continue;
      row.state = entry.kind === 'consent.granted' ? 'granted' : 'withdrawn';
      row.since = entry.time;
      row.seq = entry.seq;
      row.by_gpc = row.state === 'withdrawn' && row.sale_or_share && Boolean(entry.source) && entry.source.gpc === true;
      updateConsentRow(row);
    }
    renderGpcNotice(lastConsents);
    const saved = $('ps-' + purpose.purpose);
    saved.textContent = tr('consent_saved', { time: formatTime(result.json.entry.time), state: tr(decision === 'granted' ? 'consent_on' : 'consent_off') });
    saved.classList.add('just-saved');
  }

  // ---- start ----------------------------------------------------------------------------------

  async function start() {
    for (const button of document.querySelectorAll('.lang')) {
      button.addEventListener('click', () => loadCatalogue(button.getAttribute('data-lang')));
    }
    for (const button of document.querySelectorAll('.back')) {
      button.addEventListener('click', () => (currentView === 'view-form' ? show('view-rights') : startOver()));
    }
    $('id-email').addEventListener('change', syncIdentityFields);
    $('id-user').addEventListener('change', syncIdentityFields);
    $('request-form').addEventListener('submit', submitRequest);
    $('code-form').addEventListener('submit', submitCode);
    $('show-data').addEventListener('click', showData);
    $('download-json').addEventListener('click', () => download('json'));
    $('download-zip').addEventListener('click', () => download('zip'));
    try {
      const answer = await fetch('/privacy/config.json', { credentials: 'omit' });
      if (answer.ok) config = await answer.json();
    } catch (_) {
      config = null;
    }
    await loadCatalogue(lang);
    syncIdentityFields();
    $('open-consent').addEventListener('click', () => openForm('consent'));
    if (request && request.requestId && request.token && request.type === 'consent') await loadConsents();
    else if (request && request.requestId && request.token) await loadStatus();
    else if (request && request.requestId) show('view-code', false);
    else show('view-rights', false);
    document.body.setAttribute('data-ready', 'true');
  }

  start();
})();
