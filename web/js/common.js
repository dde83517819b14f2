// Small DOM helpers shared by the playground and the logs viewer, and the key's storage.
// The key lives in sessionStorage only (this tab); a `#key=…` fragment (as printed by
// `make run`) is moved there and removed from the address bar.

const KEY_STORAGE = "rtproxy.key";

export function loadKey() {
  const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (match) {
    sessionStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function saveKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function authHeaders(key) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** el("div", {className, dataset, ...props}, ...children) */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined && c !== "") node.append(c);
  return node;
}

/** Within this many pixels of its end, a scrolled list counts as "at the end" (it follows new lines). */
export const FOLLOW_SLACK_PX = 48;

/** Whether a scrolling box ({scrollTop, scrollHeight, clientHeight}) shows its end: then it follows what is added. */
export function isScrolledToEnd(box, slack = FOLLOW_SLACK_PX) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < slack;
}

/** What a page with no key says: where the key comes from (`make run` prints a `#key=` link). */
export function noKeyHint(origin) {
  return `No key yet: open the link make run prints ("open: ${origin}/#key=…"), or paste a virtual key into Key.`;
}
