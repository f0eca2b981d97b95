// What the privacy center and the compliance console share for building their pages: the
// message catalogue, elements whose every value is inserted as text (never as HTML), dates in
// the page's language, and error lines. Each page loads it before its own script and calls
// `use(catalogue, lang)` whenever its language changes.
'use strict';

window.CustodiaPage = (() => {
  let catalogue = {};
  let lang = 'en';
  // 'long' on the customers' page, 'medium' in the console's tables.
  let dateStyle = 'medium';

  function use(nextCatalogue, nextLang, nextDateStyle) {
    catalogue = nextCatalogue || {};
    lang = nextLang;
    if (nextDateStyle) dateStyle = nextDateStyle;
  }

  // The message `key` in the page's language, with `{name}` placeholders filled in.
  function tr(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(catalogue, key) ? catalogue[key] : key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  // Whether the catalogue has `key`.
  function has(key) {
    return Object.prototype.hasOwnProperty.call(catalogue, key);
  }

  // Builds an element; children are nodes or strings (inserted as text).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
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

  function format(iso, options) {
    if (!iso) return '';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return new Intl.DateTimeFormat(locale(), options).format(date);
  }

  const formatTime = (iso) => format(iso, { dateStyle, timeStyle: 'short' });
  const formatDate = (iso) => format(iso, { dateStyle });

  // Shows `text` in the error line `id`, or hides the line when there is none.
  function setError(id, text) {
    const node = document.getElementById(id);
    node.textContent = text || '';
    node.hidden = !text;
  }

  return { use, tr, has, el, locale, formatTime, formatDate, setError };
})();
